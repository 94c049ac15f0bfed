"""Estimators with controlled behaviour, pickled into model directories by the tests.

The server subprocess imports this module when it unpickles them (tests put the repository on
its PYTHONPATH: servers.SUPPORT_ENV), exactly as a user's own estimator module would be imported.
"""

import os
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class _TwoClasses(ClassifierMixin, BaseEstimator):
    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        self.classes_ = np.array([0, 1])
        return self


class FailsOnNegative(_TwoClasses):
    """Predicts 1 for each row; raises RuntimeError (a genuine model bug) when a row sums below 0."""

    def predict(self, X):
        X = np.asarray(X)
        if (X.sum(axis=1) < 0).any():
            raise RuntimeError("simulated model failure")
        return np.ones(len(X), dtype=np.int64)


class BlocksUntilFileExists(_TwoClasses):
    """predict on a row starting with 1 waits (up to 30 s) until the file ``release_path`` exists.

    Lets a test prove that the server keeps answering while predict runs in its thread."""

    def __init__(self, release_path=""):
        self.release_path = release_path

    def predict(self, X):
        X = np.asarray(X)
        if X[0, 0] == 1:
            deadline = time.monotonic() + 30
            while not os.path.exists(self.release_path) and time.monotonic() < deadline:
                time.sleep(0.01)
        return np.zeros(len(X), dtype=np.int64)


class DropsARowOn13(_TwoClasses):
    """Predicts 1 per row, but one prediction too few when any row starts with 13 (a model bug)."""

    def predict(self, X):
        X = np.asarray(X)
        n = len(X) - 1 if (X[:, 0] == 13).any() else len(X)
        return np.ones(n, dtype=np.int64)


class SlowPredict(_TwoClasses):
    """Predicts 0 for each row, taking ``seconds`` per call: a stream a test can interrupt mid-way."""

    def __init__(self, seconds=0.005):
        self.seconds = seconds

    def predict(self, X):
        time.sleep(self.seconds)
        return np.zeros(len(X), dtype=np.int64)


class Degraded(ClassifierMixin, BaseEstimator):
    """Answers as the fitted ``estimator`` does, but sleeps ``delay_seconds`` in every call and raises
    RuntimeError (a model bug) on a row with a value above ``fails_above``: a new version that a
    holdout of ordinary rows cannot tell from a good one, but production traffic can."""

    def __init__(self, estimator=None, delay_seconds=0.0, fails_above=None):
        self.estimator = estimator
        self.delay_seconds = delay_seconds
        self.fails_above = fails_above

    def fit(self, X, y=None):
        return self

    @property
    def classes_(self):
        return self.estimator.classes_

    @property
    def n_features_in_(self):
        return self.estimator.n_features_in_

    def _degrade(self, X):
        time.sleep(self.delay_seconds)
        if self.fails_above is not None and (np.asarray(X) > self.fails_above).any():
            raise RuntimeError("simulated model failure on an outlier")

    def predict(self, X):
        self._degrade(X)
        return self.estimator.predict(X)

    def predict_proba(self, X):
        self._degrade(X)
        return self.estimator.predict_proba(X)
