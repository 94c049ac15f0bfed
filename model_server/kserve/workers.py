"""``--workers N``: pre-fork serving. The parent loads (and warms) the models once, binds the REST
listener, then forks N workers that share the model's pages copy-on-write; it serves nothing
itself and only supervises them (gunicorn's arbiter design).

Why not uvicorn's ``Multiprocess`` supervisor or KServe's ``--workers``: both *spawn* their
children, which import the app again and would load the model N times (N x memory, N x start
time) and, in KServe's case, without this server's routes. Gunicorn's arbiter forks after
``preload_app``, but its workers are its own (its config, its app loading, its signals): our
workers must run KServe's ModelServer with our REST routes *and* a gRPC server, and drain the
way the single process does. What is taken from them: fork after load, one inherited listener,
replace a dead worker, back off when it keeps dying, forward SIGTERM and wait.

Sockets: REST uses one listening socket bound by the parent and inherited by every worker
(uvicorn serves given sockets). The kernel queues connections on that one socket, so a worker
that dies leaves the connections waiting in the queue to the others (with SO_REUSEPORT each
worker has its own queue, and the connections queued at a dying worker are reset), and a port
already taken fails once, in the parent, before anything forks. gRPC's Python server cannot
serve an inherited socket, so each worker binds the gRPC port itself with ``grpc.so_reuseport``.

Metrics: prometheus_client's multiprocess mode. ``PROMETHEUS_MULTIPROC_DIR`` must be set before
prometheus_client is imported (``prepare_multiprocess_metrics``, first thing in ``__main__``);
every worker writes its own files there, a scrape at any worker sums them
(``MultiProcessCollector``), and a dead worker's counters and histograms stay in the sum.

``--workers auto``: the CPU limit of the container, from its cgroup (``cpu_limit``).

Versions and hot reload (the repository API, ``--watch``): the supervisor keeps the repository
and loads new versions in a low-priority thread, then replaces the workers one at a time with
fresh forks (``kserve/reloader.py``; ``Supervisor._roll_over``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import SettingsError

if TYPE_CHECKING:  # not imported here: it imports prometheus_client, which must wait (above)
    from .reloader import Reloader, Rollout

logger = logging.getLogger("model_server")

# Where the container's cgroup files are; a test points this at a fake one.
CGROUP_ROOT_ENV = "MODEL_SERVER_CGROUP_ROOT"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A worker that dies within this many seconds of its start died "at once"; after GIVE_UP such
# deaths in a row the supervisor stops and exits non-zero.
QUICK_DEATH_SECONDS = 10.0
GIVE_UP = 5
MAX_BACKOFF_SECONDS = 30.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WAKE_SIGNAL = signal.SIGUSR1  # the reloader's word to the main thread: a roll-over is wanted
WAITED_SIGNALS = {signal.SIGCHLD, WAKE_SIGNAL, *STOP_SIGNALS}
# A roll-over: how long a fresh worker may take to serve, and an old one to stop accepting.
READY_SECONDS = 60.0
RETIRE_SECONDS = 10.0


def cpu_limit(root: str | os.PathLike | None = None) -> int | None:
    """Whole CPUs the cgroup's quota allows (at least 1), or None without a quota.
    cgroup v2: ``cpu.max`` ("200000 100000", or "max 100000"); v1: ``cpu/cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us`` (-1: none). Rounded down: a 1.5 CPU limit with 2 busy workers is throttled."""
    root = Path(root or os.environ.get(CGROUP_ROOT_ENV) or "/sys/fs/cgroup")
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.floor(int(quota) / int(period)))
    except FileNotFoundError:
        pass
    for directory in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota = int((directory / "cpu.cfs_quota_us").read_text())
            period = int((directory / "cpu.cfs_period_us").read_text())
        except FileNotFoundError:
            continue
        return None if quota <= 0 else max(1, math.floor(quota / period))
    return None


def auto_workers(root: str | os.PathLike | None = None) -> int:
    """The cgroup's CPU limit, else the CPUs this process may run on."""
    return cpu_limit(root) or len(os.sched_getaffinity(0))


