"""Model formats in the artifact layer: skops, MLflow models, pickles pinned or refused, and the
one verification order (hash, then loading, then the schema) for every format."""

import json
import logging
import shutil

import cloudpickle
import joblib
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from model_server.core.artifact import ModelArtifact, file_sha256, locate, write_metadata
from model_server.core.codec import decode_v1
from model_server.core.errors import ArtifactError
from model_server.core.predictor import Predictor
from model_server.core.repository import is_versions_directory
from tests.support import malicious
from tests.support.estimators import FailsOnNegative
from tests.support.model_formats import mixed_frame, train_mixed

X = np.random.default_rng(0).normal(size=(40, 3))
Y = (X[:, 0] > 0).astype(int)
UNPINNED = "an unpinned"


def skops_dir(directory, model, **metadata):
    directory.mkdir(parents=True, exist_ok=True)
    skops.io.dump(model, directory / "model.skops")
    if metadata:
        (directory / "metadata.json").write_text(json.dumps(metadata))
    return directory


def pickle_dir(directory, model=None):
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model if model is not None else LogisticRegression().fit(X, Y), directory / "model.joblib")
    return directory


def copy(source, tmp_path):
    return shutil.copytree(source, tmp_path / source.name)


def edit_mlmodel(directory, change):
    path = directory / "MLmodel"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))
    return directory


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# -- which format a directory holds -----------------------------------------------------------


@pytest.mark.parametrize(
    "files,expected",
    [
        (("model.skops",), ("skops", "model.skops")),
        (("weights.skops",), ("skops", "weights.skops")),
        (("model.joblib", "extra.pkl"), ("pickle", "model.joblib")),
        (("MLmodel", "model.pkl", "model.skops"), ("MLflow model", "MLmodel")),  # MLmodel names its own file
        (("model.skops", "model.joblib"), "several model files in .* \\(model.skops, model.joblib\\): keep one"),
        (("model.onnx",), ("ONNX", "model.onnx")),
        (("model.onnx", "model.joblib"), "several model files in .* \\(model.onnx, model.joblib\\): keep one"),
        (("notes.txt",), "no model file in .*: expected one of model.skops, model.onnx, model.joblib, .*MLflow model"),
    ],
)
def test_the_format_table_decides_what_a_directory_holds(tmp_path, files, expected):
    for name in files:
        (tmp_path / name).write_bytes(b"")
    if isinstance(expected, str):
        with pytest.raises(ArtifactError, match=expected):
            locate(tmp_path)
    else:
        model_format, path = locate(tmp_path)
        assert (model_format.name, path.name) == expected


def test_a_directory_of_skops_or_mlflow_versions_is_a_versions_directory(tmp_path, mlflow_models):
    skops_dir(tmp_path / "forest" / "1", LogisticRegression().fit(X, Y))
    shutil.copytree(mlflow_models["skops"], tmp_path / "flow" / "3")
    assert is_versions_directory(tmp_path / "forest") and is_versions_directory(tmp_path / "flow")
    assert not is_versions_directory(tmp_path / "forest" / "1") and not is_versions_directory(tmp_path / "flow" / "3")


# -- skops ------------------------------------------------------------------------------------


def test_skops_model_loads_with_skops_default_trusted_types(tmp_path, caplog):
    model = LogisticRegression().fit(X, Y)
    with caplog.at_level(logging.WARNING, logger="model_server"):
        artifact = ModelArtifact.load(skops_dir(tmp_path, model), require_sha256=True)  # no pin needed
    assert artifact.format == "skops" and artifact.path.name == "model.skops"
    assert (artifact.estimator.predict(X) == model.predict(X)).all()
    assert caplog.records == []


