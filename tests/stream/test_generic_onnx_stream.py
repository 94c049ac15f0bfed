"""A generic ONNX graph (an XGBoost export) through ``python -m model_server.stream``: the same
loader as the server's, V2 JSON messages answered as ONNX Runtime answers, a bad tensor to the
error topic."""

from __future__ import annotations

import numpy as np
import onnxruntime
import orjson

from tests.support.kafka import consume, produce, run, running_stream
from tests.support.onnx_exports import exports, model_directory


def test_an_xgboost_export_is_answered_over_kafka(tmp_path, topics):
    export = next(e for e in exports()[0] if e.name == "xgboost")
    directory = model_directory(export, tmp_path / "xgb")
    rows = np.random.default_rng(21).normal(size=(3, 6)).astype(np.float32)
    good = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [3, 6], "data": rows.ravel().tolist()}]}
    bad = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 5], "data": [0.0] * 5}]}
    run(
        produce(
            topics.bootstrap, topics.input, [(b"good", orjson.dumps(good), None), (b"bad", orjson.dumps(bad), None)]
        )
    )
    with running_stream(directory, topics.bootstrap, *topics.args()):
        (reply,) = run(consume(topics.bootstrap, topics.output, 1))
        (refused,) = run(consume(topics.bootstrap, topics.errors, 1))
    session = onnxruntime.InferenceSession(str(export.onnx), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(["label", "probabilities"], {"features": rows})
    outputs = {o["name"]: o for o in orjson.loads(reply.value)["outputs"]}
    assert outputs["label"]["data"] == label.tolist()
    np.testing.assert_allclose(np.array(outputs["probabilities"]["data"]).reshape(3, 3), probabilities, rtol=1e-5)
    assert refused.key == b"bad"
