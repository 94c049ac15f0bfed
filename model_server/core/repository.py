"""Models, their versions, load/unload, and hot reload that fails no request.

Layouts (``ModelRepository.add``):

- a model directory (``model.joblib`` + ``metadata.json``): one version, metadata's or "1";
- a versions directory: numbered subdirectories ``1/``, ``2/``, ..., each a model directory;
  ``--version_policy`` chooses which are served (``latest``, ``latest:N``, ``all``,
  ``specific:1,3``, as Triton's), the newest served is the default;
- a repository (``--model_repository``): one directory per model name, each of the above.

A version directory counts only once complete: it carries a ``_COMPLETE`` file (``sha256sum``
lines for its files) that its files match, or, without one, its files have stayed the same for
two looks in a row (a directory renamed into place, as model writers should do, is complete at
once). A half-copied directory is never loaded.

Loading a version (at start, by the repository API, or by ``watch``) happens beside the versions
being served: the new one is loaded in a worker thread, then checked (its schema derived, and it
must predict the requests in its ``warmup.jsonl``, V2 bodies, or else a probe row, without
error), and only then swapped in, in one assignment (``ServedModel.swap``). Requests already on
the old version finish on it; it is closed once idle, its memory freed. A version that fails is
refused: the old one keeps serving, the log says why, ``model_server_model_load_failures_total``
counts it, and ``/v2/repository/index`` shows the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .artifact import file_sha256, holds_model
from .codec import V2Request, decode_v2_rest
from .dataplane import ServedModel
from .errors import ArtifactError, ModelNotFound, ModelServerError
from .memory import give_memory_back
from .metrics import LOAD_FAILURES
from .predictor import Predictor
from .settings import ModelSettings
from .versions import VersionPolicy, version_order

logger = logging.getLogger(__name__)
# The GIL switch interval while a version loads beside traffic (_sharing_the_gil).
LOADING_SWITCH_SECONDS = 0.0005

COMPLETE_FILE = "_COMPLETE"
WARMUP_FILE = "warmup.jsonl"


def is_versions_directory(path: Path) -> bool:
    """Numbered subdirectories and no model file of its own."""
    if not path.is_dir() or holds_model(path):
        return False
    return any(p.is_dir() and p.name.isdigit() for p in path.iterdir())


def fingerprint(directory: Path) -> tuple:
    """What changes when any file of a version directory does: names, sizes, modification times."""
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir() if p.is_file()))


def completeness_problem(directory: Path) -> str | None:
    """Why a directory that has a _COMPLETE file is not complete yet, or None."""
    marker = directory / COMPLETE_FILE
    if not marker.is_file():
        return None
    for number, line in enumerate(marker.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition("  ")
        name = name.lstrip("*")
        path = directory / name
        if not name or "/" in name or len(digest) != 64:
            return f"{marker}: line {number} is not '<sha256>  <file name>'"
        if not path.is_file():
            return f"{marker} lists {name}, which is not there yet"
        if file_sha256(path) != digest.lower():
            return f"{marker}: {name} does not match its sha256 yet"
    return None


@dataclass
class VersionState:
    """A version the repository knows of, for /v2/repository/index."""

    state: str  # READY, UNAVAILABLE (unloaded, or refused); LOADING is reported while a load runs
    reason: str = ""


class ModelRepository:
    """The models a server serves, by name: a registry for the data plane (``get_model``), and the
    repository API's load / unload / index. ``make_model(name)`` builds the registry's entry
    (``ServedModel``, or KServe's ``SklearnModel``); ``load_predictor(path, name, version)`` loads
    one version."""

    def __init__(
        self,
        load_predictor: Callable[[Path, str, str | None], Predictor],
        make_model: Callable[[str], ServedModel] = ServedModel,
        policy: VersionPolicy | None = None,
        root: Path | None = None,
    ):
        self.models: dict[str, ServedModel] = {}
        self.load_predictor = load_predictor
        self.make_model = make_model
        self.policy = policy or VersionPolicy()
        self.root = root  # a repository: every subdirectory is a model, loadable by name
        self._sources: dict[str, Path] = {}
        self._states: dict[str, dict[str, VersionState]] = {}
        # By (model, directory key: the version directory's name, or "" for a model directory):
        self._loaded: dict[tuple[str, str], tuple[tuple, Predictor]] = {}  # fingerprint, predictor
        self._refused: dict[tuple[str, str], tuple] = {}  # fingerprint: not retried until it changes
        self._loading: set[tuple[str, str]] = set()  # (name, version key) being loaded now, for index()
        self._seen: dict[Path, tuple] = {}  # the last look at each version directory
        self._looked: set[str] = set()  # models whose versions were looked at once already
        self._locks: dict[str, threading.Lock] = {}
        self._retiring: set[asyncio.Task] = set()
        self._loads_in_progress = 0
        self._switch_interval = sys.getswitchinterval()

    # -- the registry the data plane reads ------------------------------------------------------

    def get_model(self, name: str) -> ServedModel | None:
        return self.models.get(name)

    def get_models(self) -> dict[str, ServedModel]:
        return self.models

    def update(self, model: ServedModel, name: str | None = None) -> None:
        """KServe's registration call (ModelServer.start): the models are ours already."""
        self.models[name or model.name] = model

    def all_ready(self) -> bool:
        """Every model that is to be served is ready; a repository may serve none yet (KServe's
        multi-model serving starts empty and loads models as TrainedModels arrive), a single
        model directory must serve its model."""
        models = self.models.values()
        return all(model.ready for model in models) and (bool(self.models) or self.root is not None)

    # -- sources -----------------------------------------------------------------------------

    @classmethod
    def of_one_model(cls, settings: ModelSettings) -> ModelRepository:
        """A front end's one model: ``--model_dir`` (or its versions) as ``--model_name``, loaded now."""
        repository = cls(settings.load_predictor, policy=VersionPolicy.parse(settings.version_policy))
        repository.add(settings.model_name, Path(settings.model_dir))
        repository.load_now(settings.model_name)
        return repository

    def add(self, name: str, path: Path) -> None:
        """Serve the model (or versions) directory ``path`` as ``name``; load() loads it."""
        self._sources[name] = Path(path)

    def source(self, name: str) -> Path:
        if name in self._sources:
            return self._sources[name]
        if self.root is not None and (self.root / name).is_dir() and not name.startswith("."):
            self._sources[name] = self.root / name
            return self._sources[name]
        raise ModelNotFound(f"Model with name {name} does not exist.")

    def discover(self) -> list[str]:
        """Every model the repository directory holds, by name (a single model: its own)."""
        if self.root is not None and self.root.is_dir():
            for path in sorted(self.root.iterdir()):
                if path.is_dir() and not path.name.startswith((".", "_")):
                    self._sources.setdefault(path.name, path)
        return sorted(self._sources)

    def complete_versions(self, name: str) -> dict[str, Path]:
        """{key: directory} of the versions of ``name`` complete on disk now; the key is the
        version directory's name, or "" for a model directory (its version is its metadata's).
        At the first look every version directory counts; later, one without _COMPLETE counts
        once it looked the same twice."""
        source = self.source(name)
        if not source.is_dir():
            return {}
        if not is_versions_directory(source):
            return {"": source}
        first_look = name not in self._looked
        self._looked.add(name)
        versions = {}
        for path in sorted(p for p in source.iterdir() if p.is_dir() and p.name.isdigit()):
            now = fingerprint(path)
            settled = first_look or self._seen.get(path) == now or (path / COMPLETE_FILE).is_file()
            self._seen[path] = now
            problem = completeness_problem(path)
            if problem:
                self._state(name, path.name, "UNAVAILABLE", f"incomplete: {problem}")
            elif settled and now:
                versions[path.name] = path
        return versions

    def chosen(self, name: str, available: dict[str, Path]) -> list[str]:
        return [""] if "" in available else self.policy.select(list(available))

    # -- load / unload -----------------------------------------------------------------------

    def load_now(self, name: str) -> list[Predictor]:
        """Load or reload ``name`` from disk, in the calling thread; returns the predictors that
        left service (to be closed once idle). Raises when nothing of it can be served."""
        with self._locks.setdefault(name, threading.Lock()):
            try:
                return self._load(name)
            finally:
                # Loading frees most of what it allocated (a pickle's bytes, ONNX Runtime's
                # protobuf and build-time maps: two thirds of a forest session's growth); glibc
                # would keep it all as the process's RSS.
                give_memory_back()

    async def load(self, name: str) -> None:
        """load_now off the event loop; the retired versions are closed once idle."""
        with self._sharing_the_gil():
            retired = await asyncio.to_thread(self.load_now, name)
        self._retire(retired)

    @contextlib.contextmanager
    def _sharing_the_gil(self):
        """While versions load beside live traffic, the loader's pure-Python work (unpickling,
        the ONNX conversion, parity checks) hands the GIL back every LOADING_SWITCH_SECONDS
        instead of CPython's 5 ms, so requests on the event loop wait less for it. Loads run on
        the loop's thread only, so a plain counter nests them."""
        if self._loads_in_progress == 0:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, LOADING_SWITCH_SECONDS))
        self._loads_in_progress += 1
        try:
            yield
        finally:
            self._loads_in_progress -= 1
            if self._loads_in_progress == 0:
                sys.setswitchinterval(self._switch_interval)

    async def unload(self, name: str) -> None:
        self._retire(self.unload_now(name))

    def unload_now(self, name: str) -> list[Predictor]:
        """Stop serving ``name``; returns the predictors that left service (to be closed once idle)."""
        model = self.models.get(name)
        if model is None:
            raise ModelNotFound(f"Model with name {name} does not exist.")
        retired = list(model.predictors.values())
        model.ready = False
        model.swap({})
        del self.models[name]
        self._states[name] = {v: VersionState("UNAVAILABLE", "unloaded") for v in self._states.get(name, {})}
        self._loaded = {k: v for k, v in self._loaded.items() if k[0] != name}
        logger.info("unloaded model %s", name)
        return retired

    def served(self) -> dict[str, tuple[int, ...]]:
        """What is served now, by model: the identities of its predictors (a load that changed
        nothing leaves this equal)."""
        return {name: tuple(id(p) for p in model.predictors.values()) for name, model in self.models.items()}

    def _load(self, name: str) -> list[Predictor]:
        available = self.complete_versions(name)
        if not available:
            raise ArtifactError(f"{self.source(name)}: no complete model or version directory")
        chosen = self.chosen(name, available)
        if not chosen:
            raise ArtifactError(
                f"{self.source(name)}: --version_policy {self.policy} selects none of {sorted(available)}"
            )
        model = self.models.get(name)
        serving = list(model.predictors.values()) if model is not None else []
        served: dict[str, Predictor] = {}
        for key in chosen:
            path, loaded = available[key], self._loaded.get((name, key))
            if loaded is not None and loaded[0] == fingerprint(path) and loaded[1] in serving:
                served[loaded[1].version] = loaded[1]
                continue
            self._loading.add((name, key))
            try:
                predictor = self.load_predictor(path, name, key or None)
                check(predictor, path)
            except ModelServerError as exc:
                self._refused[(name, key)] = fingerprint(path)
                self._refuse(name, key or "?", str(exc))
                if loaded is not None and loaded[1] in serving:
                    served[loaded[1].version] = loaded[1]  # the old one keeps serving
                continue
            finally:
                self._loading.discard((name, key))
            served[predictor.version] = predictor
            self._loaded[(name, key)] = (fingerprint(path), predictor)
            self._refused.pop((name, key), None)
            self._state(name, predictor.version, "READY")
        if not served:
            if not serving:
                raise ArtifactError(self._last_reason(name))
            return []  # every new version refused: what was serving goes on serving
        for key in [k for n, k in self._loaded if n == name and k not in chosen]:
            del self._loaded[(name, key)]
            self._state(name, key, "UNAVAILABLE", f"not chosen by --version_policy {self.policy}")
        if model is None:
            model = self.models[name] = self.make_model(name)
        model.swap(served)
        model.ready = True
        logger.info("model %s serves versions %s (default %s)", name, ", ".join(model.versions), model.version)
        return [p for p in serving if p not in served.values()]

    def _refuse(self, name: str, version: str, reason: str) -> None:
        logger.error("model %s version %s refused: %s", name, version, reason)
        LOAD_FAILURES.labels(name).inc()
        self._state(name, version, "UNAVAILABLE", reason)

    def _state(self, name: str, version: str, state: str, reason: str = "") -> None:
        self._states.setdefault(name, {})[version] = VersionState(state, reason)

    def _last_reason(self, name: str) -> str:
        reasons = [s.reason for s in self._states.get(name, {}).values() if s.reason]
        return reasons[-1] if reasons else f"model {name} could not be loaded"

    def _retire(self, predictors: list[Predictor]) -> None:
        for predictor in predictors:
            task = asyncio.get_running_loop().create_task(self._close(predictor))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _close(predictor: Predictor) -> None:
        await predictor.close_when_idle()
        await asyncio.to_thread(give_memory_back)

    # -- index and watch ---------------------------------------------------------------------

    async def repository_index(self) -> list[dict]:
        """index(), as the data plane asks for it (a worker's asks its supervisor, kserve/control.py)."""
        return self.index()

    def index(self) -> list[dict]:
        """Triton's repository index: every known model and version with its state."""
        entries = []
        for name in self.discover():
            states = self._states.get(name, {})
            loading = {key for n, key in set(self._loading) if n == name}
            if "" in loading and not any(s.state == "READY" for s in states.values()):
                entries.append({"name": name, "state": "LOADING"})  # its version is known once loaded
            elif not states and not loading:
                entries.append({"name": name, "state": "UNAVAILABLE", "reason": "not loaded"})
            for version in sorted(states.keys() | loading - {""}, key=version_order):
                state = states.get(version, VersionState("LOADING"))
                if version in loading and state.state != "READY":  # READY: it serves while its files reload
                    state = VersionState("LOADING")
                entry = {"name": name, "version": version, "state": state.state}
                if state.reason:
                    entry["reason"] = state.reason
                entries.append(entry)
        return entries

    def changed(self) -> list[str]:
        """The models whose versions on disk differ from what they serve (a new version, a changed
        file, a version gone), and new model directories of a repository. What was refused is not
        tried again until its files change."""
        names = []
        for name in self.discover():
            if name not in self.models and name in self._states:
                continue  # unloaded (or never loadable): only the repository API brings it back
            available = self.complete_versions(name)
            chosen = set(self.chosen(name, available)) if available else set()
            loaded = {key for n, key in self._loaded if n == name}
            for key in chosen:
                now = fingerprint(available[key])
                if (name, key) in self._loaded and self._loaded[(name, key)][0] == now:
                    continue
                if self._refused.get((name, key)) == now:
                    continue
                names.append(name)
                break
            else:
                if loaded - chosen and loaded & chosen:  # a version gone (not: the new ones all refused)
                    names.append(name)
        return names

    async def watch(self, interval: float) -> None:
        """Look at the directories every ``interval`` seconds; load what changed."""
        while True:
            await asyncio.sleep(interval)
            for name in await asyncio.to_thread(self.changed):
                try:
                    await self.load(name)
                except ModelServerError as exc:
                    logger.error("model %s: %s", name, exc)


