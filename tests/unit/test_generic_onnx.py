"""Generic ONNX graphs (core/onnx/generic.py, core/onnx/tensor_predictor.py): the checks of a request
against the graph, which outputs run, and which requests share a run. Graphs built with
onnx.helper here; the real exports are served in tests/server/test_generic_onnx.py."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from model_server.core.codec import Tensor, V1Request, V2Request, decode_v1
from model_server.core.errors import ArtifactError, InvalidInput
from model_server.core.onnx.generic import GenericOnnxModel, cast, load_generic
from model_server.core.onnx.tensor_predictor import OnnxTensorPredictor
from model_server.core.predictor import Predictor


def save(tmp_path, inputs, outputs, nodes, metadata=None, name="model.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    tmp_path.mkdir(parents=True, exist_ok=True)
    onnx.save(model, tmp_path / name)
    if metadata is not None:
        (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    return tmp_path


def two_inputs(tmp_path, metadata=None):
    """a: FP32 [batch, 3], b: INT64 [batch, 2, 2]; out = sum(a) + sum(b) per row, and b back."""
    return save(
        tmp_path,
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["batch", 2, 2]),
        ],
        [
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("b_out", TensorProto.INT64, ["batch", 2, 2]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3]),
        ],
        [
            helper.make_node("ReduceSum", ["a", "ax1"], ["sa"], keepdims=0),
            helper.make_node("Constant", [], ["ax1"], value=helper.make_tensor("ax1v", TensorProto.INT64, [1], [1])),
            helper.make_node("Constant", [], ["ax12"], value=helper.make_tensor("v", TensorProto.INT64, [2], [1, 2])),
            helper.make_node("ReduceSum", ["b", "ax12"], ["sb"], keepdims=0),
            helper.make_node("Cast", ["sb"], ["sbf"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["sa", "sbf"], ["total"]),
            helper.make_node("Identity", ["b"], ["b_out"]),
            helper.make_node("Softmax", ["a"], ["probs"], axis=1),
        ],
        metadata,
    )


def identity(tmp_path, element, shape):
    return save(
        tmp_path,
        [helper.make_tensor_value_info("x", element, shape)],
        [helper.make_tensor_value_info("y", element, shape)],
        [helper.make_node("Identity", ["x"], ["y"])],
    )


def v2(*tensors, outputs=None):
    return V2Request(None, [Tensor(name, datatype, data) for name, datatype, data in tensors], outputs)


def good(rows=2):
    return (
        ("a", "FP32", np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)),
        ("b", "INT64", np.ones((rows, 2, 2), np.int64)),
    )


@pytest.fixture
def predictor(tmp_path):
    return Predictor.load(two_inputs(tmp_path / "m"))


def test_a_directory_not_from_our_export_takes_the_generic_path(predictor):
    assert isinstance(predictor, OnnxTensorPredictor) and predictor.platform == "onnxruntime_onnx"
    assert predictor.inputs_metadata() == [
        {"name": "a", "datatype": "FP32", "shape": [-1, 3], "parameters": {"dimension_names": {"0": "batch"}}},
        {"name": "b", "datatype": "INT64", "shape": [-1, 2, 2], "parameters": {"dimension_names": {"0": "batch"}}},
    ]
    assert [o["name"] for o in predictor.outputs_metadata()] == ["total", "b_out", "probs"]
    assert predictor.model.batchable


@pytest.mark.parametrize(
    "tensors,message",
    [
        ((*good(), ("c", "FP32", np.zeros((2, 1), np.float32))), "unknown inputs ['c']; this model takes ['a', 'b']"),
        (good()[:1], "missing inputs ['b']"),
        ((good()[0], ("b", "INT64", np.ones((2, 4), np.int64))), "input 'b': shape [2, 4] has 2 dimensions"),
        ((("a", "FP32", np.zeros((2, 4), np.float32)), good()[1]), "input 'a': dimension 1 is 4, the model takes 3"),
        ((good()[0], ("b", "INT64", np.ones((3, 2, 2), np.int64))), "input 'b': dimension 0 ('batch') is 3"),
        ((good()[0], ("b", "FP32", np.ones((2, 2, 2), np.float32))), "input 'b' is INT64: FP32 data does not convert"),
        ((("a", "BYTES", np.full((2, 3), "x", object)), good()[1]), "input 'a' is FP32: BYTES data does not convert"),
        ((*good(), good()[0]), "input 'a' is given twice"),
    ],
)
def test_a_request_that_does_not_fit_the_graph_is_invalid_input_naming_the_tensor(predictor, tensors, message):
    with pytest.raises(InvalidInput) as error:
        predictor.prepare(v2(*tensors))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "target,sent,values,ok",
    [
        ("FP32", "FP64", [1.5, 1e30], True),  # the rounding of any JSON float
        ("FP32", "FP64", [1e300], False),  # past FP32's range
        ("FP16", "FP32", [2.0], True),
        ("FP32", "INT64", [16777216], True),
        ("FP32", "INT64", [16777217], False),  # not exact in FP32
        ("FP64", "BOOL", [True], True),
        ("INT64", "INT32", [-5], True),
        ("INT8", "INT64", [127, -128], True),
        ("INT8", "INT64", [128], False),
        ("UINT8", "INT64", [-1], False),
        ("INT64", "FP64", [1.0], False),  # fractional type for an integer input
        ("BOOL", "INT64", [1], False),
        ("BYTES", "FP32", [1.0], False),
    ],
)
def test_casts_are_accepted_only_without_loss(target, sent, values, ok):
    from model_server.core.codec import NUMPY_DTYPES
    from model_server.core.onnx.generic import TensorSpec

    spec = TensorSpec("t", target, (None,), (None,))
    array = np.array(values, dtype=NUMPY_DTYPES[sent])
    if ok:
        assert cast(spec, sent, array).dtype == NUMPY_DTYPES[target]
    else:
        with pytest.raises(InvalidInput, match=f"input 't' is {target}"):
            cast(spec, sent, array)


def test_only_the_requested_outputs_are_computed(predictor, monkeypatch):
    asked = []
    run = predictor.model.session.run
    monkeypatch.setattr(predictor.model.session, "run", lambda names, *a: asked.append(names) or run(names, *a))
    (total,) = asyncio.run(predictor.infer(v2(*good(), outputs=["total"])))
    assert asked == [["total"]] and total.name == "total" and total.data.tolist() == [7.0, 16.0]
    with pytest.raises(InvalidInput, match=r"unknown outputs \['nope'\]"):
        predictor.prepare(v2(*good(), outputs=["nope"]))


def test_concurrent_requests_share_a_run_only_with_requests_of_the_same_other_dimensions(tmp_path):
    predictor = Predictor.load(identity(tmp_path, TensorProto.FLOAT, [None, None]))
    runs = []
    predict_batch = predictor.predict_batch

    def spy(feeds, outputs):
        runs.append(feeds["x"].shape)
        return predict_batch(feeds, outputs)

    predictor.predict_batch = spy
    widths = [3, 3, 4, 3, 4, 4, 3]

    async def main():
        requests = [v2(("x", "FP32", np.full((1, w), i, np.float32))) for i, w in enumerate(widths)]
        return await asyncio.gather(*(predictor.infer(r) for r in requests))

    answers = asyncio.run(main())
    assert [a[0].data.tolist() for a in answers] == [[[i] * w] for i, w in enumerate(widths)]
    assert sum(rows for rows, _ in runs) == len(widths)  # each row predicted once: no retries of mixed batches
    assert any(rows > 1 for rows, _ in runs)  # and some shared a run


def test_a_graph_not_batched_along_its_first_dimension_runs_each_request_alone(tmp_path):
    predictor = Predictor.load(identity(tmp_path, TensorProto.FLOAT, [2, None]))
    assert not predictor.model.batchable
    calls = []
    predict_batch = predictor.predict_batch
    predictor.predict_batch = lambda feeds, outputs: calls.append(1) or predict_batch(feeds, outputs)

    async def main():
        requests = [v2(("x", "FP32", np.full((2, 3), i, np.float32))) for i in range(5)]
        return await asyncio.gather(*(predictor.infer(r) for r in requests))

    answers = asyncio.run(main())
    assert len(calls) == 5 and [a[0].data[0, 0] for a in answers] == [0, 1, 2, 3, 4]


def test_scalars_strings_and_v1_rows(tmp_path):
    scalar = Predictor.load(identity(tmp_path / "s", TensorProto.INT64, []))
    (out,) = asyncio.run(scalar.infer(v2(("x", "INT32", np.array(7, np.int32)))))
    assert out.data.shape == () and out.data.dtype == np.int64 and int(out.data) == 7
    strings = Predictor.load(identity(tmp_path / "t", TensorProto.STRING, [None]))
    raw = np.array([b"caf\xc3\xa9", b"x"], dtype=object)  # BYTES from the binary extension are bytes
    (out,) = asyncio.run(strings.infer(v2(("x", "BYTES", raw))))
    assert out.data.tolist() == ["café", "x"]
    with pytest.raises(InvalidInput, match="input 'x': a BYTES element is not UTF-8"):
        strings.prepare(v2(("x", "BYTES", np.array([b"\xff"], dtype=object))))
    rows = Predictor.load(identity(tmp_path / "r", TensorProto.FLOAT, [None, 2]))
    (out,) = asyncio.run(rows.infer(V1Request([[1, 2], [3, 4]], ["predict"])))
    assert out.name == "predict" and out.data.tolist() == [[1, 2], [3, 4]]
    with pytest.raises(InvalidInput, match="ragged"):
        rows.prepare(V1Request([[1, 2], [3]], ["predict"]))
    request = decode_v1({"inputs": {"x": [[1, 2]]}})  # TF Serving's columnar form
    (out,) = asyncio.run(rows.infer(request))
    assert request.columnar and out.data.tolist() == [[1, 2]]


def test_an_estimator_asks_for_instances_when_given_columnar_inputs(demo_model_dir):
    from model_server.core.predictor import Predictor

    with pytest.raises(InvalidInput, match='missing "instances": this model takes rows'):
        Predictor.load(demo_model_dir).prepare(decode_v1({"inputs": {"sepal_length": [5.1]}}))


def test_class_labels_label_the_probabilities(tmp_path):
    predictor = Predictor.load(two_inputs(tmp_path, {"class_labels": ["x", "y", "z"]}))
    assert predictor.proba_name == "probs" and predictor.output_types["label"]["datatype"] == "BYTES"
    (label,) = asyncio.run(predictor.infer(v2(*good(), outputs=["label"])))
    assert label.data.tolist() == ["z", "z"]
    answered = asyncio.run(
        predictor.infer(V1Request([{"a": [0, 0, 1], "b": [[0, 0], [0, 0]]}], ["predict", "predict_proba", "label"]))
    )
    assert [o.name for o in answered] == ["predict", "predict_proba", "label"] and answered[2].data.tolist() == ["z"]


@pytest.mark.parametrize(
    "metadata,message",
    [
        ({"class_labels": ["x", "y"]}, "2 class_labels, output probs has 3 columns"),
        ({"class_labels": ["x", "y", "z"], "probabilities": "nope"}, "probabilities names 'nope'"),
        ({"probabilities": "probs"}, "no class_labels"),
        ({"inputs": {"nope": {"description": "?"}}}, "inputs describes 'nope'"),
        ({"outputs": {"total": {"description": 3}}}, 'outputs["total"] must be an object with a string'),
    ],
)
def test_metadata_that_does_not_fit_the_graph_is_refused(tmp_path, metadata, message):
    with pytest.raises(ArtifactError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Predictor.load(two_inputs(tmp_path, metadata))


def test_descriptions_and_a_name_reach_the_metadata(tmp_path):
    metadata = {"name": "sums", "inputs": {"a": {"description": "three floats"}}, "outputs": {"total": {}}}
    predictor = Predictor.load(two_inputs(tmp_path, metadata))
    assert predictor.inputs_metadata()[0]["parameters"]["description"] == "three floats"
    assert predictor.artifact.metadata.name == "sums"


def test_inputs_v2_cannot_carry_are_refused_at_load(tmp_path):
    sequence = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    path = save(
        tmp_path / "seq",
        [sequence],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_node("SequenceLength", ["s"], ["n"])],
    )
    with pytest.raises(ArtifactError, match="input 's' is seq"):
        Predictor.load(path)
    with pytest.raises(ArtifactError, match="input 'x' is tensor\\(bfloat16\\)"):
        Predictor.load(identity(tmp_path / "bf16", TensorProto.BFLOAT16, [None]))


def test_session_settings_reach_onnx_runtime(tmp_path):
    from model_server.core.onnx.generic import SessionSettings

    settings = SessionSettings(intra_op_threads=2, inter_op_threads=3, graph_optimization="basic", warmup=True)
    model = load_generic(identity(tmp_path, TensorProto.FLOAT, [None, 2]) / "model.onnx", settings)
    options = model.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 3)
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_BASIC")
    assert isinstance(model, GenericOnnxModel) and model.warm_up() >= 0
    assert {k: v.shape for k, v in model.zeros().items()} == {"x": (1, 2)}


def test_a_warmup_file_of_v2_requests_checks_a_generic_graph_before_it_serves(tmp_path):
    from model_server.core.repository import WARMUP_FILE, check

    directory = two_inputs(tmp_path)
    predictor = Predictor.load(directory)
    tensors = [
        {"name": name, "datatype": datatype, "shape": list(data.shape), "data": data.ravel().tolist()}
        for name, datatype, data in good(1)
    ]
    (directory / WARMUP_FILE).write_text(json.dumps({"inputs": tensors}) + "\n")
    check(predictor, directory)  # answers: nothing raised
    (directory / WARMUP_FILE).write_text(json.dumps({"inputs": tensors[:1]}) + "\n")
    with pytest.raises(ArtifactError, match=r"request 1 failed: InvalidInput: missing inputs \['b'\]"):
        check(predictor, directory)
