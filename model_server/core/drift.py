"""Drift against the reference profile (``profile.json``, written by ``python -m model_server.profile``).

Each batch the micro-batcher forms is binned once, per feature, vectorised (``np.searchsorted``
on the profile's edges; string features through ``np.unique`` on the batch, so Python loops over
the distinct values, never the rows), in the predict thread. Counts are kept per batch in a
window of the last ``window_rows`` rows and at most ``window_seconds`` seconds; when Prometheus
scrapes, the window's population stability index against the profile is computed and exported:

    model_server_feature_drift{model,version,feature,method="psi"}
    model_server_prediction_drift{model,version,output,method="psi"}
    model_server_feature_missing_ratio{model,version,feature}
    model_server_feature_out_of_range_total{model,version,feature}

PSI = sum over bins of (actual - expected) * ln(actual / expected), shares floored at 1e-4 so
that an empty bin counts without being infinite. A category the profile never saw counts as
"other".
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from .errors import ArtifactError
from .metrics import FEATURE_DRIFT, FEATURE_MISSING, FEATURE_OUT_OF_RANGE, PREDICTION_DRIFT

PROFILE_FILENAME = "profile.json"
FLOOR = 1e-4


def psi(expected: np.ndarray, actual_counts: np.ndarray) -> float:
    total = actual_counts.sum()
    if total == 0:
        return 0.0
    actual = np.maximum(actual_counts / total, FLOOR)
    expected = np.maximum(expected, FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


class Binning:
    """One column's bins from its profile: ``counts(values)`` -> (bin counts, missing, out of range)."""

    def __init__(self, profile: dict):
        self.categorical = profile["kind"] == "categorical"
        if self.categorical:
            self.categories = list(profile["categories"])
            self.index = {name: i for i, name in enumerate(self.categories)}
            self.expected = np.array([*profile["categories"].values(), profile["other"]], dtype=np.float64)
        else:
            self.edges = np.asarray(profile["edges"], dtype=np.float64)
            self.expected = np.asarray(profile["frequencies"], dtype=np.float64)
            self.low = -np.inf if profile["min"] is None else profile["min"]
            self.high = np.inf if profile["max"] is None else profile["max"]

    def counts(self, values) -> tuple[np.ndarray, int, int]:
        if self.categorical:
            return self._category_counts(np.asarray(values, dtype=object))
        values = np.asarray(values, dtype=np.float64)
        missing = np.isnan(values)
        present = values[~missing]
        counts = np.bincount(np.searchsorted(self.edges, present, side="right"), minlength=len(self.expected))
        out_of_range = int(np.count_nonzero((present < self.low) | (present > self.high)))
        return counts, int(missing.sum()), out_of_range

    def _category_counts(self, values: np.ndarray) -> tuple[np.ndarray, int, int]:
        counts = np.zeros(len(self.expected), dtype=np.int64)
        missing = 0
        names, found = np.unique(values.astype(str), return_counts=True)
        for name, count in zip(names.tolist(), found.tolist(), strict=True):  # distinct values, not rows
            if name in ("None", "nan", ""):
                missing += count
            else:
                counts[self.index.get(name, len(self.categories))] += count  # unseen: "other"
        return counts, missing, 0


