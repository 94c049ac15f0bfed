"""The artifact loader: verification before unpickling, and one-line reasons for what cannot load."""

import json

import joblib
import pytest
from sklearn.linear_model import LinearRegression

from model_server.core.artifact import ModelArtifact, file_sha256, write_metadata
from model_server.core.errors import ArtifactError


@pytest.fixture
def model_dir(tmp_path):
    joblib.dump(LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0]), tmp_path / "model.joblib")
    return tmp_path


def test_loads_verified_model_with_its_metadata(model_dir):
    write_metadata(model_dir, version="4", features=[{"name": "x"}])
    artifact = ModelArtifact.load(model_dir)
    assert artifact.version == "4" and artifact.metadata.features[0].name == "x"
    assert artifact.sha256 == file_sha256(model_dir / "model.joblib") == artifact.metadata.sha256
    assert artifact.estimator.predict([[3.0]])[0] == pytest.approx(3.0)


def test_checksum_mismatch_refuses_before_unpickling(model_dir, monkeypatch):
    (model_dir / "metadata.json").write_text(json.dumps({"sha256": "0" * 64}))
    monkeypatch.setattr(joblib, "load", lambda path: pytest.fail("unpickled a file that did not match its pin"))
    with pytest.raises(ArtifactError, match="does not match"):
        ModelArtifact.load(model_dir)


def test_a_bad_pin_is_never_no_pin(model_dir, monkeypatch):
    (model_dir / "metadata.json").write_text(json.dumps({"sha256": ""}))
    monkeypatch.setattr(joblib, "load", lambda path: pytest.fail("an empty pin must not load the pickle"))
    with pytest.raises(ArtifactError, match="sha256 must be a string of 64 hex digits"):
        ModelArtifact.load(model_dir)


@pytest.mark.parametrize(
    "content,reason",
    [
        (None, "EOFError (the file is truncated or not a pickle)"),  # truncated: half of a real pickle
        (bytes(range(200, 256)) * 4, "(the file is not a pickle or joblib file)"),
        (b"", "EOFError (the file is truncated or not a pickle)"),
    ],
)
def test_unreadable_pickle_names_file_type_and_meaning(model_dir, content, reason):
    path = model_dir / "model.joblib"
    if content is None:
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ArtifactError) as error:
        ModelArtifact.load(model_dir)
    message = str(error.value)
    assert message.startswith(f"cannot load {path}: ") and reason in message and "\n" not in message


@pytest.mark.parametrize(
    "files,message",
    [((), "no model file in"), (("a.pkl", "b.joblib"), "several model files"), (("weights.pkl",), None)],
)
def test_finding_the_model_file(tmp_path, files, message):
    for name in files:
        joblib.dump(LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0]), tmp_path / name)
    if message is None:
        assert ModelArtifact.load(tmp_path).path.name == files[0]
    else:
        with pytest.raises(ArtifactError, match=message):
            ModelArtifact.load(tmp_path)


def test_object_without_predict_is_refused(tmp_path):
    joblib.dump({"not": "a model"}, tmp_path / "model.joblib")
    with pytest.raises(ArtifactError, match="dict has no predict method"):
        ModelArtifact.load(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        ModelArtifact.load(tmp_path / "nowhere")
