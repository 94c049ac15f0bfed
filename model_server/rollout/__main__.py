"""``python -m model_server.rollout``: validate, canary, analyse, then promote or roll back.

Exit codes: 0 promoted (with --validate_only: every check passed), 1 rolled back (the canary was
worse than the thresholds, or had no data), 2 a flag that cannot be used, 3 refused by validation
(nothing deployed), 4 a helm command or Prometheus failed (a deployed canary is rolled back),
130 interrupted (a deployed canary is rolled back).
"""

from __future__ import annotations

import signal
import sys
from typing import TextIO

from .analysis import STEP_HEADER, PrometheusError, analyse, step_line
from .release import Helm, ReleaseError, release_commands
from .report import Report
from .settings import DESCRIPTION, RolloutSettings
from .validate import validate

PROMOTED, ROLLED_BACK, REFUSED, FAILED, INTERRUPTED = 0, 1, 3, 4, 130


def run(settings: RolloutSettings, out: TextIO | None = None, **analysis_options) -> int:
    """The whole release; returns the exit code. ``analysis_options`` go to ``analyse`` (tests)."""
    report = Report(out)
    try:
        return _release(settings, report, analysis_options)
    finally:
        if settings.report:
            report.write(settings.report)


def _release(settings: RolloutSettings, report: Report, analysis_options: dict) -> int:
    report.set(
        model=settings.model_name,
        release=settings.release_name,
        namespace=settings.namespace,
        storage_uri=settings.storage_uri,
        dry_run=settings.dry_run,
    )
    report.heading(f"1/4 validate {settings.model_dir} against the stable version in {settings.stable_model_dir}")
    validation = validate(settings, report)
    if validation.stable is not None:
        report.set(stable_version=validation.stable.version, canary_version=validation.new.version)
    if not validation.passed:
        reason = "; ".join(f"{check.name}: {check.detail}" for check in validation.failures())
        return _decide(report, "refused", reason + " (nothing deployed)", REFUSED)
    if settings.validate_only:
        return _decide(report, "validated", "every check passed (--validate_only: nothing deployed)", PROMOTED)

    stable, canary = validation.stable.version, validation.new.version
    commands = release_commands(settings)
    helm = Helm(settings, report)
    deployed = False
    try:
        report.heading(f"2/4 canary: version {canary} at {settings.traffic_percent}% beside version {stable}")
        deployed = True  # from here on a failure may have left a canary behind: roll back
        helm.run("canary", commands.canary)

        report.heading(
            f"3/4 analyse for {settings.duration:g} s, every {settings.interval:g} s, over {settings.window:g} s "
            f"windows: canary error rate at most {settings.max_error_rate:.1%} over stable's, "
            f"p99 at most {settings.max_latency_ratio:g}x stable's"
        )
        report.analysis(
            {
                "prometheus_url": settings.prometheus_url,
                "selector": settings.label_selector,
                "duration_seconds": settings.duration,
                "interval_seconds": settings.interval,
                "window_seconds": settings.window,
                "max_error_rate": settings.max_error_rate,
                "max_latency_ratio": settings.max_latency_ratio,
                "min_requests": settings.min_requests,
            }
        )
        report.say(STEP_HEADER)
        outcome = analyse(
            settings, stable, canary, lambda step: report.analysis_step(step.as_dict(), step_line(step)),
            **analysis_options,
        )  # fmt: skip

        if outcome.passed:
            report.heading(f"4/4 promote version {canary}")
            helm.run("promote", commands.promote)
            return _decide(report, "promoted", f"version {canary}: {outcome.reason}", PROMOTED)
        report.heading(f"4/4 roll back to version {stable}")
        deployed = False
        helm.run("rollback", commands.rollback)
        return _decide(report, "rolled back", f"version {canary}: {outcome.reason}", ROLLED_BACK)
    except (ReleaseError, PrometheusError) as exc:
        return _decide(report, "failed", _after_failure(helm, commands.rollback, deployed, str(exc)), FAILED)
    except KeyboardInterrupt:
        return _decide(
            report, "interrupted", _after_failure(helm, commands.rollback, deployed, "interrupted"), INTERRUPTED
        )


def _after_failure(helm: Helm, rollback: list[str], deployed: bool, reason: str) -> str:
    """Roll a canary that may be deployed back; the reason, and how the rollback went."""
    if not deployed:
        return reason
    helm.report.heading("roll back after the failure")
    try:
        helm.run("rollback", rollback)
    except ReleaseError as exc:
        return f"{reason}; the rollback failed too ({exc}): check the release by hand"
    return f"{reason}; rolled back"


def _decide(report: Report, decision: str, reason: str, exit_code: int) -> int:
    report.decide(decision, reason, exit_code)
    return exit_code


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # a cancelled CI job sends SIGTERM: roll back as on Ctrl-C


def main(argv: list[str] | None = None) -> int:
    settings = RolloutSettings.from_args(argv, prog="python -m model_server.rollout", description=DESCRIPTION)
    signal.signal(signal.SIGTERM, _interrupt)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