def test_skops_untrusted_type_refuses_listing_it_until_metadata_trusts_it(tmp_path):
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)
    with pytest.raises(ArtifactError) as error:
        ModelArtifact.load(skops_dir(tmp_path / "a", forest))
    assert "untrusted types ['sklearn.tree._tree.Tree']" in one_line(error)
    assert '"skops_trusted_types" in metadata.json' in str(error.value)
    artifact = ModelArtifact.load(skops_dir(tmp_path / "b", forest, skops_trusted_types=["sklearn.tree._tree.Tree"]))
    assert (artifact.estimator.predict(X) == forest.predict(X)).all()


def test_skops_refuses_a_users_own_class_it_was_not_told_to_trust(tmp_path):
    with pytest.raises(ArtifactError) as error:
        ModelArtifact.load(skops_dir(tmp_path, FailsOnNegative().fit(X)))
    assert "untrusted types ['tests.support.estimators.FailsOnNegative']" in one_line(error)


def test_skops_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "model.skops").write_bytes(b"\x80\x04 a pickle, renamed")
    with pytest.raises(ArtifactError) as error:
        ModelArtifact.load(tmp_path)
    assert one_line(error) == f"cannot load {tmp_path / 'model.skops'}: not a skops file (not a zip archive)"


@pytest.mark.parametrize("declared", ["sklearn.tree._tree.Tree", [""], [3]])
def test_trusted_types_must_be_a_list_of_names(tmp_path, declared):
    with pytest.raises(ArtifactError, match="skops_trusted_types must be a list of type names"):
        ModelArtifact.load(skops_dir(tmp_path, LogisticRegression().fit(X, Y), skops_trusted_types=declared))


def test_cve_2025_54412_bypass_is_refused_even_with_the_names_it_shows_trusted(tmp_path):
    marker = tmp_path / "pwned"
    model_dir = tmp_path / "model"
    malicious.write_skops_cve_2025_54412(model_dir / "model.skops", marker)
    (model_dir / "metadata.json").write_text(json.dumps({"skops_trusted_types": malicious.CVE_2025_54412_SHOWN_TYPES}))
    with pytest.raises(ArtifactError) as error:
        ModelArtifact.load(model_dir, require_sha256=True)
    assert "Expected module 'operator', got sklearn.linear_model._stochastic_gradient.SGDRegressor" in one_line(error)
    assert not marker.exists()


def test_the_cve_payload_is_real_under_its_true_names(tmp_path):
    """The same file without the disguise runs its code for whoever trusts what it truly calls:
    the refusal above is skops' check, not a broken file."""
    marker = tmp_path / "pwned"
    model_dir = tmp_path / "model"
    malicious.write_skops_cve_2025_54412(model_dir / "model.skops", marker, disguised=False)
    with pytest.raises(ArtifactError, match=r"untrusted types \['operator.call', 'skops.io.loads'\]"):
        ModelArtifact.load(model_dir)
    assert not marker.exists()
    (model_dir / "metadata.json").write_text(json.dumps({"skops_trusted_types": malicious.CVE_2025_54412_TRUE_TYPES}))
    with pytest.raises(ArtifactError, match="NoneType has no predict method"):
        ModelArtifact.load(model_dir)
    assert marker.read_text() == "pwned"


def test_skops_hash_is_checked_before_skops_reads_the_file(tmp_path, monkeypatch):
    model_dir = skops_dir(tmp_path, LogisticRegression().fit(X, Y), sha256="0" * 64)
    monkeypatch.setattr(skops.io, "get_untrusted_types", lambda **_: pytest.fail("read a file that did not match"))
    monkeypatch.setattr(skops.io, "load", lambda *_, **__: pytest.fail("loaded a file that did not match"))
    with pytest.raises(ArtifactError, match=r"does not match 0{64} in metadata.json"):
        ModelArtifact.load(model_dir)


# -- pickles: pinned, warned of, or refused ----------------------------------------------------


