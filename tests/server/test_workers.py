"""``--workers N``: real servers with a supervisor and forked workers, real clients.

Which worker answered is read from prometheus_client's own per-process files: every worker writes
its counters to ``counter_<pid>.db`` in PROMETHEUS_MULTIPROC_DIR, which the test points at a
directory of its own, so a request counter per worker pid is what the server itself recorded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from model_server.kserve.workers import cpu_limit, requested_workers
from tests.server.test_shutdown import Sent, load, watch_readiness
from tests.support.clients import grpc_infer
from tests.support.servers import start_server

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
GRPC_INPUTS = [("input-0", "FP32", np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))]


def workers_of(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


def wait_for_workers(pid: int, count: int, timeout: float = 30, without: int | None = None) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = workers_of(pid)
        if len(workers) == count and without not in workers:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"{count} workers expected, have {workers_of(pid)}")


def requests_by_pid(metrics_dir: Path, protocol: str) -> dict[int, float]:
    """model_server_requests_total{protocol=...}, per worker, from each worker's own file."""
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "model_server_requests_total" and labels.get("protocol") == protocol:
                counts[pid] = counts.get(pid, 0) + value
    return counts


def scraped_requests(http_url: str, protocol: str) -> float:
    text = httpx.get(f"{http_url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "model_server_requests_total" and sample.labels.get("protocol") == protocol
    )


def predict(http_url: str) -> int:
    return httpx.post(f"{http_url}/v1/models/iris:predict", json=ROW, timeout=10).status_code


def served_with_workers(model_dir, tmp_path, *args, count=2, env=None):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **(env or {})}
    return metrics_dir, start_server(model_dir, "iris", f"--workers={count}", *args, env=environment)


def test_every_worker_answers_rest_and_grpc_and_one_scrape_sums_them(demo_model_dir, tmp_path):
    metrics_dir, server = served_with_workers(demo_model_dir, tmp_path)
    with server as served:
        workers = wait_for_workers(served.process.pid, 2)
        # Fresh connections from several threads, until the kernel has handed some to every worker.
        sent = {"v1": 0, "grpc": 0}
        for protocol, call in (
            ("v1", lambda: predict(served.http_url) == 200),
            ("grpc", lambda: grpc_infer(served, GRPC_INPUTS, ["predict"])["predict"].tolist() == [0]),
        ):
            for _ in range(40):
                with ThreadPoolExecutor(4) as pool:
                    results = [future.result() for future in [pool.submit(call) for _ in range(4)]]
                assert all(results)
                sent[protocol] += len(results)
                if set(requests_by_pid(metrics_dir, protocol)) >= workers:
                    break
            by_pid = requests_by_pid(metrics_dir, protocol)
            assert set(by_pid) == workers, f"{protocol}: answered by {by_pid}, workers {workers}"
            # One scrape, at whichever worker, reports what every worker counted.
            assert scraped_requests(served.http_url, protocol) == sum(by_pid.values()) == sent[protocol]


