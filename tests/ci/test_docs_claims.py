"""What the docs claim about the commands exists: every --flag, MODEL_SERVER_* variable and `make`
target that README.md, CONTRIBUTING.md and docs/*.md mention.

Flags are checked against the commands' own --help, run in subprocesses from this checkout, so the
test does not depend on where a parser lives in the package. Which parser a flag belongs to comes
from its context:

- on a shell line (or inline code) of one of our commands (`python -m model_server.batch ...`,
  `scripts/build-image.sh ...`, `python -m benchmarks.run ...`), it must be in that command's parser;
- on a line of another tool (kubectl, helm, curl, docker, pip, ...), it is that tool's: not checked;
- anywhere else (prose, tables, comments, `make ... ARGS="..."`), it must be in some parser of ours:
  the front ends', or one of the commands the docs or the Makefile run; except `--set KEY=VALUE`
  in prose, which is helm's for our chart: KEY must be a value of charts/model-server/values.yaml.

A flag that --help does not list counts if the command still accepts it (a parent parser's, such as
KServe's --predictor_host): `COMMAND FLAG --help` then fails with "argument FLAG: expected one
argument" instead of printing the help. MODEL_SERVER_X is the variable of a flag --x (or its dashed
spelling, --event-loop for MODEL_SERVER_EVENT_LOOP) of some parser, or a switch the tests and CI read.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.support.tools import REPO

DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
# The commands the image, the chart and the docs run: every front end of the package.
FRONT_ENDS = (
    "model_server",
    "model_server.edge",
    "model_server.export",
    "model_server.stream",
    "model_server.batch",
    "model_server.rollout",
)
SHELL_FENCES = {"bash", "sh", "shell", "console"}
FLAG = re.compile(r"(?<![\w/.-])--[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
ENV = re.compile(r"\bMODEL_SERVER_[A-Z0-9][A-Z0-9_]*\b")
# Words that run the command after them.
PREFIXES = {"sudo", "env", "time", "exec", "nohup", "bash", "sh"}
ENV_PREFIX = "MODEL_SERVER_"


@dataclass(frozen=True)
class Mention:
    doc: str
    line: int
    flag: str
    owner: str | None  # a command of ours (module or script path); None: any of ours

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.flag}" + (f" ({self.owner})" if self.owner else "")


# -- the docs ------------------------------------------------------------------------------------


def fragments(path: Path) -> list[tuple[int, str, bool]]:
    """(line number, text, is a shell command line) for every part of a doc that may name a flag:
    shell lines of fenced blocks (continuations joined), and every other line as prose."""
    out, fence, pending, start = [], None, "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else (stripped[3:].strip() or "text")
            continue
        if fence in SHELL_FENCES:
            if not pending:
                start = number
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            out.append((start, pending + stripped, True))
            pending = ""
        else:
            out.append((number, line, False))
    return out


def paragraphs(parts: list[tuple[int, str, bool]]) -> list[list[tuple[int, str, bool]]]:
    """The prose lines, cut at blank lines and shell lines (a span never crosses either)."""
    out = [[]]
    for part in parts:
        if part[2] or not part[1].strip():
            out.append([])
        else:
            out[-1].append(part)
    return [paragraph for paragraph in out if paragraph]


def prose_spans(lines: list[tuple[int, str, bool]]) -> list[tuple[int, str, bool]]:
    """Prose: each inline code span (which may wrap lines) as (line, text, is code), and the text
    around the spans as (line, text, False)."""
    text = "\n".join(line for _, line, _ in lines)
    numbers = [n for n, _, _ in lines]
    out, last = [], 0
    for match in re.finditer(r"`([^`]+)`", text):
        line = numbers[text.count("\n", 0, match.start())]
        out.append((numbers[text.count("\n", 0, last)], text[last : match.start()], False))
        out.append((line, match.group(1).replace("\n", " "), True))
        last = match.end()
    out.append((numbers[text.count("\n", 0, last)] if numbers else 0, text[last:], False))
    return out


def segments(command_line: str) -> list[tuple[str, str]]:
    """A shell line cut into its commands (at unquoted ;, &&, ||, |) and its comment: (kind, text)."""
    parts, current, quote, i = [], "", None, 0
    while i < len(command_line):
        char = command_line[i]
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (not current or current[-1].isspace()):
            parts.append(("command", current))
            return [*parts, ("comment", command_line[i + 1 :])]
        elif char in ";|&":
            parts.append(("command", current))
            current = ""
            while i + 1 < len(command_line) and command_line[i + 1] in ";|&":
                i += 1
            i += 1
            continue
        current += char
        i += 1
    return [*parts, ("command", current)]


def tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def owner_of(words: list[str]) -> tuple[str, list[str]]:
    """("ours:COMMAND", the words after it) | ("make", targets and variables) | ("foreign", [])."""
    while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in PREFIXES):
        words = words[1:]
    if not words:
        return "foreign", []
    first = words[0]
    if first == "make":
        return "make", words[1:]
    if re.fullmatch(r"(?:\S*/)?python3?(?:\.\d+)?", first) and len(words) > 1:
        if words[1] == "-m" and len(words) > 2 and words[2].split(".")[0] in ("model_server", "benchmarks"):
            return f"ours:{words[2]}", words[3:]
        if words[1].startswith("scripts/"):
            return f"ours:{words[1]}", words[2:]
        return "foreign", []
    if first.startswith("scripts/"):
        return f"ours:{first}", words[1:]
    return "foreign", []


HELM_SET = re.compile(r"--set(?:-string)?[ =]'?([A-Za-z][\w.]*)=")


@dataclass(repr=False)
class Mentions:
    flags: list[Mention]
    targets: list[tuple[str, int, str]]  # (doc, line, make target)
    envs: list[tuple[str, int, str]]  # (doc, line, MODEL_SERVER_* name)
    chart_values: list[tuple[str, int, str]]  # (doc, line, KEY of a `--set KEY=...` in prose)

    def __repr__(self) -> str:
        return (
            f"Mentions({len(self.flags)} flags, {len(self.targets)} make targets, {len(self.envs)} variables,"
            f" {len(self.chart_values)} chart values)"
        )


def of_ours(doc: str, number: int, piece: str, owner: str | None) -> list[Mention]:
    return [Mention(doc, number, f, owner) for f in FLAG.findall(piece)]


def mentions() -> Mentions:
    """Every flag mentioned (with its owner), every `make` target, every MODEL_SERVER_* name."""
    flags, targets, envs, chart_values = [], [], [], []
    for path in DOCS:
        doc = path.relative_to(REPO).as_posix()
        parts = fragments(path)
        for number, line, _ in parts:
            envs += [(doc, number, name) for name in ENV.findall(line)]
        shell = [(n, text, True) for n, text, is_shell in parts if is_shell]
        prose = [span for paragraph in paragraphs(parts) for span in prose_spans(paragraph)]
        for number, text, is_code in shell + prose:
            pieces = segments(text) if is_code else [("comment", text)]
            for kind, piece in pieces:
                if not is_code or kind == "comment" or piece.lstrip().startswith("--"):
                    # Words about commands, or a list of flags: any of ours (helm's --set: the chart's).
                    chart_values += [(doc, number, key) for key in HELM_SET.findall(piece)]
                    flags += of_ours(doc, number, HELM_SET.sub(" ", piece), None)
                    continue
                owner, rest = owner_of(tokens(piece))
                if owner == "make":
                    names = [w for w in rest if not w.startswith("-")]
                    targets += [(doc, number, w) for w in names if re.fullmatch(r"[a-z][\w-]*", w)]
                    flags += of_ours(doc, number, " ".join(rest), None)
                elif owner.startswith("ours:"):
                    # A subcommand (smoke_test.py check --url) has its own --help.
                    sub = rest[:1] if rest and re.fullmatch(r"[a-z][a-z0-9_-]*", rest[0]) else []
                    command = " ".join([owner.removeprefix("ours:"), *sub])
                    flags += of_ours(doc, number, " ".join(rest), command)
    return Mentions(flags, targets, envs, chart_values)


# -- the parsers ---------------------------------------------------------------------------------


def argv_of(command: str) -> list[str] | None:
    """How to run a command of ours, or None where it cannot be asked (a script without --help)."""
    name, *sub = command.split()
    if name.startswith("scripts/"):
        script = REPO / name
        if not script.is_file() or "--help" not in script.read_text():
            return None
        head = ["bash", name] if name.endswith(".sh") else [sys.executable, name]
    else:
        head = [sys.executable, "-m", name]
    return [*head, *sub]


def run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)


@cache
def help_text(command: str) -> str:
    argv = argv_of(command)
    assert argv is not None, f"{command} cannot be asked for its --help"
    done = run([*argv, "--help"])
    assert done.returncode == 0, f"`{' '.join(argv)} --help` failed: {done.stderr[-2000:]}"
    return done.stdout


def flags_in_help(text: str) -> set[str]:
    """The options a --help lists: its usage section, and its option lines (two spaces in)."""
    usage = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    listed = set(FLAG.findall(usage))
    listed |= {m.group(1) for m in re.finditer(r"^  (?:-\w, )?(--[a-z][\w-]*)", text, re.M)}
    return listed


def subcommands(text: str) -> set[str]:
    usage = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    return {word for group in re.findall(r"\{([\w,-]+)\}", usage) for word in group.split(",")}


@cache
def accepts(command: str, flag: str) -> bool:
    """A flag --help does not list: does the command's parser take it (as a flag with a value)?"""
    argv = argv_of(command)
    if argv is None:
        return False
    done = run([*argv, flag, "--help"])
    named = re.search(r"argument ([^:]+): expected one argument", done.stderr)
    return done.returncode != 0 and named is not None and flag in named.group(1).split("/")


