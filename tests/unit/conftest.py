"""In-process fixtures: the demo model loaded as a Predictor, no server process."""

import pytest

from model_server.core.predictor import Predictor


@pytest.fixture(scope="session")
def iris_predictor(demo_model_dir) -> Predictor:
    return Predictor.load(demo_model_dir)