class NumericBins:
    """Every numeric feature's bins at once: one broadcast comparison of a block of rows against
    all the features' edges (padded with NaN, which compares false), then one ``bincount`` over
    every feature's slots, so the cost of a block does not grow with its number of columns."""

    def __init__(self, binnings: list[Binning]):
        widest = max((len(b.edges) for b in binnings), default=0)
        self.edges = np.full((len(binnings), widest), np.nan)
        for k, binning in enumerate(binnings):
            self.edges[k, : len(binning.edges)] = binning.edges
        self.slots = [len(b.edges) + 1 for b in binnings]
        self.offsets = np.cumsum([0, *self.slots])[:-1]
        self.trash = int(sum(self.slots))  # where NaN (missing) values are counted, then dropped
        self.low = np.array([b.low for b in binnings], dtype=np.float64)
        self.high = np.array([b.high for b in binnings], dtype=np.float64)

    def counts(self, values: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """``values``: rows x features (float64) -> per feature its bin counts; missing and out of
        range per feature."""
        missing = np.isnan(values)
        slots = (values[:, :, None] >= self.edges[None, :, :]).sum(axis=2) + self.offsets
        slots[missing] = self.trash
        flat = np.bincount(slots.ravel(), minlength=self.trash + 1)
        bins = [flat[o : o + n] for o, n in zip(self.offsets, self.slots, strict=True)]
        out_of_range = ((values < self.low) | (values > self.high)).sum(axis=0)
        return bins, missing.sum(axis=0), out_of_range


class DriftMonitor:
    """Batches are kept as they come (a list append on the request path) and binned together
    once ``BLOCK_ROWS`` rows or ``BLOCK_SECONDS`` have gathered, or when the figures are read:
    numpy's cost per call, not per row, is what a small batch pays, so a block of batches pays it once."""

    BLOCK_ROWS = 1024
    BLOCK_SECONDS = 1.0

    def __init__(
        self, profile: dict, feature_names: list[str], model: str, version: str, window_rows: int, window_seconds: float
    ):
        self.window_rows, self.window_seconds = window_rows, window_seconds
        self.features = [
            (j, name, Binning(profile["features"][name]))
            for j, name in enumerate(feature_names)
            if name in profile["features"]
        ]
        self._numeric = [k for k, (_, _, b) in enumerate(self.features) if not b.categorical]
        self._numeric_bins = NumericBins([self.features[k][2] for k in self._numeric])
        self.outputs = [(name, Binning(p)) for name, p in profile.get("outputs", {}).items()]
        self._pending: list = []  # (X, predictions) not binned yet
        self._pending_rows = 0
        self._pending_since = 0.0
        self._batches: deque = deque()  # (time, rows, feature counts, missing, output counts)
        self._rows = 0
        self._feature_totals = [np.zeros(len(b.expected), dtype=np.int64) for _, _, b in self.features]
        self._missing_totals = np.zeros(len(self.features), dtype=np.int64)
        self._output_totals = [np.zeros(len(b.expected), dtype=np.int64) for _, b in self.outputs]
        self._out_of_range_totals = np.zeros(len(self.features), dtype=np.int64)  # since the start
        self._lock = threading.Lock()
        self._drift = [FEATURE_DRIFT.labels(model, version, name, "psi") for _, name, _ in self.features]
        self._missing = [FEATURE_MISSING.labels(model, version, name) for _, name, _ in self.features]
        self._out_of_range = [FEATURE_OUT_OF_RANGE.labels(model, version, name) for _, name, _ in self.features]
        self._prediction_drift = [PREDICTION_DRIFT.labels(model, version, name, "psi") for name, _ in self.outputs]
        # Computed when Prometheus scrapes, not per batch: a batch only adds its counts.
        for k, (_, _, binning) in enumerate(self.features):
            self._drift[k].set_function(functools.partial(self._psi, binning.expected, self._feature_totals[k]))
            self._missing[k].set_function(functools.partial(self._missing_ratio, k))
        for k, (_, binning) in enumerate(self.outputs):
            self._prediction_drift[k].set_function(
                functools.partial(self._psi, binning.expected, self._output_totals[k])
            )

    def _psi(self, expected: np.ndarray, totals: np.ndarray) -> float:
        with self._lock:
            self._bin_pending()
            return psi(expected, totals)

    def _missing_ratio(self, k: int) -> float:
        with self._lock:
            self._bin_pending()
            return float(self._missing_totals[k] / self._rows) if self._rows else 0.0

    @classmethod
    def for_model(cls, model_dir: Path, pinned: str | None, feature_names, model: str, version: str, **window):
        """The monitor of a model directory's profile.json, None without one; a profile that does
        not match its pin in metadata.json is an ArtifactError."""
        path = Path(model_dir) / PROFILE_FILENAME
        if not path.is_file() or not feature_names:
            return None
        body = path.read_bytes()
        if pinned is not None and hashlib.sha256(body).hexdigest() != pinned:
            raise ArtifactError(f"{path}: its sha256 is not the profile_sha256 metadata.json pins")
        try:
            return cls(json.loads(body), list(feature_names), model, version, **window)
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}: not a profile python -m model_server.profile writes: {exc!r}") from None

    def observe(self, X, predictions: np.ndarray | None) -> None:
        """Keep one batch (``X``: the checked rows; a 2-D array, or a frame of named columns) for
        the next block."""
        rows = len(X)
        if rows == 0:
            return
        now = time.monotonic()
        with self._lock:
            if not self._pending:
                self._pending_since = now
            self._pending.append((X, predictions))
            self._pending_rows += rows
            if self._pending_rows >= self.BLOCK_ROWS or now - self._pending_since >= self.BLOCK_SECONDS:
                self._bin_pending()

    def report(self) -> dict:
        """The window's figures as JSON-able values (batch scoring's ``--drift_report``)."""
        with self._lock:
            self._bin_pending()
            rows = int(self._rows)
            features = {
                name: {
                    "psi": psi(binning.expected, self._feature_totals[k]),
                    "missing_ratio": float(self._missing_totals[k] / rows) if rows else 0.0,
                    "out_of_range": int(self._out_of_range_totals[k]),
                }
                for k, (_, name, binning) in enumerate(self.features)
            }
            outputs = {
                name: {"psi": psi(binning.expected, self._output_totals[k])}
                for k, (name, binning) in enumerate(self.outputs)
            }
        return {"rows": rows, "method": "psi", "features": features, "outputs": outputs}

    def _bin_pending(self) -> None:
        """Bin the kept batches as one block (called with the lock held)."""
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        frames = hasattr(pending[0][0], "columns")
        if frames:
            import pandas as pd  # a frame came in: pandas is loaded already

            X = pd.concat([x for x, _ in pending], ignore_index=True)
        else:
            X = np.concatenate([np.asarray(x) for x, _ in pending])
        rows = len(X)
        feature_counts: list = [None] * len(self.features)
        missing = np.zeros(len(self.features), dtype=np.int64)
        out_of_range = np.zeros(len(self.features), dtype=np.int64)
        if self._numeric:
            if frames:
                values = np.column_stack([X[self.features[k][1]].to_numpy(np.float64) for k in self._numeric])
            else:
                values = X[:, [self.features[k][0] for k in self._numeric]].astype(np.float64, copy=False)
            bins, missing[self._numeric], out_of_range[self._numeric] = self._numeric_bins.counts(values)
            for k, counts in zip(self._numeric, bins, strict=True):
                feature_counts[k] = counts
        for k, (j, name, binning) in enumerate(self.features):
            if binning.categorical:
                values = X[name].to_numpy() if frames else X[:, j]
                feature_counts[k], missing[k], _ = binning.counts(values)
        for k in np.flatnonzero(out_of_range):
            self._out_of_range[k].inc(int(out_of_range[k]))
        self._out_of_range_totals += out_of_range
        # A batch predicted without PREDICT (probabilities only) adds no output counts.
        predicted = [p.reshape(len(x), -1)[:, 0] for x, p in pending if p is not None]
        output_counts = [
            binning.counts(np.concatenate(predicted))[0] if predicted else np.zeros(len(binning.expected), np.int64)
            for _, binning in self.outputs
        ]
        self._push((time.monotonic(), rows, feature_counts, missing, output_counts))

    def _push(self, batch) -> None:
        self._batches.append(batch)
        self._add(batch, 1)
        now = time.monotonic()
        while len(self._batches) > 1 and (
            self._rows - self._batches[0][1] >= self.window_rows or now - self._batches[0][0] > self.window_seconds
        ):
            self._add(self._batches.popleft(), -1)

    def _add(self, batch, sign: int) -> None:
        _, rows, feature_counts, missing, output_counts = batch
        self._rows += sign * rows
        for total, counts in zip(self._feature_totals, feature_counts, strict=True):
            total += sign * counts
        self._missing_totals += sign * missing
        for total, counts in zip(self._output_totals, output_counts, strict=True):
            total += sign * counts
