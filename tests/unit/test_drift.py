"""The drift binning in-process: PSI of the training shares is 0, an unseen category counts as
"other", the window forgets old rows."""

import numpy as np

from model_server.core.drift import Binning, DriftMonitor, psi
from model_server.profile.building import categorical_profile, numeric_profile


def test_a_category_never_seen_counts_as_other():
    binning = Binning(categorical_profile(np.array(["a"] * 6 + ["b"] * 3 + ["c"], dtype=object), 2))
    counts, missing, _ = binning.counts(np.array(["a", "b", "zebra", "zebra", None], dtype=object))
    assert counts.tolist() == [1, 1, 2] and missing == 1  # a, b, other


def test_psi_is_zero_for_the_profile_itself_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, 50_000)
    binning = Binning(numeric_profile(train, 10))
    same, _, _ = binning.counts(rng.normal(0, 1, 5000))
    shifted, _, _ = binning.counts(rng.normal(1, 1, 5000))
    assert psi(binning.expected, same) < 0.02
    assert psi(binning.expected, shifted) > 0.25


def test_the_window_keeps_the_last_rows_only():
    train = np.random.default_rng(1).normal(0, 1, (10_000, 1))
    profile = {"features": {"x": numeric_profile(train[:, 0], 10)}, "outputs": {}}
    monitor = DriftMonitor(profile, ["x"], "unit-window", "1", window_rows=1000, window_seconds=600)
    for _ in range(5):
        monitor.observe(np.full((500, 1), 5.0), None)  # far out
    for _ in range(3):
        monitor.observe(np.random.default_rng(2).normal(0, 1, (500, 1)), None)
    assert monitor._rows <= 1500  # at most one batch beyond the window
    assert psi(monitor.features[0][2].expected, monitor._feature_totals[0]) < 0.1
