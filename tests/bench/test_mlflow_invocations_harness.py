"""The /invocations benchmark's bookkeeping (benchmarks/mlflow_invocations.py): medians, the three
targets against their anchors, and a failed run that never counts. No timing assertions; the
harness itself runs in `make bench`."""

from benchmarks.mlflow_invocations import invocations_body, render, summarize
from benchmarks.workloads import build_iris


def run(server, model, protocol, req_per_s, p99_ms, invalid=None):
    return {
        "server": server,
        "model": model,
        "protocol": protocol,
        "req_per_s": req_per_s,
        "p50_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "requests": int(req_per_s),
        "invalid_reason": invalid,
        "valid": invalid is None,
    }


def test_targets_against_mlflow_and_our_v2():
    records = [
        run("model-server", "iris", "invocations", 5000, 3.0),
        run("model-server", "iris", "invocations", 7000, 5.0),
        run("model-server", "iris", "v2-rest", 6000, 3.0),
        run("mlflow", "iris", "invocations", 400, 40.0),
        run("model-server", "rf100", "invocations", 1000, 9.0),
        run("model-server", "rf100", "v2-rest", 2000, 4.0),
        run("mlflow", "rf100", "invocations", 50, 30.0, invalid="3 non-2xx responses"),
    ]
    result = summarize(records)
    iris = {t["target"]: (t["value"], t["met"]) for t in result["targets"] if t["model"] == "iris"}
    assert iris == {
        "req/s >= 10x mlflow": (15.0, True),  # median 6000 / 400
        "p99 <= 1/5 of mlflow's": (0.1, True),
        "req/s >= 0.8x our V2 REST": (1.0, True),
    }
    assert [t for t in result["targets"] if t["model"] == "rf100"] == [
        {"model": "rf100", "target": "all", "met": False, "value": "INVALID run"}
    ]
    markdown = render(
        {"date": "d", "machine": "m", "commit": "c", "mlflow": "3", "duration_s": 1, "rounds": 2, **result}
    )
    assert "INVALID: 3 non-2xx responses" in markdown and "| rf100 | all | INVALID run | NO |" in markdown


def test_the_request_names_the_models_columns(tmp_path):
    iris = build_iris(tmp_path)
    body = invocations_body(iris, iris.rows(1)).decode()
    assert body.startswith(
        '{"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"]'
    )