def test_unpinned_pickle_loads_with_one_warning_saying_how_to_pin_it(tmp_path, caplog):
    model_dir = pickle_dir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="model_server"):
        ModelArtifact.load(model_dir)
    [record] = caplog.records
    message = record.getMessage()
    assert record.levelname == "WARNING" and UNPINNED in message and "\n" not in message
    assert "model_server.core.artifact.write_metadata" in message and "python -m model_server.demo" in message
    assert "--require_sha256" in message
    caplog.clear()
    write_metadata(model_dir)
    with caplog.at_level(logging.WARNING, logger="model_server"):
        ModelArtifact.load(model_dir, require_sha256=True)
    assert caplog.records == []


def test_require_sha256_refuses_an_unpinned_pickle_unread(tmp_path, monkeypatch):
    model_dir = pickle_dir(tmp_path)
    monkeypatch.setattr(joblib, "load", lambda path: pytest.fail("unpickled a file nobody pinned"))
    with pytest.raises(ArtifactError) as error:
        ModelArtifact.load(model_dir, require_sha256=True)
    message = one_line(error)
    assert message.startswith(
        f"{model_dir / 'model.joblib'}: {UNPINNED} pickle file, refused unread (--require_sha256)"
    )
    assert "write_metadata" in message and "skops" in message


def test_require_sha256_accepts_a_pinned_pickle(tmp_path):
    model_dir = pickle_dir(tmp_path)
    write_metadata(model_dir)
    artifact = ModelArtifact.load(model_dir, require_sha256=True)
    assert artifact.sha256 == file_sha256(model_dir / "model.joblib") and artifact.format == "pickle"


def test_malicious_pickle_runs_by_default_and_is_refused_unread_under_require_sha256(tmp_path):
    marker = tmp_path / "pwned"
    model_dir = tmp_path / "model"
    malicious.write_pickle(model_dir / "model.pkl", marker)
    with pytest.raises(ArtifactError, match=f"{UNPINNED} pickle file, refused unread"):
        ModelArtifact.load(model_dir, require_sha256=True)
    assert not marker.exists()
    # What every sklearnserver does with it: it loads, runs its code, and predicts.
    assert ModelArtifact.load(model_dir).estimator.predict([[0.0, 0.0]]).tolist() == [0]
    assert marker.read_text() == "pwned"


def test_a_pin_of_another_file_refuses_a_malicious_pickle_unread(tmp_path):
    marker = tmp_path / "pwned"
    model_dir = pickle_dir(tmp_path / "model")
    write_metadata(model_dir)
    malicious.write_pickle(model_dir / "model.joblib", marker)  # swapped in after pinning
    with pytest.raises(ArtifactError, match="does not match"):
        ModelArtifact.load(model_dir)
    assert not marker.exists()


# -- MLflow models (made by mlflow-skinny) -----------------------------------------------------


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle", "skops"])
def test_mlflow_model_loads_as_saved_with_its_signature_as_the_schema(mlflow_models, serialization):
    frame, _ = mixed_frame()
    predictor = Predictor.load(mlflow_models[serialization])
    artifact = predictor.artifact
    assert artifact.format == f"MLflow {serialization}"
    assert artifact.path.name == ("model.skops" if serialization == "skops" else "model.pkl")
    assert predictor.inputs_metadata() == [
        {"name": "colour", "datatype": "BYTES", "shape": [-1]},
        {"name": "size", "datatype": "FP64", "shape": [-1]},
        {"name": "count", "datatype": "INT64", "shape": [-1]},
    ]
    rows = frame.head(8).to_dict("records")
    X, outputs = predictor.prepare(decode_v1({"instances": rows}))
    assert (
        predictor.predict_batch(X, frozenset(outputs))["predict"].tolist()
        == train_mixed().predict(frame.head(8)).tolist()
    )


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle"])
def test_mlflow_pickles_are_pickles_to_require_sha256(mlflow_models, tmp_path, serialization):
    model_dir = copy(mlflow_models[serialization], tmp_path)
    with pytest.raises(ArtifactError) as error:
        ModelArtifact.load(model_dir, require_sha256=True)
    assert f"model.pkl: {UNPINNED} MLflow {serialization} file, refused unread" in one_line(error)
    write_metadata(model_dir)  # pins the file MLmodel names
    assert json.loads((model_dir / "metadata.json").read_text())["sha256"] == file_sha256(model_dir / "model.pkl")
    assert ModelArtifact.load(model_dir, require_sha256=True).metadata.features[0].name == "colour"


