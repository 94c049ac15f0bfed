"""A model that needs a library beyond scikit-learn (LightGBM): the image built with
``--extra-packages`` serves it, mounted at /mnt/models as KServe mounts it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from .conftest import BUILD_TIMEOUT_S
from .container_engine import BUILD_IMAGE, RUN_LIMITS, Image, running_container

pytestmark = pytest.mark.timeout(1800)
try:  # lightgbm (in the test extra) fits the model served here
    import lightgbm
except (ImportError, OSError) as exc:  # OSError: its OpenMP runtime is missing (apt-get install libgomp1)
    pytest.skip(f"lightgbm cannot be loaded here: {exc}", allow_module_level=True)
TAG = "localhost/model-server:test-lightgbm"


@pytest.fixture(scope="module")
def lightgbm_image(engine, image):
    """The test image again, with LightGBM: every layer before EXTRA_PACKAGES comes from the cache."""
    version = lightgbm.__version__
    command = [BUILD_IMAGE, "--engine", Path(engine.command[0]).name, "--tag", TAG]
    command += ["--base-image", image.base_image, "--extra-packages", f"lightgbm=={version}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    yield Image(TAG, image.base_image, result.stdout)
    engine.run("rmi", "--force", TAG, check=False)


def test_lightgbm_model_served_by_the_image_built_with_it(engine, image, lightgbm_image, tmp_path):
    X = np.random.default_rng(0).normal(size=(300, 4))
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, (X[:, 0] + X[:, 1] > 0).astype(int))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    joblib.dump(model, model_dir / "model.joblib")
    model_dir.chmod(0o755)
    (model_dir / "model.joblib").chmod(0o644)
    mount = ("--volume", f"{model_dir}:/mnt/models:ro")
    rows = X[:50]
    with running_container(engine, lightgbm_image, "--model_name=lgbm", run_args=mount) as container:
        response = httpx.post(f"{container.http_url}/v1/models/lgbm:predict", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == model.predict(rows).tolist()
    # The image without it says what is missing, in one line, and does not start.
    result = engine.run("run", "--rm", *RUN_LIMITS, *mount, image.tag, "--model_name=lgbm", check=False, timeout=120)
    assert result.returncode == 1
    assert "No module named 'lightgbm'" in result.stdout + result.stderr