def in_parallel(function, items) -> list:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda item: function(*item), items))


@pytest.fixture(scope="module")
def docs():
    return mentions()


@pytest.fixture(scope="module")
def ours(docs) -> dict[str, set[str]]:
    """{command: the flags its --help lists} for every command of ours the docs or the Makefile run."""
    makefile = (REPO / "Makefile").read_text()
    commands = set(FRONT_ENDS) | {m.owner for m in docs.flags if m.owner}
    commands |= {m for m in re.findall(r"\$\(PYTHON\) -m ([\w.]+)", makefile) if m.startswith("benchmarks.")}
    commands |= set(re.findall(r"(?:bash |\$\(PYTHON\) )(scripts/[\w.-]+)", makefile))
    commands = {c for c in commands if argv_of(c.split()[0]) is not None}
    in_parallel(help_text, sorted({(c.split()[0],) for c in commands}))
    parsers = {}
    for command in sorted(commands):
        name, *sub = command.split()
        # `smoke_test.py check` has its own --help; a positional argument (a directory) has none.
        text = help_text(command) if sub and sub[0] in subcommands(help_text(name)) else help_text(name)
        parsers[command] = flags_in_help(text)
    return parsers


def unknown(wanted: list[tuple[str, str | None]], ours: dict[str, set[str]]) -> set[tuple[str, str | None]]:
    """Of these (flag, command or None for any of ours), the ones no parser takes. A flag --help does
    not list is asked of its command, or of every front end (the parsers with parents)."""
    unlisted = {(f, c) for f, c in wanted if not any(f in ours[x] for x in ([c] if c else ours))}
    probes = sorted({(c or front_end, f) for f, c in unlisted for front_end in ([c] if c else FRONT_ENDS)})
    taken = {probe for probe, ok in zip(probes, in_parallel(accepts, probes), strict=True) if ok}
    return {(f, c) for f, c in unlisted if not any((x, f) in taken for x in ([c] if c else FRONT_ENDS))}