def test_mlflow_skops_needs_no_pin(mlflow_models):
    assert ModelArtifact.load(mlflow_models["skops"], require_sha256=True).format == "MLflow skops"


def test_mlflow_skops_trusts_what_mlmodel_trusts(tmp_path, mlflow_models):
    model_dir = copy(mlflow_models["skops"], tmp_path)
    skops.io.dump(RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y), model_dir / "model.skops")
    edit_mlmodel(model_dir, lambda d: d.pop("signature"))
    with pytest.raises(
        ArtifactError,
        match=r"untrusted types \['sklearn.tree._tree.Tree'\].* or flavors.sklearn.skops_trusted_types in MLmodel",
    ):
        ModelArtifact.load(model_dir)
    edit_mlmodel(model_dir, lambda d: d["flavors"]["sklearn"].update(skops_trusted_types=["sklearn.tree._tree.Tree"]))
    assert ModelArtifact.load(model_dir).estimator.n_features_in_ == 3


def test_mlmodel_metadata_sha256_is_a_pin(tmp_path, mlflow_models, monkeypatch):
    model_dir = copy(mlflow_models["cloudpickle"], tmp_path)
    digest = file_sha256(model_dir / "model.pkl")
    edit_mlmodel(model_dir, lambda d: d.update(metadata={"sha256": digest.upper()}))
    assert ModelArtifact.load(model_dir, require_sha256=True).sha256 == digest
    edit_mlmodel(model_dir, lambda d: d.update(metadata={"sha256": "1" * 64}))
    monkeypatch.setattr(cloudpickle, "load", lambda f: pytest.fail("unpickled a file that did not match"))
    with pytest.raises(ArtifactError, match=r"does not match 1{64} in MLmodel metadata.sha256"):
        ModelArtifact.load(model_dir)


def test_metadata_json_features_win_over_the_signature(tmp_path, mlflow_models):
    model_dir = copy(mlflow_models["skops"], tmp_path)
    features = [{"name": "colour", "datatype": "BYTES"}, {"name": "size"}, {"name": "count"}]
    (model_dir / "metadata.json").write_text(json.dumps({"features": features}))
    assert [f.datatype for f in ModelArtifact.load(model_dir).metadata.features] == ["BYTES", "FP64", "FP64"]


def test_a_signature_that_disagrees_with_the_estimator_fails_at_the_schema(tmp_path, mlflow_models):
    model_dir = edit_mlmodel(
        copy(mlflow_models["skops"], tmp_path),
        lambda d: d["signature"].update(inputs=json.dumps([{"name": "colour", "type": "string"}])),
    )
    assert ModelArtifact.load(model_dir).metadata.features[0].name == "colour"  # loading is fine ...
    with pytest.raises(ArtifactError, match="metadata declares 1 features, the estimator was fitted on 3"):
        Predictor.load(model_dir)  # ... the schema is not


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d["flavors"].pop("sklearn"), "no sklearn flavor \\(flavors: python_function\\)"),
        (lambda d: d["flavors"]["sklearn"].update(code="code"), "ships code \\(code\\); this server never imports"),
        (lambda d: d["flavors"]["sklearn"].update(serialization_format="onnx"), "serialization_format 'onnx'"),
        (lambda d: d["flavors"]["sklearn"].update(pickled_model="../model.pkl"), "'../model.pkl' is outside"),
        (lambda d: d["flavors"]["sklearn"].update(pickled_model="gone.pkl"), "'gone.pkl' is not there"),
        (
            lambda d: d["signature"].update(inputs=json.dumps([{"name": "when", "type": "datetime"}])),
            "signature column 'when' is of type 'datetime'; this server takes string, binary, boolean",
        ),
        (
            lambda d: d["signature"].update(inputs=json.dumps([{"name": "a", "type": "double"}, {"type": "long"}])),
            "signature.inputs\\[1\\] has no name",
        ),
        (lambda d: d["signature"].update(inputs="[{"), "signature.inputs is not valid JSON"),
        (lambda d: d.update(metadata={"sha256": ""}), "metadata.sha256 must be a string of 64 hex digits"),
    ],
)
def test_unservable_mlmodel_is_one_line_naming_the_key(tmp_path, mlflow_models, change, message):
    model_dir = edit_mlmodel(copy(mlflow_models["pickle"], tmp_path), change)
    with pytest.raises(ArtifactError, match=message) as error:
        ModelArtifact.load(model_dir)
    assert one_line(error).startswith(f"{model_dir / 'MLmodel'}: ")


