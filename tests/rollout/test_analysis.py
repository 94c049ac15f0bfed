"""Step 3's rules, in-process: what a step's figures decide, and how no-data steps are taken.

Prometheus answers from a script of figures here; test_live.py asks a real one."""

from __future__ import annotations

import pytest

from model_server.rollout.analysis import FAILED, NO_DATA, PASSED, Figures, Step, Thresholds, analyse, judge
from model_server.rollout.settings import RolloutSettings

THRESHOLDS = Thresholds(max_error_rate=0.01, max_latency_ratio=1.5, min_requests=20)


def step(stable: Figures, canary: Figures) -> Step:
    return judge(Step(1, 60.0, stable, canary), THRESHOLDS, 60)


@pytest.mark.parametrize(
    ("stable", "canary", "verdict", "reason"),
    [
        (Figures(100, 0, 0.010), Figures(100, 1, 0.014), PASSED, None),
        (Figures(100, 0, 0.010), Figures(100, 2, 0.010), FAILED, "error rate 2.0% vs stable 0.0%: 2.0% more"),
        # The same share of client errors on both sides is no regression of the canary's.
        (Figures(100, 5, 0.010), Figures(100, 5, 0.010), PASSED, None),
        (Figures(100, 0, 0.010), Figures(100, 0, 0.016), FAILED, "p99 latency 16.0 ms vs stable 10.0 ms: 1.60x"),
        (Figures(100, 0, 0.010), Figures(19, 0, 0.010), NO_DATA, "the canary version answered 19 requests"),
        (Figures(5, 0, 0.010), Figures(100, 0, 0.010), NO_DATA, "the stable version answered 5 requests"),
        # No latency where nothing succeeded: the errors decide.
        (Figures(100, 0, 0.010), Figures(100, 100, None), FAILED, "error rate 100.0%"),
    ],
)
def test_a_step_s_verdict_and_reason(stable, canary, verdict, reason):
    judged = step(stable, canary)
    assert judged.verdict == verdict
    if reason is None:
        assert judged.reasons == []
    else:
        assert reason in judged.reasons[0], judged.reasons


def test_both_thresholds_are_reported_when_both_fail():
    judged = step(Figures(100, 0, 0.010), Figures(100, 10, 0.030))
    assert [r.split(" ")[0] for r in judged.reasons] == ["error", "p99"]


class ScriptedPrometheus:
    """Requests per step (the same for both versions), as a real Prometheus would answer them."""

    def __init__(self, requests_per_step: list[float]):
        self.script = iter(requests_per_step)
        self.current = 0.0

    def query(self, promql: str, at: float) -> float | None:
        if promql.startswith("sum(increase") and 'code!~"2.."' not in promql and 'version="1"' in promql:
            self.current = next(self.script)  # the first query of each step
        if promql.startswith("histogram_quantile"):
            return 0.01 if self.current else float("nan")
        return 0.0 if 'code!~"2.."' in promql else self.current


def outcome(requests_per_step: list[float]):
    settings = RolloutSettings.from_args(
        ["--validate_only", "--model_dir", "a", "--stable_model_dir", "b", "--duration", str(len(requests_per_step)),
         "--interval", "1"], environ={},
    )  # fmt: skip
    steps = []
    clock = iter(range(1000))
    result = analyse(settings, "1", "2", steps.append, ScriptedPrometheus(requests_per_step),
                     clock=lambda: next(clock), sleep=lambda s: None)  # fmt: skip
    return result, [s.verdict for s in steps]


def test_no_data_before_the_first_data_is_warm_up():
    result, verdicts = outcome([0, 0, 100, 100])
    assert result.passed and verdicts == [NO_DATA, NO_DATA, PASSED, PASSED]
    assert result.reason == "2 of 4 steps judged over 4 s, every one held"


def test_no_data_after_data_rolls_back_at_once():
    result, verdicts = outcome([100, 0, 100])
    assert not result.passed and verdicts == [PASSED, NO_DATA]
    assert result.reason.startswith("step 2: no data after data: the canary version answered 0 requests")


def test_no_data_at_all_rolls_back():
    result, verdicts = outcome([0, 0])
    assert not result.passed and verdicts == [NO_DATA, NO_DATA]
    assert result.reason.startswith("no data in any of the 2 steps")


def test_a_step_is_taken_every_interval_for_the_duration():
    settings = RolloutSettings.from_args(
        ["--validate_only", "--model_dir", "a", "--stable_model_dir", "b", "--duration", "10", "--interval", "3"],
        environ={},
    )
    now, slept = [100.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds + 0.5  # each step's queries take half a second

    steps = []
    analyse(settings, "1", "2", steps.append, ScriptedPrometheus([100] * 3), clock=lambda: now[0], sleep=sleep)
    assert [s.index for s in steps] == [1, 2, 3]
    assert slept == [3.0, 2.5, 2.5]  # on the interval's beat, not drifting by the queries' time
