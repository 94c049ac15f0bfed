"""What the rollout did, as it goes: one line per check, command and analysis step, on stdout,
and the same as JSON (``--report``) for the CI job to keep."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"


@dataclass
class Check:
    """One validation check: its name, PASS/FAIL/WARN/SKIP, and what it found."""

    name: str
    status: str
    detail: str
    figures: dict = field(default_factory=dict)


class Report:
    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.data: dict = {"validation": [], "commands": [], "analysis": None, "decision": None}

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)  # flushed: helm writes to the same terminal

    def heading(self, text: str) -> None:
        self.say(f"==> {text}")

    def set(self, **values) -> None:
        self.data.update(values)

    def check(self, check: Check) -> None:
        self.data["validation"].append(asdict(check))
        self.say(f"  {check.name:<8} {check.status:<4}  {check.detail}")

    def command(self, step: str, argv: list[str], ran: bool) -> None:
        self.data["commands"].append({"step": step, "argv": argv, "ran": ran})
        self.say("+ " + shlex.join(argv))

    def analysis(self, settings: dict) -> None:
        self.data["analysis"] = {**settings, "steps": []}

    def analysis_step(self, step: dict, line: str) -> None:
        self.data["analysis"]["steps"].append(step)
        self.say(line)

    def decide(self, decision: str, reason: str, exit_code: int) -> None:
        self.data["decision"] = {"result": decision, "reason": reason, "exit_code": exit_code}
        self.say(f"==> {decision.upper()}: {reason} (exit {exit_code})")

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.data, indent=2) + "\n")