def test_mlmodel_that_is_not_yaml(tmp_path, mlflow_models):
    model_dir = copy(mlflow_models["pickle"], tmp_path)
    (model_dir / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(ArtifactError, match="MLmodel: not a readable YAML file") as error:
        ModelArtifact.load(model_dir)
    one_line(error)


def test_tensor_or_unnamed_signatures_leave_the_schema_to_the_estimator(tmp_path, mlflow_models):
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}]
    unnamed = [{"type": "double"}, {"type": "double"}, {"type": "double"}]
    for inputs in (tensor, unnamed):
        model_dir = edit_mlmodel(
            copy(mlflow_models["pickle"], tmp_path / str(len(inputs))),
            lambda d, inputs=inputs: d["signature"].update(inputs=json.dumps(inputs)),
        )
        assert ModelArtifact.load(model_dir).metadata.features is None


def test_onnx_model_directory_loads_through_the_same_table(tmp_path):
    from model_server.export import export

    model = LogisticRegression().fit(X, Y)
    export(pickle_dir(tmp_path / "source", model), tmp_path / "onnx")
    metadata_path = tmp_path / "onnx" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["sha256"]  # a graph runs no code when it loads: no pin needed, even under require_sha256
    metadata_path.write_text(json.dumps(metadata))
    artifact = ModelArtifact.load(tmp_path / "onnx", require_sha256=True)
    assert artifact.format == "ONNX" and artifact.path.name == "model.onnx"
    assert artifact.estimator.predict(X).tolist() == model.predict(X).tolist()


def test_mlmodel_signature_params_and_predict_fn_are_kept_for_invocations(tmp_path, mlflow_models):
    params = [{"name": "temperature", "type": "double", "default": 1.0, "shape": None}]
    model_dir = edit_mlmodel(
        copy(mlflow_models["pickle"], tmp_path),
        lambda d: (
            d["signature"].update(params=json.dumps(params)),
            d["flavors"]["python_function"].update(predict_fn="predict_proba"),
        ),
    )
    metadata = ModelArtifact.load(model_dir).metadata
    assert (metadata.params, metadata.predict_fn) == (("temperature",), "predict_proba")
    plain = ModelArtifact.load(mlflow_models["pickle"]).metadata
    assert (plain.params, plain.predict_fn) == ((), "predict")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d["signature"].update(params="[{"), "signature.params is not valid JSON"),
        (lambda d: d["signature"].update(params=json.dumps([{"type": "double"}])), "signature.params must be a list"),
        (lambda d: d["flavors"]["python_function"].update(predict_fn=3), "predict_fn must be a method name"),
    ],
)
def test_unusable_params_or_predict_fn_is_one_line_naming_the_key(tmp_path, mlflow_models, change, message):
    model_dir = edit_mlmodel(copy(mlflow_models["pickle"], tmp_path), change)
    with pytest.raises(ArtifactError, match=message) as error:
        ModelArtifact.load(model_dir)
    one_line(error)
