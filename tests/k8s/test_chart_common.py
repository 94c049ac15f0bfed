"""The one entry point (model-server.validateValues) of the checks values.schema.json cannot express."""

from __future__ import annotations

import re

import pytest

from .rendering import CHART, helm_template_error

# The one validation entry point ------------------------------------------------------------------

TEMPLATES = CHART / "templates"


@pytest.mark.parametrize(
    "values, message",
    [
        (["--set", "batch.enabled=true", "--set", "batch.input=s3://in/"], "batch.enabled needs batch.input and"),
    ],
    ids=["batch-without-output"],
)
def test_half_configured_values_are_refused_by_validate_values(helm, values, message):
    error = helm_template_error(helm, *values)
    assert "templates/NOTES.txt" in error and "VALUES VALIDATION:" in error and message in error


def test_validate_values_reports_every_problem_at_once(helm):
    error = helm_template_error(
        helm,
        "--set",
        "terminationGracePeriodSeconds=25",
        "--set",
        "batch.enabled=true",
        "--set",
        "autoscaling.minReplicas=3",
        "--set",
        "autoscaling.maxReplicas=2",
    )
    problems = error.split("VALUES VALIDATION:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [p.split(" ", 1)[0] for p in problems] == [
        "terminationGracePeriodSeconds",
        "autoscaling.maxReplicas",
        "batch.enabled",
    ]


def test_every_check_is_called_from_the_one_entry_point_and_nothing_else_fails():
    validations = (TEMPLATES / "_validations.tpl").read_text()
    checks = re.findall(r'define "model-server\.validateValues\.(\w+)"', validations)
    listed = re.search(r"range \$check := list(.*?)}}", validations, flags=re.S).group(1).split()
    assert checks and [name.strip('"') for name in listed] == checks
    calls, fails = [], []
    for path in sorted(TEMPLATES.rglob("*")):
        if path.is_file():
            text = path.read_text()
            calls += [path.name] * text.count('include "model-server.validateValues"')
            fails += [path.name] * len(
                re.findall(r"\bfail\b", re.sub(r"{{-?\s*/\*.*?\*/\s*-?}}", "", text, flags=re.S))
            )
    assert calls == ["NOTES.txt"]
    assert fails == ["_validations.tpl"]