def test_a_killed_worker_is_replaced_while_the_others_serve(demo_model_dir, tmp_path):
    metrics_dir, server = served_with_workers(demo_model_dir, tmp_path)
    with server as served:
        workers = wait_for_workers(served.process.pid, 2)
        url = f"{served.http_url}/v1/models/iris:predict"
        stop, sent = threading.Event(), []
        threads = [threading.Thread(target=load, args=(url, False, stop, sent)) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        victim = min(workers)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for_workers(served.process.pid, 2, timeout=20, without=victim)
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join()
        assert victim not in replaced and len(replaced & workers) == 1
        survivor, newcomer = replaced & workers, replaced - workers
        # Only a request in flight at the killed worker may fail (one per client thread at most);
        # every request sent after the kill is answered, first by the survivor alone.
        failed = [s for s in sent if not s.ok]
        assert len(failed) <= len(threads), [s.detail for s in failed]
        assert all(s.start < killed for s in failed), [s.detail for s in failed]
        after = [s for s in sent if s.start > killed]
        assert len(after) > 5
        (survivor,), (newcomer,) = survivor, newcomer
        # The kernel hands connections on the shared listener to whichever worker accepts first:
        # keep sending (on fresh connections) until the replacement has answered some.
        deadline = time.monotonic() + 20
        while requests_by_pid(metrics_dir, "v1").get(newcomer, 0) == 0 and time.monotonic() < deadline:
            with ThreadPoolExecutor(4) as pool:
                assert all(code == 200 for code in pool.map(lambda _: predict(served.http_url), range(8)))
        by_pid = requests_by_pid(metrics_dir, "v1")
        assert by_pid.get(survivor, 0) > 0
        assert by_pid.get(newcomer, 0) > 0, "the replacement serves"
        # The dead worker's counts stay in the sum.
        assert by_pid.get(victim, 0) > 0
        assert scraped_requests(served.http_url, "v1") >= sum(1 for s in sent if s.ok)
        assert served.process.poll() is None
        assert f"(pid {victim}) died" in served.log()


def test_sigterm_drains_every_worker_under_load(demo_model_dir, tmp_path):
    drain, grace = 2.0, 5.0
    metrics_dir, server = served_with_workers(
        demo_model_dir, tmp_path, f"--drain_seconds={drain}", f"--grace_seconds={grace}"
    )
    with server as served:
        workers = wait_for_workers(served.process.pid, 2)
        url = f"{served.http_url}/v1/models/iris:predict"
        stop, sent, readiness = threading.Event(), [], []
        threads = [threading.Thread(target=load, args=(url, i % 2 == 0, stop, sent)) for i in range(6)]
        threads.append(
            threading.Thread(target=watch_readiness, args=(f"{served.http_url}/v2/health/ready", stop, readiness))
        )
        for thread in threads:
            thread.start()
        time.sleep(1)
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        exit_code = served.process.wait(drain + grace + 10)
        stopped = time.monotonic()
        stop.set()
        for thread in threads:
            thread.join()
    assert exit_code == 0
    assert stopped - signalled < drain + grace
    assert not any(Path(f"/proc/{pid}").exists() and _is_running(pid) for pid in workers)
    in_drain: list[Sent] = [s for s in sent if signalled <= s.start < signalled + drain - 0.3]
    assert len(in_drain) > 30, "the load went on during the drain"
    failed = [s.detail for s in in_drain if not s.ok and s.end < signalled + drain]
    assert failed == [], failed
    assert all(s.ok for s in sent if s.start < signalled)
    not_ready = [t for t, status in readiness if t >= signalled and status == 503]
    assert not_ready and min(not_ready) - signalled < 1.0, "readiness turned not-ready at once"
    # Both workers served during the drain.
    assert set(requests_by_pid(metrics_dir, "v1")) == workers


def _is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_auto_is_the_cgroup_cpu_limit(demo_model_dir, tmp_path):
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "cpu.max").write_text("200000 100000\n")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"MODEL_SERVER_CGROUP_ROOT": str(cgroup), "MODEL_SERVER_WORKERS": "auto"}
    with start_server(demo_model_dir, "iris", env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as served:
        assert len(wait_for_workers(served.process.pid, 2)) == 2
        assert predict(served.http_url) == 200


def test_a_limit_under_two_cpus_is_the_single_process(demo_model_dir, tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    with start_server(
        demo_model_dir, "iris", "--workers", "auto", env={"MODEL_SERVER_CGROUP_ROOT": str(tmp_path)}
    ) as served:
        assert predict(served.http_url) == 200
        assert workers_of(served.process.pid) == set()  # no supervisor: it serves itself
        assert "serving with" not in served.log()


def test_cgroup_files(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("400000 100000\n")
    assert cpu_limit(tmp_path) == 4
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert cpu_limit(tmp_path) == 1
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_limit(v1) == 3
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_limit(v1) is None


def test_workers_flag_over_environment():
    assert requested_workers(["--workers", "3"], {"MODEL_SERVER_WORKERS": "2"}) == 3
    assert requested_workers(["--workers=4"], {}) == 4
    assert requested_workers([], {"MODEL_SERVER_WORKERS": "2"}) == 2
    assert requested_workers([], {}) == 1


def test_bad_workers_value_is_refused(demo_model_dir):
    refused = pytest.raises(RuntimeError, match="--workers")
    with refused, start_server(demo_model_dir, "iris", "--workers=0", timeout=30):
        pass


def test_readiness_says_not_ready_while_a_dying_worker_backs_off(demo_model_dir, tmp_path):
    _, server = served_with_workers(demo_model_dir, tmp_path)
    with server as served:
        pid = served.process.pid
        workers = wait_for_workers(pid, 2)
        survivor = max(workers)
        statuses = []
        victim = min(workers)
        for _ in range(4):  # each kill within seconds of the start: back-off 0, then 0.5, 1, 2 s
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (workers_of(pid) - {survivor, victim}) == set():
                statuses.append(httpx.get(f"{served.http_url}/v2/health/ready", timeout=5).status_code)
                time.sleep(0.02)
            if 503 in statuses:
                break
            (victim,) = workers_of(pid) - {survivor}
        assert 503 in statuses, "readiness said nothing of a worker that keeps dying"
        assert "replacing it in 0.5s" in served.log()
        wait_for_workers(pid, 2, without=victim)
        deadline = time.monotonic() + 10
        while httpx.get(f"{served.http_url}/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "ready again once the worker is back"
            time.sleep(0.1)


GIVE_UP_SCRIPT = """
import signal, sys, time
from model_server.kserve.workers import Supervisor, WorkerHealth

health = WorkerHealth()

def serve(number):
    if number == 1:
        sys.exit(3)  # dies at once, every time
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with open(sys.argv[1], "a") as out:
        while not stopping:
            out.write(f"healthy {int(health.ok())}\\n")
            out.flush()
            time.sleep(0.05)
        out.write("stopped\\n")

sys.exit(Supervisor(2, serve, health).run())
"""


def test_a_worker_that_keeps_dying_makes_the_supervisor_give_up(tmp_path):
    """The supervisor alone (kserve/workers.py) in a fresh interpreter, with a worker function
    that exits at once: the server's own workers do not fail on demand."""
    out = tmp_path / "worker0.txt"
    done = subprocess.run([sys.executable, "-c", GIVE_UP_SCRIPT, str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "giving up" in done.stderr
    lines = out.read_text().splitlines()
    assert "healthy 0" in lines, "the healthy worker saw the back-off"
    assert lines[-1] == "stopped", "the healthy worker was stopped (drained) before the supervisor exited"


def test_workers_share_an_onnx_runtime_session_made_before_the_fork(tmp_path):
    """ONNX Runtime sessions are built (and checked) in the parent: every worker must predict with them."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    features, labels = make_classification(n_samples=300, n_features=6, random_state=0)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels)
    model_dir = tmp_path / "forest"
    model_dir.mkdir()
    joblib.dump(forest, model_dir / "model.joblib")
    metrics_dir, server = served_with_workers(model_dir, tmp_path, "--backend=onnx")
    with server as served:
        assert "predicting with OnnxEngine" in served.log()
        workers = wait_for_workers(served.process.pid, 2)
        url = f"{served.http_url}/v1/models/iris:predict"
        for _ in range(20):
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda _: httpx.post(url, json={"instances": features[:3].tolist()}), range(4)))
            assert all(answer.json()["predictions"] == forest.predict(features[:3]).tolist() for answer in answers)
            if set(requests_by_pid(metrics_dir, "v1")) >= workers:
                break
        assert set(requests_by_pid(metrics_dir, "v1")) == workers


def test_a_taken_grpc_port_fails_once_before_forking(demo_model_dir):
    with socket.socket() as holder:  # no SO_REUSEPORT: the workers could not share it
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        refused = pytest.raises(RuntimeError, match=f"--grpc_port {port}: Address already in use")
        with refused, start_server(demo_model_dir, "iris", "--workers=2", f"--grpc_port={port}", timeout=30):
            pass
