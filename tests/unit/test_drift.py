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
    report = monitor.report()
    assert report["rows"] <= 1000 + DriftMonitor.BLOCK_ROWS  # at most one block beyond the window
    assert report["features"]["x"]["psi"] < 0.1


def test_batches_binned_together_count_as_binned_one_by_one():
    rng = np.random.default_rng(3)
    train = np.column_stack([rng.normal(0, 1, 5000), rng.uniform(0, 10, 5000), rng.normal(5, 2, 5000)])
    profile = {"features": {n: numeric_profile(train[:, j], 10) for j, n in enumerate("abc")}, "outputs": {}}
    served = np.column_stack([rng.normal(1, 1, 900), rng.uniform(-5, 20, 900), rng.normal(5, 2, 900)])
    served[::7, 1] = np.nan
    monitor = DriftMonitor(profile, list("abc"), "unit-blocks", "1", window_rows=10_000, window_seconds=600)
    for start in range(0, 900, 3):  # small batches, as the micro-batcher forms them
        monitor.observe(served[start : start + 3], None)
    report = monitor.report()
    assert report["rows"] == 900
    for j, name in enumerate("abc"):
        binning = Binning(profile["features"][name])
        counts, missing, out_of_range = binning.counts(served[:, j])
        assert report["features"][name]["psi"] == psi(binning.expected, counts)
        assert report["features"][name]["missing_ratio"] == missing / 900
        assert report["features"][name]["out_of_range"] == out_of_range
    assert report["features"]["b"]["out_of_range"] > 0 and report["features"]["b"]["missing_ratio"] > 0
