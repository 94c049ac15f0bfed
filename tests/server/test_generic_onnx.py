"""Generic ONNX graphs against the real server: real exports of PaddlePaddle (a 4-D image input),
PyTorch (a sequence/state model: three inputs of two types, an int64 scalar, two outputs),
XGBoost and LightGBM (onnxmltools), each in its own model directory as model.onnx, served from
one --model_repository. For each: V2 metadata equals the graph, and every output equals
``onnxruntime.InferenceSession.run`` on the same inputs over V2 JSON, the binary extension and
gRPC (raw and typed contents), for one row and a batch, and under 16 concurrent clients; bad
tensors are 400 / INVALID_ARGUMENT naming the tensor. And the edge runtime serves one too."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import ANY

import grpc
import httpx
import numpy as np
import onnx
import onnxruntime
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from onnx import TensorProto, helper

from model_server.core.codec import NUMPY_DTYPES
from model_server.core.codec import datatype_of as datatype_of_array
from model_server.core.onnx.generic import ONNX_DATATYPES
from tests.support import clients
from tests.support.onnx_exports import PADDLE_OUTPUT, exports, model_directory
from tests.support.servers import free_port, start_server, stop, wait_until_ready
from tests.support.tools import REPO

NAMES = ("paddle_image", "pytorch_vad", "xgboost", "lightgbm")
PROTOCOLS = ("v2-json", "v2-binary", "grpc", "grpc-typed")
ATOL, RTOL = 1e-5, 1e-4

# Every V2 datatype the ONNX graph below passes through unchanged (BF16: see generic.py).
EVERY_TYPE = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def every_type_graph(path):
    """Identity for each datatype ([-1, 2]) and for an FP64 scalar: one graph of all of them."""
    inputs, outputs, nodes = [], [], []
    for datatype, element in [*EVERY_TYPE.items(), ("SCALAR", TensorProto.DOUBLE)]:
        shape = [] if datatype == "SCALAR" else [None, 2]
        inputs.append(helper.make_tensor_value_info(f"in_{datatype}", element, shape))
        outputs.append(helper.make_tensor_value_info(f"out_{datatype}", element, shape))
        nodes.append(helper.make_node("Identity", [f"in_{datatype}"], [f"out_{datatype}"]))
    model = helper.make_model(
        helper.make_graph(nodes, "every_type", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)


def every_type_inputs(rows: int, rng) -> dict[str, np.ndarray]:
    feeds = {}
    for datatype in EVERY_TYPE:
        if datatype == "BYTES":
            values = np.array([f"s{i}-é" for i in range(rows * 2)], dtype=object)
        elif datatype == "BOOL":
            values = rng.integers(0, 2, rows * 2).astype(bool)
        elif datatype.startswith("FP"):
            values = rng.normal(size=rows * 2).astype(NUMPY_DTYPES[datatype])
        else:
            info = np.iinfo(NUMPY_DTYPES[datatype])
            values = np.array([info.min, info.max] * rows, dtype=NUMPY_DTYPES[datatype])
        feeds[f"in_{datatype}"] = values.reshape(rows, 2)
    feeds["in_SCALAR"] = np.array(2.5)
    return feeds


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    found, missing = exports()
    root = tmp_path_factory.mktemp("generic-onnx")
    for export in found:
        model_directory(export, root / export.name)
    every_type_graph(root / "every_type" / "model.onnx")
    with start_server(root, "unused", f"--model_repository={root}", "--onnx_warmup", timeout=120) as server:
        yield server, {export.name: export for export in found}, dict(m.split(":", 1) for m in missing)


@pytest.fixture(params=NAMES)
def export(request, served):
    _, found, missing = served
    if request.param not in found:
        pytest.skip(missing[request.param])
    return found[request.param]


def reference(path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def as_model(served, name):
    return dataclasses.replace(served[0], model_name=name)


def datatype_of(array: np.ndarray) -> str:
    return datatype_of_array(array)


def infer(server, protocol: str, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    inputs = [(name, datatype_of(array), array) for name, array in feeds.items()]
    if protocol == "grpc-typed":
        return grpc_typed(server, inputs, outputs)
    return clients.infer(server, protocol, inputs, outputs)


def grpc_typed(server, inputs, outputs):
    """gRPC with typed contents (``fp32_contents``, ``int64_contents``, ...), not raw bytes."""
    from model_server.kserve.grpc import GRPC_CONTENTS_FIELD

    tensors = []
    for name, datatype, array in inputs:
        field = GRPC_CONTENTS_FIELD[datatype]
        values = [v.encode() for v in array.ravel()] if datatype == "BYTES" else array.ravel().tolist()
        contents = pb.InferTensorContents(**{field: values})
        tensors.append(
            pb.ModelInferRequest.InferInputTensor(
                name=name, datatype=datatype, shape=list(array.shape), contents=contents
            )
        )
    request = pb.ModelInferRequest(
        model_name=server.model_name,
        inputs=tensors,
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=name) for name in outputs],
    )
    with grpc.insecure_channel(server.grpc_target) as channel:
        response = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    return {
        spec.name: clients._decode_raw(spec.datatype, list(spec.shape), raw)
        for spec, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def assert_same(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        if value.dtype.kind in "fc":
            np.testing.assert_allclose(got[name].astype(np.float64), value, rtol=RTOL, atol=ATOL, err_msg=name)
        else:
            assert got[name].tolist() == value.tolist(), name


# -- metadata -------------------------------------------------------------------------------------


def expected_tensors(nodes) -> list[dict]:
    return [
        {
            "name": node.name,
            "datatype": ONNX_DATATYPES[node.type],
            "shape": [d if isinstance(d, int) else -1 for d in node.shape],
        }
        for node in nodes
    ]


def test_metadata_equals_the_graph_over_rest_and_grpc(served, export):
    session = reference(export.onnx)
    body = httpx.get(f"{served[0].http_url}/v2/models/{export.name}").json()
    assert body["platform"] == "onnxruntime_onnx"
    assert body["versions"] == [export.metadata.get("version", "1")]
    inputs = [{k: t[k] for k in ("name", "datatype", "shape")} for t in body["inputs"]]
    graph_outputs = {o.name for o in session.get_outputs()}
    outputs = [{k: t[k] for k in ("name", "datatype", "shape")} for t in body["outputs"] if t["name"] in graph_outputs]
    labels = [t for t in body["outputs"] if t["name"] not in graph_outputs]  # class labels, where declared
    assert labels == ([{"name": ANY, "datatype": "BYTES", "shape": [-1]}] if "class_labels" in export.metadata else [])
    assert inputs == expected_tensors(session.get_inputs())
    assert outputs == expected_tensors(session.get_outputs())
    for tensor in body["inputs"] + body["outputs"]:  # symbolic dimensions keep their names
        names = tensor.get("parameters", {}).get("dimension_names", {})
        assert all(tensor["shape"][int(axis)] == -1 for axis in names)
    with grpc.insecure_channel(served[0].grpc_target) as channel:
        response = GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name=export.name))
    assert [(t.name, t.datatype, list(t.shape)) for t in response.inputs] == [
        (t["name"], t["datatype"], t["shape"]) for t in inputs
    ]


def test_metadata_json_describes_the_graph(served):
    server, found, missing = served
    if "paddle_image" not in found:
        pytest.skip(missing["paddle_image"])
    body = httpx.get(f"{server.http_url}/v2/models/paddle_image").json()
    assert body["inputs"][0]["parameters"]["description"].startswith("text line crops")
    by_name = {t["name"]: t for t in body["outputs"]}
    assert by_name[PADDLE_OUTPUT]["parameters"]["description"] == "P(upright), P(upside down)"
    assert by_name["label"] == {"name": "label", "datatype": "BYTES", "shape": [-1]}


# -- answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("rows", [1, 5])
def test_every_output_equals_onnx_runtime(served, export, protocol, rows):
    feeds = export.inputs(rows, np.random.default_rng(rows))
    session = reference(export.onnx)
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(names, feeds), strict=True))
    assert_same(infer(as_model(served, export.name), protocol, feeds, names), expected)


def test_a_requested_subset_is_all_that_is_answered(served, export):
    session = reference(export.onnx)
    last = session.get_outputs()[-1].name
    feeds = export.inputs(2, np.random.default_rng(0))
    request = {
        "inputs": [
            {"name": n, "datatype": datatype_of(a), "shape": list(a.shape), "data": a.ravel().tolist()}
            for n, a in feeds.items()
        ],
        "outputs": [{"name": last}],
    }
    body = httpx.post(f"{served[0].http_url}/v2/models/{export.name}/infer", json=request).json()
    assert [o["name"] for o in body["outputs"]] == [last]
    np.testing.assert_allclose(
        np.array(body["outputs"][0]["data"]).reshape(body["outputs"][0]["shape"]),
        session.run([last], feeds)[0],
        rtol=RTOL,
        atol=ATOL,
    )


def test_sixteen_concurrent_clients_each_get_their_own_answers(served, export):
    session = reference(export.onnx)
    names = [o.name for o in session.get_outputs()]
    server = as_model(served, export.name)

    def client(i: int) -> int:
        rng = np.random.default_rng(100 + i)
        protocol = ("v2-binary", "grpc", "v2-json")[i % 3]
        for _ in range(4):
            feeds = export.inputs(int(rng.integers(1, 5)), rng)
            expected = dict(zip(names, session.run(names, feeds), strict=True))
            assert_same(infer(server, protocol, feeds, names), expected)
        return i

    with ThreadPoolExecutor(16) as pool:
        assert sorted(pool.map(client, range(16))) == list(range(16))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_v2_datatype_and_a_scalar_round_trip(served, protocol):
    feeds = every_type_inputs(3, np.random.default_rng(1))
    if protocol == "grpc-typed":  # typed contents have no FP16 field: FP16 travels as raw bytes only
        feeds = {name: array for name, array in feeds.items() if name != "in_FP16"}
        pytest.skip("FP16 has no typed gRPC contents") if not feeds else None
        graph_inputs = set(feeds)
        if "in_FP16" not in graph_inputs:
            response = grpc_error(served, feeds)
            assert "missing inputs ['in_FP16']" in response
            return
    got = infer(as_model(served, "every_type"), protocol, feeds, [n.replace("in_", "out_") for n in feeds])
    expected = {name.replace("in_", "out_"): array for name, array in feeds.items()}
    assert_same(got, expected)


def grpc_error(served, feeds) -> str:
    try:
        grpc_typed(as_model(served, "every_type"), [(n, datatype_of(a), a) for n, a in feeds.items()], [])
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        return error.details()
    raise AssertionError("no error")


def test_a_lossless_cast_is_accepted(served):
    _, found, _ = served
    session = reference(found["xgboost"].onnx)
    rows = np.random.default_rng(3).normal(size=(4, 6))
    expected = session.run(["probabilities"], {"features": rows.astype(np.float32)})[0]
    got = infer(as_model(served, "xgboost"), "v2-binary", {"features": rows}, ["probabilities"])  # FP64 data
    np.testing.assert_allclose(got["probabilities"], expected, rtol=RTOL, atol=ATOL)
    integers = np.arange(12, dtype=np.int64).reshape(2, 6)  # INT64 data, exact in FP32
    expected = session.run(["label"], {"features": integers.astype(np.float32)})[0]
    assert infer(as_model(served, "xgboost"), "grpc", {"features": integers}, ["label"])["label"].tolist() == (
        expected.tolist()
    )


def test_v1_rows_and_class_labels(served):
    server, found, _ = served
    session = reference(found["xgboost"].onnx)
    rows = np.random.default_rng(4).normal(size=(3, 6)).astype(np.float32)
    label, probabilities = session.run(["label", "probabilities"], {"features": rows})
    body = httpx.post(
        f"{server.http_url}/v1/models/xgboost:predict",
        json={"instances": rows.tolist(), "parameters": {"probabilities": True, "labels": True}},
    ).json()
    assert body["predictions"] == label.tolist()
    np.testing.assert_allclose(body["probabilities"], probabilities, rtol=RTOL, atol=ATOL)
    assert body["labels"] == [["low", "mid", "high"][i] for i in probabilities.argmax(axis=1)]
    named = httpx.post(
        f"{server.http_url}/v1/models/xgboost:predict", json={"instances": [{"features": r} for r in rows.tolist()]}
    )
    assert named.json()["predictions"] == label.tolist()
    none = httpx.post(
        f"{server.http_url}/v1/models/lightgbm:predict", json={"instances": [[0] * 6], "parameters": {"labels": True}}
    )
    assert none.status_code == 400 and "class_labels" in none.json()["error"]


def test_v1_named_inputs_of_a_graph_that_is_not_batched(served):
    server, found, missing = served
    if "pytorch_vad" not in found:
        pytest.skip(missing["pytorch_vad"])
    feeds = found["pytorch_vad"].inputs(1, np.random.default_rng(5))
    expected = reference(found["pytorch_vad"].onnx).run(["output"], feeds)[0]
    body = httpx.post(
        f"{server.http_url}/v1/models/pytorch_vad:predict",
        json={"instances": [{name: array.tolist() for name, array in feeds.items()}]},
    ).json()
    np.testing.assert_allclose(body["predictions"], expected, rtol=RTOL, atol=ATOL)
    columnar = httpx.post(  # TF Serving's columnar form: whole tensors by name
        f"{server.http_url}/v1/models/pytorch_vad:predict",
        json={"inputs": {name: array.tolist() for name, array in feeds.items()}},
    ).json()
    np.testing.assert_allclose(columnar["predictions"], expected, rtol=RTOL, atol=ATOL)
    refused = httpx.post(f"{server.http_url}/v1/models/pytorch_vad:predict", json={"instances": [[0.0] * 512]})
    assert refused.status_code == 400 and "not batched along their first dimension" in refused.json()["error"]


# -- bad tensors ----------------------------------------------------------------------------------


def bad_cases(export) -> list[tuple[str, dict, str]]:
    """(what, feeds sent as they are, words of the 400's message)."""
    good = export.inputs(2, np.random.default_rng(9))
    first = next(iter(good))
    cases = [
        ("an unknown input", {**good, "nope": np.zeros(2, np.float32)}, "unknown inputs ['nope']"),
        ("a wrong rank", {**good, first: good[first][None]}, f"input '{first}': shape"),
        ("strings for numbers", {**good, first: np.full(good[first].shape, "a", object)}, f"input '{first}' is FP32"),
    ]
    if len(good) > 1:
        cases.append(("a missing input", {k: v for k, v in good.items() if k != first}, f"missing inputs ['{first}']"))
    if export.name == "pytorch_vad":
        cases += [
            ("fractions for an INT64 scalar", {**good, "sr": np.array(16000.5)}, "input 'sr' is INT64"),
            ("a fixed dimension", {**good, "state": np.zeros((3, 2, 128), np.float32)}, "the model takes 2"),
            ("one symbol, two sizes", {**good, "state": np.zeros((2, 3, 128), np.float32)}, "('batch') is 3"),
        ]
    elif export.name == "paddle_image":
        cases.append(("a fixed dimension", {"x": good["x"][:, :2]}, "dimension 1 is 2, the model takes 3"))
    else:
        narrow = {"features": good["features"][:, :5]}
        cases.append(("a fixed dimension", narrow, "dimension 1 is 5, the model takes 6"))
    return cases


def test_bad_tensors_are_400_naming_the_problem(served, export):
    url = f"{served[0].http_url}/v2/models/{export.name}/infer"
    for what, feeds, words in bad_cases(export):
        request = {
            "inputs": [
                {"name": n, "datatype": datatype_of(a), "shape": list(a.shape), "data": a.ravel().tolist()}
                for n, a in feeds.items()
            ]
        }
        response = httpx.post(url, json=request)
        assert response.status_code == 400, (what, response.text)
        assert words in response.json()["error"], (what, response.json()["error"])


def test_bad_tensors_over_grpc_are_invalid_argument(served, export):
    server = as_model(served, export.name)
    for what, feeds, words in bad_cases(export):
        with pytest.raises(grpc.RpcError) as error:
            clients.grpc_infer(server, [(n, datatype_of(a), a) for n, a in feeds.items()], [])
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, what
        assert words in error.value.details(), (what, error.value.details())


def test_a_value_the_graph_cannot_take_is_400_not_500(served):
    server, found, missing = served
    if "pytorch_vad" not in found:
        pytest.skip(missing["pytorch_vad"])
    feeds = {**found["pytorch_vad"].inputs(1, np.random.default_rng(0)), "input": np.zeros((1, 3), np.float32)}
    response = httpx.post(
        f"{server.http_url}/v2/models/pytorch_vad/infer",
        json={
            "inputs": [
                {"name": n, "datatype": datatype_of(a), "shape": list(a.shape), "data": a.ravel().tolist()}
                for n, a in feeds.items()
            ]
        },
    )
    assert response.status_code == 400 and "ONNX Runtime rejected the input" in response.json()["error"]


def test_a_pin_that_does_not_match_is_refused(tmp_path):
    found, _ = exports()
    directory = model_directory(next(e for e in found if e.name == "lightgbm"), tmp_path / "m")
    (directory / "model.onnx").write_bytes((directory / "model.onnx").read_bytes() + b"\0")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_server",
            f"--model_dir={directory}",
            "--model_name=m",
            f"--http_port={free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 1 and "does not match" in done.stdout + done.stderr


# -- the edge runtime -----------------------------------------------------------------------------


def test_the_edge_runtime_serves_a_generic_graph(served, tmp_path):
    _, found, _ = served
    export = found["xgboost"]
    directory = model_directory(export, tmp_path / "xgb")
    port = free_port()
    log_path = tmp_path / "edge.log"
    command = [sys.executable, "-m", "model_server.edge", f"--model_dir={directory}", "--model_name=xgb"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen([*command, f"--http_port={port}"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, lambda: process.poll() is not None and "edge exited", log_path.read_text, 60)
        feeds = export.inputs(3, np.random.default_rng(2))
        session = reference(export.onnx)
        server = dataclasses.replace(served[0], http_url=url, model_name="xgb")
        names = [o.name for o in session.get_outputs()]
        expected = dict(zip(names, session.run(names, feeds), strict=True))
        for protocol in ("v2-json", "v2-binary"):
            assert_same(infer(server, protocol, feeds, names), expected)
        assert httpx.get(f"{url}/v2/models/xgb").json()["inputs"] == [
            {"name": "features", "datatype": "FP32", "shape": [-1, 6]}
        ]
    finally:
        stop(process)


# -- batch scoring --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["paddle_image", "xgboost"])
def test_batch_scoring_takes_list_columns_and_answers_as_onnx_runtime(served, tmp_path, name):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, found, missing = served
    if name not in found:
        pytest.skip(missing[name])
    export = found[name]
    ((input_name, array),) = export.inputs(6, np.random.default_rng(11)).items()
    rows = array.tolist()  # nested lists: [3][48][192] per image, [6] per tree row
    rows[2] = None  # refused, into the errors file
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": list(range(6)), input_name: rows}), tmp_path / "in" / "part.parquet")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_server.batch",
            f"--model_dir={model_directory(export, tmp_path / 'model')}",
            f"--input={tmp_path / 'in'}",
            f"--output={tmp_path / 'out'}",
            "--keep_columns=id",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2, done.stderr[-2000:]  # a refused row: exit code 2
    table = pq.read_table(next((tmp_path / "out").glob("part-*.parquet")))
    assert table.column("id").to_pylist() == [0, 1, 3, 4, 5]
    session = reference(export.onnx)
    kept = array[[0, 1, 3, 4, 5]]
    for output in session.get_outputs():
        expected = session.run([output.name], {input_name: kept})[0]
        got = np.array(table.column(output.name).to_pylist()).reshape(expected.shape)
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    errors = (tmp_path / "out" / "_errors.jsonl").read_text()
    assert '"row":2' in errors and "a null list" in errors