def check(predictor: Predictor, directory: Path) -> None:
    """A version must answer before it takes traffic: its warmup requests (warmup.jsonl, V2
    bodies one per line), or else a probe row; any failure refuses it."""
    warmup = directory / WARMUP_FILE
    if warmup.is_file():
        lines = [line for line in warmup.read_bytes().splitlines() if line.strip()]
        for number, line in enumerate(lines, 1):
            try:
                request: V2Request = decode_v2_rest(line, None)
                X, outputs = predictor.prepare(request)
                predictor.predict_batch(X, frozenset(outputs))
            except Exception as exc:
                raise ArtifactError(f"{warmup}: request {number} failed: {type(exc).__name__}: {exc}") from None
        return
    X = predictor.probe()
    if X is None:
        return  # width unknown: nothing to synthesize
    try:
        predictor.predict_batch(X, frozenset(predictor.output_types))
    except Exception as exc:
        raise ArtifactError(f"{directory}: a probe row failed: {type(exc).__name__}: {exc}") from None


def write_complete_file(directory: Path) -> Path:
    """Mark a version directory complete: its _COMPLETE file, what `sha256sum *` prints."""
    files = sorted(p for p in Path(directory).iterdir() if p.is_file() and p.name != COMPLETE_FILE)
    marker = Path(directory) / COMPLETE_FILE
    marker.write_text("".join(f"{file_sha256(p)}  {p.name}\n" for p in files))
    return marker
