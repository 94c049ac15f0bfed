"""Shutdown under load, as Kubernetes does it: SIGTERM while clients keep sending.

Readiness must turn not-ready at once, every request sent within the drain window must be
answered (on new and on kept-alive connections), the listener must close only after readiness
said not-ready, and the process must exit 0 within drain + grace.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass

import httpx

from tests.support.servers import start_server

DRAIN, GRACE = 2.0, 5.0
ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@dataclass
class Sent:
    start: float
    ok: bool
    detail: str
    closes: bool = False  # the response said Connection: close
    end: float = 0.0


def load(url: str, keep_alive: bool, stop: threading.Event, out: list) -> None:
    client = httpx.Client(timeout=10) if keep_alive else None
    while not stop.is_set():
        start = time.monotonic()
        try:
            response = (client or httpx).post(url, json=ROW, timeout=10)
            closes = response.headers.get("connection", "").lower() == "close"
            out.append(Sent(start, response.status_code == 200, str(response.status_code), closes, time.monotonic()))
        except httpx.TransportError as exc:
            out.append(Sent(start, False, f"{type(exc).__name__}: {exc}"[:120], end=time.monotonic()))
            time.sleep(0.01)


def watch_readiness(url: str, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        now = time.monotonic()
        try:
            out.append((now, httpx.get(url, timeout=2).status_code))
        except httpx.ConnectError:
            out.append((now, "refused"))
        except httpx.TransportError as exc:  # a connection closed as the server stops
            out.append((now, type(exc).__name__))
        time.sleep(0.02)


def test_sigterm_drains_before_it_stops(demo_model_dir):
    args = (f"--drain_seconds={DRAIN}", f"--grace_seconds={GRACE}")
    with start_server(demo_model_dir, "iris", *args) as served:
        url = f"{served.http_url}/v1/models/iris:predict"
        stop, sent, readiness = threading.Event(), [], []
        threads = [threading.Thread(target=load, args=(url, i % 2 == 0, stop, sent)) for i in range(8)]
        threads.append(
            threading.Thread(target=watch_readiness, args=(f"{served.http_url}/v2/health/ready", stop, readiness))
        )
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        exit_code = served.process.wait(DRAIN + GRACE + 5)
        stopped = time.monotonic()
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join()

    assert exit_code == 0
    assert stopped - signalled < DRAIN + GRACE
    before = [s for s in sent if s.start < signalled]
    in_drain = [s for s in sent if signalled <= s.start < signalled + DRAIN - 0.3]
    assert before and all(s.ok for s in before)
    assert len(in_drain) > 50, "the load went on during the drain"
    # A request that failed after the drain ended had only started before it (a busy client can
    # take a while to connect): what must not happen is a failure while the server drains.
    drain_end = signalled + DRAIN
    failed = [f"{s.detail} at +{s.end - signalled:.3f}s" for s in in_drain if not s.ok and s.end < drain_end]
    assert failed == [], f"{len(failed)} of {len(in_drain)} requests sent while draining failed: {set(failed)}"
    assert any(s.closes for s in in_drain), "responses while draining say Connection: close"
    not_ready = [t for t, status in readiness if t >= signalled and status == 503]
    refused = [t for t, status in readiness if status == "refused"] + [
        s.start for s in sent if s.detail.startswith("ConnectError")
    ]
    assert not_ready and refused, (not_ready[:3], refused[:3])
    assert min(not_ready) - signalled < 1.0, "readiness turned not-ready at once"
    assert min(not_ready) < min(refused), "readiness was not-ready before the listener closed"
    assert min(refused) - signalled > DRAIN - 0.3, "the listener stayed open for the drain"
    assert "readiness now answers not-ready" in served.log()


def test_second_signal_skips_the_drain(demo_model_dir):
    with start_server(demo_model_dir, "iris", "--drain_seconds=30") as served:
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert httpx.get(f"{served.http_url}/v2/health/ready").status_code == 503
        assert httpx.post(f"{served.http_url}/v1/models/iris:predict", json=ROW).status_code == 200
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(10) == 0 and time.monotonic() - started < 10
