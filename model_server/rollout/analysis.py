"""Step 3: judge the canary on live metrics, from Prometheus' HTTP API.

Every ``--interval`` for ``--duration``, one step: for the stable and the canary version (told
apart by the ``version`` label every per-model series carries), over the last ``--window``:

- requests and errors: ``increase(model_server_requests_total[...])``, all codes and non-2xx;
- p99 latency: ``histogram_quantile(0.99, ...)`` over ``model_server_predict_seconds_bucket``,
  the time from a request's rows entering the batcher to its predictions. That is the part a new
  model version changes (same server, same image); decoding and the network are the same for both.

A step fails when the canary's error rate exceeds the stable one's by more than
``--max_error_rate``, or its p99 is more than ``--max_latency_ratio`` times the stable one's; the
first failing step ends the analysis. A step where either version answered fewer than
``--min_requests`` has no data: allowed while traffic reaches the canary for the first time, a
failure once it has had data. The canary passes when every step of the whole duration held.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import httpx

from .settings import RolloutSettings, promql_string

PASSED, FAILED, NO_DATA = "pass", "fail", "no data"


class PrometheusError(Exception):
    """Prometheus cannot be asked, or refused a query; the message says which and why."""


class Prometheus:
    """Instant queries over the HTTP API (``GET /api/v1/query``)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout)

    def query(self, promql: str, at: float) -> float | None:
        """The single value of an instant query at time AT; None when it returns no series."""
        try:
            response = self.http.get(f"{self.url}/api/v1/query", params={"query": promql, "time": f"{at:.3f}"})
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            raise PrometheusError(f"{self.url} answered {response.status_code}, not Prometheus' JSON") from None
        if answer.get("status") != "success":
            raise PrometheusError(f"Prometheus refused {promql!r}: {answer.get('error', response.status_code)}")
        result = answer["data"]["result"]
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{promql!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])


@dataclass(frozen=True)
class Queries:
    """The PromQL of one version's figures."""

    requests: str
    errors: str
    p99: str

    @classmethod
    def for_version(cls, selector: str, version: str, window: float) -> Queries:
        matchers = ",".join(m for m in (selector.strip().strip(","), f'version="{promql_string(version)}"') if m)
        span = f"{round(window * 1000)}ms"
        return cls(
            requests=f"sum(increase(model_server_requests_total{{{matchers}}}[{span}]))",
            errors=f'sum(increase(model_server_requests_total{{{matchers},code!~"2.."}}[{span}]))',
            p99="histogram_quantile(0.99, sum by (le) "
            f"(rate(model_server_predict_seconds_bucket{{{matchers}}}[{span}])))",
        )


@dataclass
class Figures:
    """One version's requests, errors and p99 latency over a window."""

    requests: float
    errors: float
    p99_seconds: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @classmethod
    def measure(cls, prometheus: Prometheus, queries: Queries, at: float) -> Figures:
        requests = prometheus.query(queries.requests, at) or 0.0
        errors = prometheus.query(queries.errors, at) or 0.0
        p99 = prometheus.query(queries.p99, at)
        return cls(requests, min(errors, requests), None if p99 is None or math.isnan(p99) else p99)


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float
    max_latency_ratio: float
    min_requests: int


@dataclass
class Step:
    index: int
    elapsed_seconds: float
    stable: Figures
    canary: Figures
    verdict: str = PASSED
    reasons: list[str] = field(default_factory=list)

    @property
    def latency_ratio(self) -> float | None:
        if self.canary.p99_seconds is None or not self.stable.p99_seconds:
            return None
        return self.canary.p99_seconds / self.stable.p99_seconds

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "stable": {**asdict(self.stable), "error_rate": self.stable.error_rate},
            "canary": {**asdict(self.canary), "error_rate": self.canary.error_rate},
            "latency_ratio": self.latency_ratio,
        }


