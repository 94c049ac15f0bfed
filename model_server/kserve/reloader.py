"""Versions and hot reload with ``--workers`` above 1: the supervisor owns the repository.

The supervisor serves nothing; it loaded the models before forking and keeps that repository
(``core/repository.py``) as the one truth. A worker that gets a repository call (REST or gRPC
load, unload, index) forwards it over its control channel (``kserve/control.py``); ``--watch``
polls here, in the supervisor. Two threads of the supervisor do the work:

- the **control thread** reads every worker's channel: ``index`` is answered at once (the same
  for every worker, LOADING while a load runs), ``load`` and ``unload`` are queued;
- the **loader thread**, at nice ``LOADER_NICE`` (Linux nice is per thread: forks from the main
  thread stay at 0), runs the queue one call at a time, and polls for ``--watch`` when idle. It
  loads, warms and checks a version exactly as one process does (``ModelRepository.load_now``).
  When what is served changed, it asks the supervisor's main thread to roll the workers over
  (``workers.Supervisor``): fork a fresh worker, which inherits the new models copy-on-write, wait
  until it serves, retire one old worker (it stops accepting and finishes what it has in flight:
  no drain period, no readiness change for the pod), and so on for each. Only then is the
  calling worker answered, with ``retire``: it is one of the old ones, and it stops accepting
  before it answers its client, so it never has to wait for itself. A call that fails (a bad
  model: 400, an unknown one: 404) changes nothing: no worker is replaced, the client gets the
  error, and the index shows the reason, as with one process.

Why this design: no serving process ever unpickles, converts or checks a version (with one
process that costs the requests beside it their p99), and a new version costs one fork per
worker instead of a load per worker. A load or unload reaches every worker or none, because the
workers that serve after the answer were all forked after the change.

Forking while another thread holds a lock would leave that lock held in the child. The loader
holds ``fork_lock`` while it loads; the main thread forks only with it (a dead worker's
replacement waits for the load to end), and during a roll-over the loader waits idle. The control
thread holds no lock shared with a worker (a worker never uses the supervisor's channels).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import queue
import selectors
import signal
import socket
import threading
from dataclasses import dataclass, field

from ..core.errors import ModelServerError
from ..core.memory import give_memory_back
from ..core.repository import ModelRepository
from .control import describe_error, encode
from .workers import WAKE_SIGNAL

logger = logging.getLogger("model_server")

LOADER_NICE = 10


@dataclass
class Job:
    op: str  # load or unload
    name: str
    pid: int  # the worker that asked
    id: int  # its request's id


@dataclass
class Rollout:
    """A roll-over the loader asks the main thread for; ``requester``: the worker whose call it
    answers (None for --watch), not retired by the main thread but by its answer."""

    requester: int | None
    done: threading.Event = field(default_factory=threading.Event)
    replaced: int = 0  # old workers replaced
    wanted: int = 0
    requester_replaced: bool = False

    @property
    def complete(self) -> bool:
        return self.replaced == self.wanted


@dataclass
class _Channel:
    pid: int
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    buffer: bytes = b""


class Reloader:
    """``watch_interval``: seconds between two looks at the model directories (None: no --watch)."""

    def __init__(self, repository: ModelRepository, watch_interval: float | None = None):
        self.repository = repository
        self.watch_interval = watch_interval
        self.fork_lock = threading.Lock()
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.rollouts: queue.Queue[Rollout] = queue.Queue()
        self._channels: dict[int, _Channel] = {}
        self._new_channels: list[_Channel] = []
        self._ready: set[int] = set()
        self._retiring: set[int] = set()
        self._state_lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._main = threading.main_thread().ident

    def start(self) -> None:
        """Start both threads; after the supervisor blocked its signals (threads inherit the mask)."""
        threading.Thread(target=self._control, name="control", daemon=True).start()
        threading.Thread(target=self._loader, name="loader", daemon=True).start()

    # -- what the supervisor's main thread calls ------------------------------------------------

    def attach(self, pid: int, sock: socket.socket) -> None:
        """The parent's end of a freshly forked worker's channel."""
        channel = _Channel(pid, sock)
        with self._state_lock:
            self._channels[pid] = channel
            self._new_channels.append(channel)
        self._wake_writer.send(b"x")

    def channels(self) -> list[socket.socket]:
        """Every parent end: a child closes its copies."""
        with self._state_lock:
            return [channel.sock for channel in self._channels.values()] + [self._wake_reader, self._wake_writer]

    def is_ready(self, pid: int) -> bool:
        return pid in self._ready

    def has_retired(self, pid: int) -> bool:
        return pid in self._retiring or pid not in self._channels

    def retire(self, pid: int) -> None:
        self._tell(pid, {"op": "retire"})

    def forget(self, pid: int) -> None:
        """A worker that exited."""
        with self._state_lock:
            self._ready.discard(pid)
            self._retiring.discard(pid)

    def next_rollout(self) -> Rollout | None:
        try:
            return self.rollouts.get_nowait()
        except queue.Empty:
            return None

    # -- the control thread ------------------------------------------------------------------

    def _control(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_reader, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is self._wake_reader:
                    self._wake_reader.recv(4096)
                    with self._state_lock:
                        added, self._new_channels = self._new_channels, []
                    for channel in added:
                        selector.register(channel.sock, selectors.EVENT_READ, channel)
                    continue
                channel: _Channel = key.data
                try:
                    data = channel.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the worker exited
                    selector.unregister(channel.sock)
                    with self._state_lock:
                        self._channels.pop(channel.pid, None)
                    channel.sock.close()
                    continue
                channel.buffer += data
                while b"\n" in channel.buffer:
                    line, channel.buffer = channel.buffer.split(b"\n", 1)
                    try:
                        self._handle(channel, json.loads(line))
                    except Exception:
                        logger.exception("worker %d sent a message that could not be handled", channel.pid)

    def _handle(self, channel: _Channel, message: dict) -> None:
        op = message.get("op")
        if op == "ready":
            self._ready.add(channel.pid)
        elif op == "retiring":
            self._retiring.add(channel.pid)
        elif op == "index":
            self._answer(channel.pid, message["id"], result=self._index())
        elif op in ("load", "unload"):
            self.jobs.put(Job(op, str(message.get("name", "")), channel.pid, message["id"]))
        else:
            self._answer(channel.pid, message.get("id"), error=ValueError(f"unknown control message {op!r}"))

    def _index(self) -> list[dict]:
        # The loader thread may be changing the repository's dictionaries meanwhile.
        for _ in range(10):
            with contextlib.suppress(RuntimeError):
                return self.repository.index()
        return self.repository.index()

    def _answer(self, pid: int, number, result=None, error: BaseException | None = None, retire=False) -> None:
        if error is not None:
            self._tell(pid, {"id": number, "ok": False, "error": describe_error(error), "retire": retire})
        else:
            self._tell(pid, {"id": number, "ok": True, "result": result, "retire": retire})

    def _tell(self, pid: int, message: dict) -> None:
        channel = self._channels.get(pid)
        if channel is None:
            return  # gone: nobody to tell
        with channel.lock, contextlib.suppress(OSError):
            channel.sock.sendall(encode(message))

    # -- the loader thread -------------------------------------------------------------------

    def _loader(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)
        except OSError as exc:
            logger.warning("the loader thread keeps its priority: %s", exc)
        while True:
            try:
                job = self.jobs.get(timeout=self.watch_interval)
            except queue.Empty:
                self._watch_once()
                continue
            try:
                self._run(job)
            except Exception:
                logger.exception("%s of model %s failed", job.op, job.name)

    def _run(self, job: Job) -> None:
        repository = self.repository
        action = repository.load_now if job.op == "load" else repository.unload_now
        try:
            changed = self._change(lambda: action(job.name))
        except Exception as exc:
            if not isinstance(exc, ModelServerError):
                logger.exception("%s of model %s failed", job.op, job.name)
            self._answer(job.pid, job.id, error=exc)
            return
        if not changed:
            self._answer(job.pid, job.id)
            return
        rollout = self._roll_over(job.pid)
        if not rollout.complete:
            error = RuntimeError(
                f"model {job.name} is {job.op}ed, but only {rollout.replaced} of {rollout.wanted} workers "
                "could be replaced: the others serve what they had (the supervisor's log says why)"
            )
            self._answer(job.pid, job.id, error=error, retire=rollout.requester_replaced)
            return
        self._answer(job.pid, job.id, retire=rollout.requester_replaced)

    def _watch_once(self) -> None:
        try:
            with self.fork_lock:
                names = self.repository.changed()
        except Exception:
            logger.exception("looking for new versions failed")
            return
        changed = False
        for name in names:
            try:
                changed |= self._change(lambda name=name: self.repository.load_now(name))
            except ModelServerError as exc:
                logger.error("model %s: %s", name, exc)
        if changed:
            self._roll_over(None)

    def _change(self, action) -> bool:
        """Run a load or unload with no fork meanwhile; whether what is served changed. The
        versions that left service are closed here: no worker forked from now on has them."""
        with self.fork_lock:
            before, retired = self.repository.served(), None
            try:
                retired = action()
            finally:
                after = self.repository.served()
                # The collector is off in the supervisor (kserve/__main__.py): a load's garbage is
                # collected now, and what stays is frozen before the next fork, as at start.
                for predictor in retired or ():
                    asyncio.run(predictor.close_when_idle())
                gc.collect()
                gc.freeze()
                give_memory_back()
        signal.pthread_kill(self._main, WAKE_SIGNAL)  # a replacement that waited for the load may fork now
        return before != after

    def _roll_over(self, requester: int | None) -> Rollout:
        rollout = Rollout(requester)
        self.rollouts.put(rollout)
        signal.pthread_kill(self._main, WAKE_SIGNAL)
        rollout.done.wait()
        return rollout
