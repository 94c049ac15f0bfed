"""The data plane in-process: lookup, version check, read, predict, encode, one count per request;
readiness, metadata, and the repository API's gate."""

import asyncio
import logging

import numpy as np
import pytest
from prometheus_client import REGISTRY

from model_server.core.access import ManagementAccess
from model_server.core.codec import PREDICT, Tensor, V1Request, V2Request
from model_server.core.dataplane import DataPlane, FixedRegistry, ServedModel
from model_server.core.errors import Disabled, InvalidInput, ModelNotFound, ModelNotReady, RequestTooLarge, Unauthorized

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def count(protocol: str, code: str) -> float:
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == "model_server_requests_total" and s.labels["protocol"] == protocol and s.labels["code"] == code
    )


@pytest.fixture
def registry(iris_predictor):
    return FixedRegistry(iris=ServedModel("iris", iris_predictor), loading=ServedModel("loading"))


def call(registry, name="iris", version=None, request=None, encode=None, protocol="seam-test"):
    request = request or V1Request(ROWS, [PREDICT])

    async def read():
        if isinstance(request, Exception):
            raise request
        return request

    def encode_as_dict(request, response):
        return {"model": response.model_name, "version": response.model_version, "outputs": response.outputs}

    dataplane = DataPlane(registry)
    return asyncio.run(dataplane.infer(name, version, read, protocol=protocol, encode=encode or encode_as_dict))


def test_success_is_encoded_and_counted_200(registry):
    before = count("seam-test", "200")
    result = call(registry, version="1")
    assert result["model"] == "iris" and result["version"] == "1"
    assert result["outputs"][0].data.tolist() == [0, 2]
    assert count("seam-test", "200") == before + 1


def test_encoder_sees_the_decoded_request(registry):
    seen = []
    request = V2Request("req-7", [Tensor("x", "FP64", np.array(ROWS))], None, {"*"})
    call(registry, request=request, encode=lambda req, resp: seen.append((req.id, req.binary_outputs)))
    assert seen == [("req-7", {"*"})]


@pytest.mark.parametrize(
    "name,version,request_,error,code",
    [
        ("nope", None, None, ModelNotFound, "404"),
        ("iris", "2", None, ModelNotFound, "404"),
        ("loading", None, None, ModelNotReady, "503"),
        ("iris", None, RequestTooLarge("request body exceeds 10 bytes"), RequestTooLarge, "413"),
        ("iris", None, InvalidInput("request body is not valid JSON"), InvalidInput, "400"),
        ("iris", None, V1Request([[1, 2]], [PREDICT]), InvalidInput, "400"),
    ],
)
def test_each_failure_is_raised_and_counted_with_its_status(registry, name, version, request_, error, code):
    before = count("seam-test", code)
    with pytest.raises(error):
        call(registry, name, version, request_)
    assert count("seam-test", code) == before + 1


def test_wrong_version_names_the_served_one(registry):
    with pytest.raises(ModelNotFound, match="model iris has version 1, not 2"):
        call(registry, version="2")


def test_encoding_failure_is_a_counted_logged_500(registry, caplog):
    def broken(request, response):
        raise TypeError("cannot encode")

    before = count("seam-test", "500")
    with caplog.at_level(logging.ERROR, "model_server.core.dataplane"), pytest.raises(TypeError):
        call(registry, encode=broken)
    assert count("seam-test", "500") == before + 1
    assert [r.message for r in caplog.records] == ["inference on model iris failed"] and caplog.records[0].exc_info


def test_client_mistakes_are_not_logged(registry, caplog):
    with caplog.at_level(logging.DEBUG, "model_server.core.dataplane"), pytest.raises(InvalidInput):
        call(registry, request=V1Request([[1, 2]], [PREDICT]))
    assert caplog.records == []


def test_ready_needs_every_model_loaded_and_not_draining(registry, iris_predictor):
    dataplane = DataPlane(registry)
    assert dataplane.live() and not dataplane.ready()  # "loading" has no version yet
    registry["loading"].swap({"1": iris_predictor})
    registry["loading"].ready = True
    assert dataplane.ready()
    dataplane.state.draining = True
    assert not dataplane.ready() and dataplane.live()
    assert not DataPlane(FixedRegistry()).ready()  # no model at all is not ready (stock KServe says it is)


