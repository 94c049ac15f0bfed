"""The payload log's queue in-process, with sinks defined here that record, block or fail (the
real sinks, against real peers, are tests/server/test_payload_log.py): one event per request
with its request and answer (or error and status), drop-and-count when the queue is full without
a request waiting, retries with backoff then failed-and-counted, modes and sampling, settings."""

import asyncio

import pytest
from prometheus_client import REGISTRY

from model_server.core.codec import PREDICT, V1Request
from model_server.core.dataplane import DataPlane, FixedRegistry, ServedModel
from model_server.core.errors import InvalidInput, SettingsError
from model_server.core.payload_log import PayloadLogger
from model_server.core.settings import PayloadLogSettings

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def events_total(sink: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("model_server_payload_log_events_total", {"sink": sink, "outcome": outcome})
    return value or 0.0


class RecordingSink:
    def __init__(self, name):
        self.name = name
        self.events = []
        self.closed = False

    async def send(self, events):
        self.events.extend(e.as_dict() for e in events)

    async def flush(self):
        pass

    async def close(self):
        self.closed = True


class BlockedSink(RecordingSink):
    """Never answers: a sink whose peer hangs."""

    async def send(self, events):
        await asyncio.Event().wait()


class FailingSink(RecordingSink):
    def __init__(self, name, failures):
        super().__init__(name)
        self.failures = failures
        self.attempts = 0

    async def send(self, events):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("sink down")
        await super().send(events)


async def infer(dataplane, request, traceparent=None):
    async def read():
        if isinstance(request, Exception):
            raise request
        return request

    def encode(request, response):
        return response

    return await dataplane.infer("iris", None, read, protocol="v1", encode=encode, traceparent=traceparent)


def run_requests(registry, logger, requests, settle=0.05):
    dataplane = DataPlane(registry, payload_log=logger)

    async def main():
        answers = []
        for request in requests:
            try:
                answers.append(await infer(dataplane, request, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"))
            except Exception as exc:
                answers.append(exc)
        await asyncio.sleep(settle)
        await dataplane.close()
        return answers

    return asyncio.run(main())


@pytest.fixture
def registry(iris_predictor):
    return FixedRegistry(iris=ServedModel("iris", iris_predictor))


def test_every_request_and_its_answer_or_error_is_one_event(registry):
    sink = RecordingSink("unit-record")
    run_requests(registry, PayloadLogger(sink), [V1Request(ROWS, [PREDICT]), InvalidInput("row 0 has 3 values")])
    ok, bad = sink.events
    assert ok["request"] == {"instances": ROWS}
    assert ok["status"] == 200 and ok["error"] is None and ok["model"] == "iris" and ok["protocol"] == "v1"
    (output,) = ok["response"]["outputs"]
    assert output["shape"] == [2] and len(output["data"]) == 2
    assert ok["traceparent"].startswith("00-aaaa") and ok["ended"] >= ok["started"] and ok["latency_ms"] > 0
    assert bad["status"] == 400 and bad["response"] == {"error": "row 0 has 3 values"} and bad["request"] is None
    assert ok["id"] != bad["id"]
    assert events_total("unit-record", "sent") == 2 and sink.closed


def test_a_full_queue_drops_and_counts_and_no_request_waits(registry):
    sink = BlockedSink("unit-blocked")
    logger = PayloadLogger(sink, queue_size=3, close_timeout=0.1)
    answers = run_requests(registry, logger, [V1Request(ROWS, [PREDICT])] * 20, settle=0.05)
    assert all(not isinstance(a, Exception) for a in answers)  # every request answered while the sink hangs
    dropped, failed = events_total("unit-blocked", "dropped"), events_total("unit-blocked", "failed")
    # At most the queue and the batch the hung drain took were held; each event is counted once:
    # dropped at the full queue, or failed when shutdown could not deliver it.
    assert dropped >= 20 - 7  # held: one taken by get(), up to 3 more in its batch, 3 queued again
    assert dropped + failed == 20 and events_total("unit-blocked", "sent") == 0


def test_a_down_sink_is_retried_with_backoff_then_counted_failed(registry):
    recovering = FailingSink("unit-recovering", failures=2)
    run_requests(registry, PayloadLogger(recovering, backoff_seconds=0.001), [V1Request(ROWS, [PREDICT])], settle=0.2)
    assert recovering.attempts == 3 and len(recovering.events) == 1
    assert REGISTRY.get_sample_value("model_server_payload_log_retries_total", {"sink": "unit-recovering"}) == 2
    down = FailingSink("unit-down", failures=100)
    answers = run_requests(
        registry, PayloadLogger(down, retries=3, backoff_seconds=0.001), [V1Request(ROWS, [PREDICT])], settle=0.2
    )
    assert not isinstance(answers[0], Exception)
    assert down.attempts == 4 and events_total("unit-down", "failed") == 1 and events_total("unit-down", "sent") == 0


@pytest.mark.parametrize(("mode", "has_request", "has_response"), [("request", True, False), ("response", False, True)])
def test_a_mode_keeps_only_its_half(registry, mode, has_request, has_response):
    sink = RecordingSink(f"unit-{mode}")
    run_requests(registry, PayloadLogger(sink, mode=mode), [V1Request(ROWS, [PREDICT])])
    (event,) = sink.events
    assert (event["request"] is not None) == has_request
    assert (event["response"] is not None) == has_response


def test_sampling_logs_that_share_of_requests(registry):
    none, every = RecordingSink("unit-none"), RecordingSink("unit-every")
    run_requests(registry, PayloadLogger(none, sample_rate=0.0), [V1Request(ROWS, [PREDICT])] * 10)
    run_requests(registry, PayloadLogger(every, sample_rate=1.0), [V1Request(ROWS, [PREDICT])] * 10)
    assert len(none.events) == 0 and len(every.events) == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log_payloads", "all"], "needs --log_sink"),
        (["--log_payloads", "all", "--log_sink", "ftp://host/x"], "expected http(s)://"),
        (["--log_sample_rate", "1.5"], "at most 1"),
        (["--log_payloads", "some"], "invalid choice"),
    ],
)
def test_unusable_settings_stop_with_the_flag_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        PayloadLogSettings.from_args(argv, environ={})
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_kafka_url_needs_a_topic():
    from model_server.payload_log import sink_for

    settings = PayloadLogSettings(log_payloads="all", log_sink="kafka://127.0.0.1:9092")
    with pytest.raises(SettingsError, match="topic"):
        sink_for(settings.log_sink, settings)


def test_the_cloudevent_extensions_component_and_endpoint_come_from_the_environment(monkeypatch):
    from model_server.payload_log.http_sink import CloudEventSink

    monkeypatch.delenv("MODEL_SERVER_LOG_COMPONENT", raising=False)
    monkeypatch.delenv("MODEL_SERVER_LOG_ENDPOINT", raising=False)
    default = CloudEventSink("http://receiver.test/", "iris").extensions
    assert (default["ce-component"], default["ce-endpoint"]) == ("predictor", "")
    monkeypatch.setenv("MODEL_SERVER_LOG_COMPONENT", "transformer")
    monkeypatch.setenv("MODEL_SERVER_LOG_ENDPOINT", "canary")
    extensions = CloudEventSink("http://receiver.test/", "iris").extensions
    assert (extensions["ce-component"], extensions["ce-endpoint"]) == ("transformer", "canary")