# -- the checks ----------------------------------------------------------------------------------


def test_the_docs_mention_flags_and_the_parsers_list_them(docs, ours):
    assert len(docs.flags) > 100 and all(ours.values()), "the docs or the parsers were not read"
    assert {"--model_dir", "--max_batch_size"} <= ours["model_server"]


def test_every_flag_the_docs_mention_exists_where_they_say(docs, ours):
    askable = [m for m in docs.flags if m.owner is None or m.owner in ours]  # a script without --help: not
    missing = unknown(sorted({(m.flag, m.owner) for m in askable}, key=str), ours)
    listed = [str(m) for m in askable if (m.flag, m.owner) in missing]
    assert not listed, "flags the docs mention that no parser takes:\n" + "\n".join(listed)


def chart_values() -> set[str]:
    """Every value path of the chart, leaves and the objects above them (`model`, `model.format`)."""

    def paths(values: dict, prefix: str = "") -> set[str]:
        found = set()
        for key, value in values.items():
            found.add(prefix + key)
            if isinstance(value, dict):
                found |= paths(value, f"{prefix}{key}.")
        return found

    return paths(yaml.safe_load((REPO / "charts" / "model-server" / "values.yaml").read_text()))


def test_every_chart_value_the_docs_set_exists(docs):
    values = chart_values()
    missing = [f"{doc}:{line}: --set {key}" for doc, line, key in docs.chart_values if key not in values]
    assert docs.chart_values
    assert not missing, "chart values the docs set that values.yaml lacks:\n" + "\n".join(missing)


