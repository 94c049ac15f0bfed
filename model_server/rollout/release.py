"""Steps 2 and 4: the helm commands that deploy the canary, promote it or roll it back.

The same commands serve both KServe modes: the chart renders ``spec.canary`` in Standard mode
and ``canaryTrafficPercent`` with the new version as the predictor in Knative mode (see
docs/kubernetes.md), and ``--reuse-values`` keeps the release's mode and every other value.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from .report import Report
from .settings import RolloutSettings


@dataclass(frozen=True)
class ReleaseCommands:
    canary: list[str]
    promote: list[str]
    rollback: list[str]


def set_value(key: str, value: str) -> list[str]:
    """``--set-string KEY=VALUE``, with the commas and backslashes helm would split on escaped."""
    return ["--set-string", f"{key}={value.replace(chr(92), chr(92) * 2).replace(',', chr(92) + ',')}"]


def release_commands(settings: RolloutSettings) -> ReleaseCommands:
    upgrade = [settings.helm]
    if settings.kube_context:
        upgrade += ["--kube-context", settings.kube_context]
    upgrade += ["upgrade", settings.release_name, settings.chart, "--namespace", settings.namespace]
    if settings.chart_version:
        upgrade += ["--version", settings.chart_version]
    upgrade += ["--reuse-values"]
    wait = ["--wait", "--timeout", f"{settings.helm_timeout:g}s"]
    # The canary goes away in both outcomes; its storageUri is cleared, so a later canary without one
    # cannot inherit it through --reuse-values.
    no_canary = ["--set", "canary.enabled=false", "--set-string", "canary.storageUri="]
    return ReleaseCommands(
        canary=[
            *upgrade,
            "--set", "canary.enabled=true",
            "--set", f"canary.trafficPercent={settings.traffic_percent}",
            *set_value("canary.storageUri", settings.storage_uri),
            *wait,
        ],
        promote=[*upgrade, *set_value("model.storageUri", settings.storage_uri), *no_canary, *wait],
        rollback=[*upgrade, *no_canary, *wait],
    )  # fmt: skip


class ReleaseError(Exception):
    """A helm command failed; the message names it and its exit status."""


class Helm:
    """Runs the release's commands, or with --dry_run only prints them."""

    def __init__(self, settings: RolloutSettings, report: Report):
        self.dry_run = settings.dry_run
        self.report = report

    def run(self, step: str, argv: list[str]) -> None:
        self.report.command(step, argv, ran=not self.dry_run)
        if self.dry_run:
            return
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ReleaseError(f"{step}: cannot run {argv[0]}: {exc.strerror}") from None
        for line in (result.stdout + result.stderr).splitlines():
            self.report.say(f"  | {line}")
        if result.returncode != 0:
            raise ReleaseError(f"{step}: {argv[0]} exited {result.returncode}")
