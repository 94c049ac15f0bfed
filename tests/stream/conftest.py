"""The stream tests' broker (tansu, one per session, in memory), fresh topics per test, and a slow model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import joblib
import numpy as np
import pytest

from tests.support.estimators import SlowPredict
from tests.support.kafka import create_topics, run, start_broker

PARTITIONS = 4


@pytest.fixture(scope="session")
def broker():
    with start_broker() as started:
        yield started


@dataclass
class Topics:
    bootstrap: str
    input: str
    output: str
    errors: str
    group: str

    def args(self, *extra: str, error_topic: bool = True) -> list[str]:
        """The consumer's flags for these topics (a short session: a killed member's partitions move on soon)."""
        args = [f"--input_topic={self.input}", f"--output_topic={self.output}", f"--group_id={self.group}"]
        if error_topic:
            args.append(f"--error_topic={self.errors}")
        return [*args, "--session_timeout_ms=2000", *extra]


@pytest.fixture
def topics(broker) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    names = Topics(broker.bootstrap, f"in-{suffix}", f"out-{suffix}", f"err-{suffix}", f"group-{suffix}")
    run(create_topics(broker.bootstrap, PARTITIONS, names.input, names.output, names.errors))
    return names


@pytest.fixture
def slow_model_dir(tmp_path):
    """A model that takes 5 ms per predict call: messages are in flight when a test stops it."""
    model_dir = tmp_path / "slow"
    model_dir.mkdir()
    joblib.dump(SlowPredict(0.005).fit(np.zeros((1, 4))), model_dir / "model.joblib")
    return model_dir
