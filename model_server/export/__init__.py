"""``python -m model_server.export``: a model directory to an ONNX model directory, with a parity
guarantee.

    python -m model_server.export --model_dir models/iris --out models/iris-onnx [--sample rows.csv]

The estimator (pipelines included, as far as skl2onnx converts them) becomes ``OUT/model.onnx``: a
tensor-only graph with named outputs (``label``, then ``probabilities`` for a classifier; no
ZipMap), over one float ``[N, F]`` input, or one ``[N, 1]`` input per feature when some take
strings. Then both answer the same rows: the ``--sample`` file's (Parquet or CSV, columns named as
the features), or rows synthesized from the schema (several scales, the categories the encoders
know) and, for tree models, from their split thresholds (each threshold, and the nearest float32
values on both sides of it, so that every branch is taken). Labels must be equal on every row,
probabilities (or a regressor's predictions) within ``--tolerance``. The report (rows, label
mismatches, worst difference per output, tolerance) goes into ``OUT/metadata.json`` with the
sha256 of the source model file and of ``model.onnx`` (its pin). A conversion that fails the check
writes nothing, shows the worst rows, and exits 1.

A model that takes NaN is checked on rows with NaN as well; where ONNX answers them differently
(skl2onnx's forests do not route missing values as scikit-learn does), the export still succeeds,
marked as not taking NaN: the ONNX model then refuses NaN with a 400 rather than answer it wrong.

The output directory serves with ``python -m model_server`` and ``python -m model_server.edge``
without scikit-learn. It is written aside and renamed into place, so a watched versions
directory (docs/models.md) never sees it half-written.

May import: the core, skl2onnx, onnxruntime. Not KServe or any transport.
"""

from .exporter import export

__all__ = ["export"]
