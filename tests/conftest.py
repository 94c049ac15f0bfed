"""Session fixtures: the demo model directory and the real server serving it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.servers import start_server


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    from model_server.demo import write_demo_model

    return write_demo_model(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="session")
def served_model(demo_model_dir):
    with start_server(demo_model_dir, "iris") as served:
        yield served


@pytest.fixture(scope="session")
def mlflow_models(tmp_path_factory) -> dict[str, Path]:
    """{serialization: MLflow model directory} for pickle, cloudpickle and skops (read-only: copy to change)."""
    from tests.support.model_formats import write_mlflow_models

    return write_mlflow_models(tmp_path_factory.mktemp("mlflow"))