def test_model_ready_and_metadata_answer_for_the_version_asked(registry):
    dataplane = DataPlane(registry)
    assert dataplane.model_ready("iris") and dataplane.model_ready("iris", "1")
    assert not dataplane.model_ready("loading")
    with pytest.raises(ModelNotFound, match="does not exist"):
        dataplane.model_ready("nope")
    with pytest.raises(ModelNotFound, match="not 7"):
        dataplane.model_metadata("iris", "7")
    metadata = dataplane.model_metadata("iris", "1")
    assert metadata["name"] == "iris" and metadata["versions"] == ["1"]
    assert [tensor["name"] for tensor in metadata["inputs"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    dataplane.state.draining = True
    assert not dataplane.model_ready("iris")


def test_the_repository_api_is_gated_before_the_registry_is_touched(registry):
    closed = DataPlane(registry)  # FixedRegistry has no load/unload: reaching it would raise AttributeError
    with pytest.raises(Disabled, match="--repository_api"):
        asyncio.run(closed.load("iris", None))
    with pytest.raises(Disabled):
        asyncio.run(closed.repository_index("Bearer anything"))
    guarded = DataPlane(registry, access=ManagementAccess(True, "s3cret"))
    for authorization in (None, "Bearer wrong", "Basic s3cret"):
        with pytest.raises(Unauthorized):
            asyncio.run(guarded.unload("iris", authorization))


def batch_size_count() -> float:
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == "model_server_batch_size_count" and s.labels["model"] == ""
    )


def test_infer_many_predicts_the_good_requests_together_and_fails_the_bad_alone(registry, iris_predictor):
    rows = np.random.default_rng(7).uniform(0.1, 7, size=(40, 4))
    items = [V2Request(f"r{i}", [Tensor("x", "FP64", rows[i : i + 1])], None, set()) for i in range(40)]
    items[3] = V1Request([[1, 2]], [PREDICT])  # 2 features: the schema refuses it
    items[17] = InvalidInput("request body is not valid JSON")  # fails decoding
    items[25] = V1Request(rows[25:28].tolist(), [PREDICT])  # three rows in one request

    def decode(item):
        if isinstance(item, Exception):
            raise item
        return item

    def encode(item, request, response):
        return response.outputs[0].data.tolist()

    before = {code: count("seam-test-many", code) for code in ("200", "400")}
    calls = batch_size_count()
    answers = asyncio.run(
        DataPlane(registry).infer_many("iris", None, items, decode, protocol="seam-test-many", encode=encode)
    )
    expected = iris_predictor.estimator.predict(rows).tolist()
    for i, answer in enumerate(answers):
        if i in (3, 17):
            assert isinstance(answer, InvalidInput)
        elif i == 25:
            assert answer == expected[25:28]
        else:
            assert answer == [expected[i]], i
    assert "instance 0 has 2 features, the model expects 4" in str(answers[3])
    assert count("seam-test-many", "200") == before["200"] + 38
    assert count("seam-test-many", "400") == before["400"] + 2
    assert batch_size_count() == calls + 1  # 40 rows in one estimator call


def test_infer_many_splits_batches_at_max_batch_size_and_retries_a_failed_one_alone(demo_model_dir, tmp_path):
    import joblib

    from model_server.core.predictor import Predictor
    from tests.support.estimators import FailsOnNegative

    model_dir = tmp_path / "fragile"
    model_dir.mkdir()
    joblib.dump(FailsOnNegative().fit(np.zeros((1, 2))), model_dir / "model.joblib")
    predictor = Predictor.load(model_dir, max_batch_size=4, model_name="fragile")
    requests = [V1Request([[1, 1]], [PREDICT]) for _ in range(10)]
    requests[6] = V1Request([[-1, -1]], [PREDICT])  # the model raises on it, and only on it
    results = asyncio.run(predictor.infer_many(requests))
    assert [isinstance(r, Exception) for r in results] == [i == 6 for i in range(10)]
    assert "simulated model failure" in str(results[6])
    assert all(r[0].data.tolist() == [1] for i, r in enumerate(results) if i != 6)


def test_infer_many_refuses_every_item_of_an_unknown_or_unready_model(registry):
    dataplane = DataPlane(registry)

    def decode(item):
        raise AssertionError("not decoded: the model is not there")

    for name, error in (("nope", ModelNotFound), ("loading", ModelNotReady)):
        answers = asyncio.run(dataplane.infer_many(name, None, [1, 2], decode, protocol="seam-test", encode=None))
        assert [type(a) for a in answers] == [error, error]
