"""What a profile holds, computed from columns of training rows (numpy, vectorised):

- a numeric feature: quantile-based bin edges (``bins`` bins, fewer where quantiles coincide),
  the share of the non-missing rows in each bin (``edges`` are the inner edges: bin 0 is below
  the first, the last bin from the last edge up), its range, and the missing rate (NaN, null);
- a string feature: the ``top`` most frequent categories with their shares, the share of every
  other category (``other``), and the missing rate;
- an output: the same, numeric predictions binned, class predictions as categories.
"""

from __future__ import annotations

import numpy as np

PROFILE_VERSION = 1


def numeric_profile(values: np.ndarray, bins: int) -> dict:
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    present = values[~missing]
    profile = {"kind": "numeric", "missing_rate": float(missing.mean()) if len(values) else 0.0}
    if not len(present):
        return {**profile, "edges": [], "frequencies": [], "min": None, "max": None}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return {
        **profile,
        "edges": edges.tolist(),
        "frequencies": (counts / len(present)).tolist(),
        "min": float(present.min()),
        "max": float(present.max()),
    }


def categorical_profile(values: np.ndarray, top: int) -> dict:
    values = np.asarray(values, dtype=object)
    missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values], dtype=bool)
    present = values[~missing].astype(str)
    profile = {"kind": "categorical", "missing_rate": float(missing.mean()) if len(values) else 0.0}
    if not len(present):
        return {**profile, "categories": {}, "other": 0.0}
    names, counts = np.unique(present, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    shares = counts / len(present)
    kept = {str(names[i]): float(shares[i]) for i in order}
    return {**profile, "categories": kept, "other": float(max(0.0, 1.0 - sum(kept.values())))}


def column_profile(values, bins: int, top: int, categorical: bool | None = None) -> dict:
    """``categorical`` None: numeric when every present value is a number (CSV text "5.1" too)."""
    array = _numpy(values)
    if categorical is None and array.dtype.kind not in "biuf":
        numbers = _as_numbers(array)
        categorical = numbers is None
        array = array if categorical else numbers
    return categorical_profile(array, top) if categorical else numeric_profile(array, bins)


def _as_numbers(array: np.ndarray) -> np.ndarray | None:
    missing = np.array([v is None or v == "" for v in array.tolist()], dtype=bool)
    try:
        numbers = np.full(len(array), np.nan)
        numbers[~missing] = np.asarray(array[~missing], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return numbers


def _numpy(values) -> np.ndarray:
    if hasattr(values, "to_numpy"):  # a pyarrow array or chunked array: nulls become None / NaN
        try:
            return values.to_numpy(zero_copy_only=False)
        except TypeError:
            return values.to_numpy()
    return np.asarray(values)