def test_every_model_server_variable_the_docs_mention_exists(docs, ours):
    every_flag = set().union(*ours.values())
    read_by_harness = "\n".join(
        p.read_text() for p in [*(REPO / "tests").rglob("*.py"), REPO / ".ci" / "run"] if p != Path(__file__)
    )
    missing = []
    for doc, line, name in docs.envs:
        flag = "--" + name.removeprefix(ENV_PREFIX).lower()
        if {flag, flag.replace("_", "-")} & every_flag or re.search(rf"\b{name}\b", read_by_harness):
            continue
        missing.append(f"{doc}:{line}: {name}")
    assert not missing, "MODEL_SERVER_* names that are no flag's variable and no test switch:\n" + "\n".join(missing)


def makefile_targets() -> set[str]:
    targets = set()
    for match in re.finditer(r"^([A-Za-z0-9][\w .-]*?)\s*:(?!=)", (REPO / "Makefile").read_text(), re.M):
        targets |= {name for name in match.group(1).split() if "$" not in name}
    return targets


def test_every_make_target_the_docs_mention_exists(docs):
    known = makefile_targets()
    assert {"run", "test", "venv"} <= known
    missing = [f"{doc}:{line}: make {name}" for doc, line, name in docs.targets if name not in known]
    assert docs.targets
    assert not missing, "make targets the docs mention that the Makefile lacks:\n" + "\n".join(missing)


def test_the_reader_finds_the_context():
    """The parsing itself, on lines of the kinds the docs hold."""
    batch = ".venv/bin/python -m model_server.batch --input x"
    assert owner_of(tokens(batch)) == ("ours:model_server.batch", ["--input", "x"])
    assert owner_of(tokens("MODEL_SERVER_X=1 scripts/build-image.sh --target edge"))[0] == "ours:scripts/build-image.sh"
    assert owner_of(tokens("helm upgrade --reuse-values"))[0] == "foreign"
    assert segments("make a && curl -s x | jq . # --note") == [
        ("command", "make a "),
        ("command", " curl -s x "),
        ("command", " jq . "),
        ("comment", " --note"),
    ]


PYTHON_NAME = re.compile(r"(?<![\w/.-])(model_server(?:\.\w+)+)")


def test_every_python_name_the_docs_mention_imports():
    """``model_server.core.artifact.write_metadata`` and the like: a module, or a name in one."""
    import importlib

    wrong = []
    for path in [*DOCS, REPO / "benchmarks" / "README.md", REPO / "charts" / "model-server" / "README.md"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in PYTHON_NAME.findall(line):
                if "python -m " + name in line or name.endswith(("_total", "_seconds", "_bucket")):
                    continue  # a command (checked above), or a metric named like the package
                module, _, attribute = name.rpartition(".")
                try:
                    importlib.import_module(name)
                    continue
                except ImportError:
                    pass
                try:
                    if hasattr(importlib.import_module(module), attribute):
                        continue
                except ImportError:
                    pass
                wrong.append(f"{path.relative_to(REPO)}:{number} {name}")
    assert wrong == []
