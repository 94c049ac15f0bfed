"""Reading the inputs off a fitted estimator: documents or rows, and which columns are strings."""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from model_server.core.errors import ArtifactError, InvalidInput
from model_server.core.estimator_inputs import column_values, string_columns, takes_documents
from model_server.core.metadata import Feature
from model_server.core.schema import DECLARE_HINT, InputSchema

DOCS = ["goal match", "python cloud", "pasta sauce", "team score"]
LABELS = ["sports", "tech", "food", "sports"]
FRAME = pd.DataFrame({"colour": ["red", "blue"] * 10, "size": np.arange(20.0), "code": [1, 2] * 10})
Y = [0, 1] * 10


@pytest.mark.parametrize(
    "model,documents",
    [
        (make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(DOCS, LABELS), True),
        (make_pipeline(HashingVectorizer(n_features=16), LogisticRegression()).fit(DOCS, LABELS), True),
        (make_pipeline(make_pipeline(TfidfVectorizer()), LogisticRegression()).fit(DOCS, LABELS), True),
        (
            make_pipeline(FunctionTransformer(lambda d: [[len(x)] for x in d]), LogisticRegression()).fit(DOCS, LABELS),
            True,
        ),
        (make_pipeline(StandardScaler(), LogisticRegression()).fit(np.eye(4), LABELS), False),
        (make_pipeline(FunctionTransformer(), LogisticRegression()).fit(np.eye(4), LABELS), False),
    ],
)
def test_documents_are_told_by_the_first_step(model, documents):
    assert takes_documents(model) is documents


def test_string_columns_of_a_column_transformer():
    encode = ColumnTransformer(
        [
            ("onehot", OneHotEncoder(), ["colour"]),
            ("scale", StandardScaler(), ["size"]),
            ("ints", OneHotEncoder(), ["code"]),  # numeric categories: a numeric feature
        ]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(FRAME, Y)
    assert string_columns(model) == ["colour"]
    schema = InputSchema.for_estimator(model)
    assert [(f.name, f.datatype) for f in schema.features] == [("colour", "BYTES"), ("size", "FP64"), ("code", "FP64")]
    X = schema.from_rows([{"colour": "red", "size": 1.5, "code": 2}])
    assert X.to_dict("records") == [{"colour": "red", "size": 1.5, "code": 2.0}]
    assert model.predict(schema.probe()).shape == (1,)


def test_encoders_inside_nested_pipelines_and_text_columns():
    frame = FRAME.assign(note=["nice colour", "big"] * 10)
    encode = ColumnTransformer(
        [
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OrdinalEncoder()), ["colour"]),
            ("text", TfidfVectorizer(), "note"),
        ]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, Y)
    assert string_columns(model) == ["colour", "note"]
    assert column_values(model) == {"colour": (True, ["blue", "red"]), "note": (True, [])}


def test_where_types_cannot_be_derived_the_error_says_how_to_declare_them():
    lengths = ColumnTransformer([("len", FunctionTransformer(lambda c: c.map(len).to_frame()), "colour")])
    model = make_pipeline(lengths, LogisticRegression()).fit(FRAME[["colour"]], Y)
    derived = InputSchema.for_estimator(model)
    with pytest.raises(InvalidInput) as error:
        derived.from_rows([{"colour": "red"}])
    assert str(error.value) == f"instance 0, feature 'colour': expected a number, got a string 'red'{DECLARE_HINT}"
    declared = InputSchema.for_estimator(model, (Feature("colour", "FP64"),))
    with pytest.raises(InvalidInput) as error:
        declared.from_rows([{"colour": "red"}])
    assert "metadata.json" not in str(error.value)


def test_documents_schema_takes_strings_in_every_form():
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(DOCS, LABELS)
    schema = InputSchema.for_estimator(model)
    assert schema.documents and [(f.name, f.datatype) for f in schema.features] == [("text", "BYTES")]
    for instances in (DOCS, [[d] for d in DOCS], [{"text": d} for d in DOCS]):
        X = schema.from_rows(instances)
        assert X.ndim == 1 and list(X) == DOCS
        assert model.predict(X).tolist() == model.predict(DOCS).tolist()
    with pytest.raises(ArtifactError, match="one feature, of datatype BYTES"):
        InputSchema.for_estimator(model, (Feature("a", "BYTES"), Feature("b", "BYTES")))