def judge(step: Step, thresholds: Thresholds, window: float) -> Step:
    """Set STEP's verdict and the reasons for it from its figures."""
    thin = [
        f"the {role} version answered {figures.requests:.0f} requests in the last {window:g} s "
        f"(fewer than --min_requests {thresholds.min_requests})"
        for role, figures in (("canary", step.canary), ("stable", step.stable))
        if figures.requests < thresholds.min_requests
    ]
    if thin:
        step.verdict, step.reasons = NO_DATA, thin
        return step
    excess = step.canary.error_rate - step.stable.error_rate
    if excess > thresholds.max_error_rate:
        step.reasons.append(
            f"error rate {step.canary.error_rate:.1%} vs stable {step.stable.error_rate:.1%}: "
            f"{excess:.1%} more, over --max_error_rate {thresholds.max_error_rate:.1%}"
        )
    ratio = step.latency_ratio
    if ratio is not None and ratio > thresholds.max_latency_ratio:
        step.reasons.append(
            f"p99 latency {step.canary.p99_seconds * 1000:.1f} ms vs stable {step.stable.p99_seconds * 1000:.1f} ms: "
            f"{ratio:.2f}x, over --max_latency_ratio {thresholds.max_latency_ratio:g}"
        )
    step.verdict = FAILED if step.reasons else PASSED
    return step


@dataclass
class Outcome:
    passed: bool
    reason: str
    steps: list[Step]


def step_line(step: Step) -> str:
    def side(f: Figures) -> str:
        rate = "-" if f.error_rate is None else f"{f.error_rate:6.1%}"
        p99 = "-" if f.p99_seconds is None else f"{f.p99_seconds * 1000:8.1f}"
        return f"{f.requests:7.0f} {rate:>6} {p99:>8}"

    ratio = "-" if step.latency_ratio is None else f"{step.latency_ratio:.2f}"
    figures = f"{side(step.stable)}  {side(step.canary)}  {ratio:>5}"
    line = f"  {step.index:>4} {step.elapsed_seconds:7.1f}s  {figures}  {step.verdict}"
    return line + "".join(f"\n         {reason}" for reason in step.reasons if step.verdict != PASSED)


STEP_HEADER = "  step    time   stable: requests errors p99(ms)   canary: requests errors p99(ms)  ratio  verdict"


def analyse(
    settings: RolloutSettings,
    stable_version: str,
    canary_version: str,
    on_step: Callable[[Step], None],
    prometheus: Prometheus | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Every step in turn, until one fails or the duration is over; raises PrometheusError."""
    prometheus = prometheus or Prometheus(settings.prometheus_url)
    window = settings.window
    stable_q = Queries.for_version(settings.label_selector, stable_version, window)
    canary_q = Queries.for_version(settings.label_selector, canary_version, window)
    thresholds = Thresholds(settings.max_error_rate, settings.max_latency_ratio, settings.min_requests)
    count = max(1, math.floor(settings.duration / settings.interval + 1e-9))
    start, steps, had_data = clock(), [], False
    for index in range(1, count + 1):
        sleep(max(0.0, start + index * settings.interval - clock()))
        at = clock()
        step = Step(
            index, at - start, Figures.measure(prometheus, stable_q, at), Figures.measure(prometheus, canary_q, at)
        )
        steps.append(judge(step, thresholds, window))
        on_step(step)
        if step.verdict == FAILED:
            return Outcome(False, f"step {index}: " + "; ".join(step.reasons), steps)
        if step.verdict == NO_DATA and had_data:
            return Outcome(False, f"step {index}: no data after data: " + "; ".join(step.reasons), steps)
        had_data = had_data or step.verdict == PASSED
    if not had_data:
        return Outcome(False, f"no data in any of the {count} steps: " + "; ".join(steps[-1].reasons), steps)
    judged = sum(step.verdict == PASSED for step in steps)
    return Outcome(True, f"{judged} of {count} steps judged over {settings.duration:g} s, every one held", steps)
