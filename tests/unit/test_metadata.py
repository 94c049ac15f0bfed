"""metadata.json: every wrong key or value is a one-line ArtifactError naming it."""

import pytest

from model_server.core.errors import ArtifactError
from model_server.core.metadata import Feature, ModelMetadata, parse_metadata, read_metadata


def test_full_metadata():
    metadata = parse_metadata(
        {
            "version": 3,
            "features": [{"name": "colour", "datatype": "bytes"}, {"name": "size"}],
            "class_labels": ["no", "yes"],
            "sha256": "AB" * 32,
            "documents": False,
        }
    )
    assert metadata == ModelMetadata(
        version="3",
        features=(Feature("colour", "BYTES"), Feature("size", "FP64")),
        class_labels=("no", "yes"),
        sha256="ab" * 32,
        documents=False,
    )
    assert not metadata.features[0].numeric and metadata.features[1].numeric


def test_absent_file_and_empty_object_mean_defaults(tmp_path):
    assert read_metadata(tmp_path) == ModelMetadata()
    assert parse_metadata({}) == ModelMetadata(version="1")


@pytest.mark.parametrize(
    "document,message",
    [
        ([], "expected a JSON object"),
        ({"class_label": []}, "unknown keys ['class_label']"),
        ({"sha256": 123}, "sha256 must be a string of 64 hex digits, got 123"),
        ({"sha256": ""}, "sha256 must be a string of 64 hex digits, got ''"),
        ({"sha256": "00"}, "sha256 must be a string of 64 hex digits"),
        ({"sha256": "g" * 64}, "sha256 must be a string of 64 hex digits"),
        ({"version": ""}, "version must be a non-empty string"),
        ({"version": True}, "version must be a non-empty string"),
        ({"version": [1]}, "version must be a non-empty string"),
        ({"features": "x"}, "features must be a non-empty list"),
        ({"features": []}, "features must be a non-empty list"),
        ({"features": [{"datatype": "FP64"}]}, "features[0] must be an object with a non-empty string 'name'"),
        ({"features": ["x"]}, "features[0] must be an object"),
        ({"features": [{"name": "x", "type": "FP64"}]}, "features[0]: unknown keys ['type']"),
        ({"features": [{"name": "x", "datatype": "FP99"}]}, "features[0]: unknown datatype 'FP99'"),
        ({"features": [{"name": "x", "datatype": 64}]}, "features[0]: unknown datatype 64"),
        ({"features": [{"name": "x"}, {"name": "x"}]}, "duplicate names ['x']"),
        ({"class_labels": "ab"}, "class_labels must be a list of strings"),
        ({"class_labels": [["a"]]}, "class_labels must be a list of strings"),
        ({"documents": "yes"}, "documents must be true or false, got 'yes'"),
    ],
)
def test_wrong_values_name_the_key(document, message):
    with pytest.raises(ArtifactError) as error:
        parse_metadata(document, "m/metadata.json")
    assert str(error.value).startswith("m/metadata.json: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_unreadable_json_names_the_file(tmp_path):
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"metadata.json: not valid JSON"):
        read_metadata(tmp_path)
