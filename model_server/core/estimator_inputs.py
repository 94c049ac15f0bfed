"""What a fitted estimator says about its inputs: rows or documents, and which features are strings.

The pickle is often all a user gives us, so the schema is read off the fitted estimator rather
than guessed:

- **Documents.** A model whose first step is a text vectorizer (``CountVectorizer``,
  ``TfidfVectorizer``, ``HashingVectorizer``: anything with ``build_analyzer``), or a
  ``FunctionTransformer`` fitted without a feature count (it was fitted on a 1-D sequence), takes
  a 1-D sequence of strings. Handed a one-column table instead, a vectorizer iterates over the
  column names and classifies the word "text", with HTTP 200 (stock KServe's behaviour).
- **String features.** In a fitted ``ColumnTransformer`` (alone or first in a Pipeline), a column
  that a fitted encoder learned string categories for (``OneHotEncoder``, ``OrdinalEncoder``, or
  anything with ``categories_``), or that a text vectorizer reads, takes strings; the others
  numbers.

Nothing here imports scikit-learn: everything is read from fitted attributes.
"""

from __future__ import annotations

import numpy as np


def first_step(estimator):
    """The estimator that sees the raw input: the first step of (nested) Pipelines."""
    while isinstance(getattr(estimator, "steps", None), list) and estimator.steps:
        estimator = estimator.steps[0][1]
    return estimator


def is_vectorizer(estimator) -> bool:
    return callable(getattr(estimator, "build_analyzer", None))


def takes_documents(estimator) -> bool:
    """True when the model's fitted input was a 1-D sequence of documents."""
    first = first_step(estimator)
    if is_vectorizer(first):
        return True
    return type(first).__name__ == "FunctionTransformer" and not hasattr(first, "n_features_in_")


def column_values(estimator) -> dict[str, tuple[bool, list]]:
    """{column name: (takes strings, the categories a fitted encoder knows for it)} for the
    columns a ColumnTransformer at the front of the model encodes or reads as text."""
    transformer = first_step(estimator)
    found: dict[str, tuple[bool, list]] = {}
    for _, step, columns in getattr(transformer, "transformers_", ()):
        if isinstance(columns, str):
            columns = [columns]  # a vectorizer on one column takes it by name, not as a list
        if not isinstance(columns, (list, tuple, np.ndarray)) or isinstance(step, str):
            continue  # "drop", "passthrough", or columns chosen by a callable
        names = [c for c in columns if isinstance(c, str)]
        if len(names) != len(columns):
            continue  # columns chosen by position: their names are unknown here
        for name, values in zip(names, _column_values(step, len(names)), strict=True):
            if values is not None:
                found[name] = values
    return found


def string_columns(estimator) -> list[str]:
    """The columns the model reads as strings."""
    return [name for name, (strings, _) in column_values(estimator).items() if strings]


def _column_values(step, n_columns: int) -> list[tuple[bool, list] | None]:
    """Per input column of a ColumnTransformer entry: (takes strings, known categories), or None
    when nothing is known of it."""
    for inner in getattr(step, "steps", None) or [("", step)]:
        if is_vectorizer(inner[1]):
            return [(True, [])] * n_columns
        categories = getattr(inner[1], "categories_", None)
        if categories is not None and len(categories) == n_columns:
            return [(np.asarray(c).dtype.kind in "OUS", list(c)) for c in categories]
    return [None] * n_columns