def workers_count(text: str) -> int:
    """--workers: a number of processes, or auto."""
    if str(text).strip().lower() == "auto":
        return auto_workers()
    try:
        return int(text)  # at least 1: the setting's minimum
    except ValueError:
        raise ValueError(f"expected a number of processes or auto, got {text!r}") from None


def requested_workers(argv: list[str], environ: Mapping[str, str]) -> int:
    """--workers (else MODEL_SERVER_WORKERS) as the settings will read it, before they can be parsed."""
    value = environ.get("MODEL_SERVER_WORKERS", "1")
    for i, arg in enumerate(argv):
        if arg == "--workers" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
    try:
        return max(1, workers_count(value))
    except ValueError:
        return 1  # the settings say what is wrong with it


def resolve_auto_flag(argv: list[str]) -> None:
    """``--workers auto`` in ``argv`` becomes the number it means: KServe's own parser reads
    sys.argv when KServe is imported, and its --workers takes a number only."""
    for i, arg in enumerate(argv):
        if arg == "--workers" and i + 1 < len(argv) and argv[i + 1].strip().lower() == "auto":
            argv[i + 1] = str(auto_workers())
        elif arg.replace(" ", "").lower() == "--workers=auto":
            argv[i] = f"--workers={auto_workers()}"


def prepare_multiprocess_metrics(argv: list[str], environ=os.environ) -> None:
    """With more than one worker, give prometheus_client a fresh directory for every worker's
    values (unless PROMETHEUS_MULTIPROC_DIR is set already); must run before it is imported."""
    if MULTIPROC_ENV in environ or requested_workers(argv, environ) == 1:
        return
    if "prometheus_client" in sys.modules:
        logger.warning("prometheus_client imported before --workers was seen: /metrics shows one worker")
        return
    environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="model-server-metrics-")
    environ["MODEL_SERVER_OWN_METRICS_DIR"] = "1"  # ours to delete at exit


