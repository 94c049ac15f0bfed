"""Model directories for the rollout tests: a stable version and new ones, good and bad.

Four named features of a synthetic classification task; every version sleeps DELAY_SECONDS per
estimator call (tests.support.estimators.Degraded): 60 ms sits in the middle of the predict
histogram's 50-100 ms bucket, so that the jitter of a busy 2-core machine does not move a good
version's p99 to another bucket, while a 3x slower one lands in the 100-250 ms bucket.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from model_server.core.artifact import write_metadata
from tests.support.estimators import Degraded

FEATURES = ["f0", "f1", "f2", "f3"]
DELAY_SECONDS = 0.06
# Production traffic sends an outlier row now and then; the holdout has none (|x| < 10).
OUTLIER = [50.0, 0.0, 0.0, 0.0]
FAILS_ABOVE = 20.0


TRAINING_ROWS = 600


def dataset() -> tuple[np.ndarray, np.ndarray]:
    """900 rows: the first TRAINING_ROWS to fit on, the rest held out."""
    return make_classification(900, n_features=4, n_informative=3, n_redundant=0, random_state=0)


def fitted(C: float = 1.0, shuffle_labels: bool = False) -> LogisticRegression:
    X, y = dataset()
    X, y = X[:TRAINING_ROWS], y[:TRAINING_ROWS]
    if shuffle_labels:  # a version trained on garbage: far worse on the holdout
        y = np.random.default_rng(1).permutation(y)
    return LogisticRegression(C=C).fit(X, y)


def write_model(directory: Path, estimator, version: str, features=FEATURES, **metadata) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, directory / "model.joblib")
    write_metadata(directory, version=version, features=[{"name": f, "datatype": "FP64"} for f in features], **metadata)
    return directory


def write_versions(root: Path) -> dict[str, Path]:
    """stable (v1); good (v2); flaky (v3: fails on outliers); slow (v4: 3x the delay)."""
    return {
        "stable": write_model(root / "stable", Degraded(fitted(), DELAY_SECONDS), "1"),
        "good": write_model(root / "good", Degraded(fitted(C=0.5), DELAY_SECONDS), "2"),
        "flaky": write_model(root / "flaky", Degraded(fitted(C=0.5), DELAY_SECONDS, fails_above=FAILS_ABOVE), "3"),
        "slow": write_model(root / "slow", Degraded(fitted(C=0.5), 3 * DELAY_SECONDS), "4"),
    }


def write_holdout(path: Path, label_column: str = "label", labels=None) -> Path:
    """The held-out rows as CSV; LABELS maps the class ids to what the file says (default: the ids)."""
    X, y = dataset()
    table = pd.DataFrame(X[TRAINING_ROWS:], columns=FEATURES)
    y = y[TRAINING_ROWS:]
    table[label_column] = [labels[v] for v in y] if labels else y
    table.to_csv(path, index=False)
    return path