def multiprocess_registry():
    """A registry that sums every worker's values, for /metrics."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def listening_socket(port: int, host: str = "0.0.0.0", backlog: int = 2048) -> socket.socket:
    """The REST listener every worker inherits (uvicorn's own bind, done once in the parent)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SettingsError(f"--http_port {port}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def check_reusable_port(port: int) -> None:
    """Fail once, before forking, if a port the workers will each bind with SO_REUSEPORT (gRPC's)
    is held by a socket without it: otherwise every worker would die binding it."""
    # gRPC binds [::] (both families), or 0.0.0.0 where the host has no IPv6.
    family, host = (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "0.0.0.0")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise SettingsError(f"--grpc_port {port}: {exc.strerror}") from None
    finally:
        sock.close()


class WorkerHealth:
    """One byte shared by the supervisor and its workers: 1 while a worker keeps dying (readiness
    then answers not-ready: the pod serves with fewer workers than it was given)."""

    def __init__(self):
        self._byte = mmap.mmap(-1, 1)  # anonymous and shared: survives fork

    def set_failing(self, failing: bool) -> None:
        self._byte[0] = 1 if failing else 0

    def ok(self) -> bool:
        return self._byte[0] == 0


@dataclass
class _Slot:
    number: int
    pid: int = 0
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None


class Supervisor:
    """Fork ``count`` workers running ``serve(number)``; replace those that die; on SIGTERM or
    SIGINT pass the signal on (each worker drains) and wait for all of them. ``run`` returns the
    exit code: 0 after a drain, 1 if a worker kept dying and the supervisor gave up.

    ``reloader`` (``kserve/reloader.py``): the repository kept here; each worker gets a control
    channel (``worker_channel``, in the worker) and is replaced by a fresh fork when what is
    served changes."""

    def __init__(
        self,
        count: int,
        serve: Callable[[int], None],
        health: WorkerHealth | None = None,
        reloader: Reloader | None = None,
    ):
        self.count = count
        self.serve = serve
        self.health = health or WorkerHealth()
        self.reloader = reloader
        self.slots = [_Slot(n) for n in range(count)]
        self.retiring: set[int] = set()  # replaced workers finishing what they have in flight
        self.worker_channel: socket.socket | None = None
        self.stopping = False
        self.gave_up = False

    def run(self) -> int:
        # Signals arrive through sigtimedwait, never as handlers: nothing runs between a fork and
        # the worker's own handlers. SIGCHLD needs a handler to be queued at all (the reloader's
        # wake-up signal too). Threads started after this inherit the mask.
        for sig in (signal.SIGCHLD, WAKE_SIGNAL):
            signal.signal(sig, lambda *_: None)
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(WAITED_SIGNALS))
        try:
            if self.reloader is not None:
                self.reloader.start()
            for slot in self.slots:
                self._spawn(slot)
            while self._alive() or not self.stopping:
                self._reap()
                self._restart_due()
                self._roll_over_when_asked()
                self.health.set_failing(any(s.restart_at is not None and s.quick_deaths > 1 for s in self.slots))
                if not self._alive() and self.stopping:
                    break
                info = signal.sigtimedwait(WAITED_SIGNALS, self._wait_seconds())
                if info is not None and info.si_signo in STOP_SIGNALS:
                    self._stop(signal.Signals(info.si_signo))
        finally:
            self._cleanup_metrics()
        return 1 if self.gave_up else 0

    def _alive(self) -> bool:
        return any(slot.pid for slot in self.slots) or bool(self.retiring)

    # -- roll-over: every worker replaced by a fresh fork (kserve/reloader.py) ---------------------

    def _roll_over_when_asked(self) -> None:
        if self.reloader is None:
            return
        while (rollout := self.reloader.next_rollout()) is not None:
            rollout.wanted = len(self.slots)
            try:
                if not self.stopping:
                    self._roll_over(rollout)
            finally:
                rollout.done.set()

    def _roll_over(self, rollout: Rollout) -> None:
        """One slot at a time: fork a fresh worker (it has the supervisor's models as they are
        now), wait until it serves, then retire the old one, which stops accepting and finishes
        what it has in flight. The worker that asked is retired by its answer instead (it is
        waiting for that answer: it must not be waited for)."""
        for slot in self.slots:
            old = slot.pid
            if old:
                self.retiring.add(old)
                slot.pid = 0
            with self.reloader.fork_lock:  # free: the loader waits for this roll-over
                self._spawn(slot)
            new = slot.pid
            if not self._wait_for(lambda new=new: self.reloader.is_ready(new), READY_SECONDS, new):
                logger.error("worker %d (pid %d) did not start serving: the roll-over stops", slot.number, new)
                self._keep_old(slot, old, new)
                return
            if old and old == rollout.requester:
                rollout.requester_replaced = True
            elif old:
                self.reloader.retire(old)
                if not self._wait_for(lambda old=old: self.reloader.has_retired(old), RETIRE_SECONDS, None):
                    logger.error("worker pid %d did not retire: stopping it", old)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(old, signal.SIGTERM)
            rollout.replaced += 1
            logger.info("worker %d replaced (pid %s -> %d)", slot.number, old or "none", new)

    def _keep_old(self, slot: _Slot, old: int, new: int) -> None:
        """A fresh worker that did not come up: the old one keeps its slot."""
        if self.stopping:
            return  # a stop signal came: every worker, old or new, was told to drain
        if slot.pid == new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(new, signal.SIGKILL)
            self.retiring.add(new)
        if old and old in self.retiring:
            self.retiring.discard(old)
            slot.pid, slot.restart_at = old, None
        elif slot.pid == new:
            slot.pid, slot.restart_at = 0, time.monotonic() + 1.0

    def _wait_for(self, condition: Callable[[], bool], seconds: float, pid: int | None) -> bool:
        """Until ``condition`` holds, reaping workers meanwhile; False after ``seconds``, when
        ``pid`` died, or when a stop signal came."""
        deadline = time.monotonic() + seconds
        while not condition():
            if self.stopping or time.monotonic() > deadline:
                return False
            if pid is not None and not any(slot.pid == pid for slot in self.slots):
                return False  # reaped: it died
            info = signal.sigtimedwait(WAITED_SIGNALS, 0.01)
            if info is not None and info.si_signo in STOP_SIGNALS:
                self._stop(signal.Signals(info.si_signo))
            self._reap()
        return True

    def _wait_seconds(self) -> float:
        due = [s.restart_at for s in self.slots if s.restart_at is not None and not self.stopping]
        return max(0.01, min(due) - time.monotonic()) if due else 1.0

    def _spawn(self, slot: _Slot) -> None:
        ours = theirs = None
        supervisors_ends = []
        if self.reloader is not None:
            ours, theirs = socket.socketpair()
            # Listed before the fork: the child must not take a lock another thread may hold.
            supervisors_ends = [ours, *self.reloader.channels()]
        pid = os.fork()
        if pid == 0:
            for sock in supervisors_ends:
                sock.close()  # the supervisor's ends, to this and the other workers
            self.worker_channel = theirs
            self._be_worker(slot.number)
        if ours is not None:
            theirs.close()
            self.reloader.attach(pid, ours)
        slot.pid, slot.started, slot.restart_at = pid, time.monotonic(), None
        logger.info("worker %d started (pid %d)", slot.number, pid)

    def _be_worker(self, number: int) -> None:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            for sig in (signal.SIGCHLD, WAKE_SIGNAL, *STOP_SIGNALS):
                signal.signal(sig, signal.SIG_DFL)
            self.serve(number)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            logger.exception("worker %d failed", number)
        finally:
            logging.shutdown()
            os._exit(code)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.reloader is not None:
                self.reloader.forget(pid)
            if pid in self.retiring:
                self.retiring.discard(pid)
                self._mark_dead(pid)
                logger.info("replaced worker (pid %d) stopped (%s)", pid, os.waitstatus_to_exitcode(status))
                continue
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            self._mark_dead(pid)
            slot.pid = 0
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                logger.info("worker %d (pid %d) stopped (%s)", slot.number, pid, code)
                continue
            lived = time.monotonic() - slot.started
            slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 1
            if slot.quick_deaths > GIVE_UP:
                logger.error("worker %d died %d times in a row: giving up", slot.number, slot.quick_deaths)
                self.gave_up = True
                self._stop(signal.SIGTERM)
                continue
            backoff = 0.0 if slot.quick_deaths == 1 else min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (slot.quick_deaths - 2))
            logger.error(
                "worker %d (pid %d) died (%s) after %.1fs; replacing it in %gs", slot.number, pid, code, lived, backoff
            )
            slot.restart_at = time.monotonic() + backoff

    def _restart_due(self) -> None:
        now = time.monotonic()
        due = [s for s in self.slots if s.restart_at is not None and s.restart_at <= now and not self.stopping]
        if not due:
            return
        # Never fork while the reloader's loader thread loads (a lock it holds would stay held in
        # the child): the replacement waits for the load to end (the loader wakes this thread).
        lock = self.reloader.fork_lock if self.reloader is not None else None
        if lock is not None and not lock.acquire(blocking=False):
            return
        try:
            for slot in due:
                self._spawn(slot)
        finally:
            if lock is not None:
                lock.release()

    def _stop(self, sig: signal.Signals) -> None:
        if not self.stopping:
            logger.info("%s: every worker drains, then stops", sig.name)
        self.stopping = True  # a second signal goes on to the workers too: they skip the drain
        for slot in self.slots:
            slot.restart_at = None
        for pid in [slot.pid for slot in self.slots if slot.pid] + sorted(self.retiring):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    @staticmethod
    def _mark_dead(pid: int) -> None:
        if MULTIPROC_ENV in os.environ:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)

    @staticmethod
    def _cleanup_metrics() -> None:
        if os.environ.get("MODEL_SERVER_OWN_METRICS_DIR") and MULTIPROC_ENV in os.environ:
            shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)
