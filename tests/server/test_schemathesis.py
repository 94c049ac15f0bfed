"""schemathesis against the server's own /openapi.json: no route answers 5xx, whatever it is sent.

Every generated case is sent twice: as generated, and with the served model's name, so that the
routes are exercised past their 404s. 501 is allowed only for explain, the one route truly not
implemented, and then with a message. Client mistakes leave no traceback in the log.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.servers import start_server


@pytest.fixture(scope="module")
def fuzzed_server(demo_model_dir):
    with start_server(demo_model_dir, "iris") as served:
        yield served


CASES_PER_ROUTE = 200


def test_no_route_answers_a_server_error(fuzzed_server):
    # schemathesis' pytest plugin does not run under pytest 9: its strategies, driven here.
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.http_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=CASES_PER_ROUTE, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def route_never_fails(case):
            check(case, fuzzed_server)

        route_never_fails()


def check(case, server) -> None:
    for served_name in (False, True):
        if served_name:
            if "model_name" not in (case.path_parameters or {}):
                return
            case.path_parameters["model_name"] = "iris"
        response = case.call(base_url=server.http_url, timeout=15)
        where = f"{case.method} {case.formatted_path}"
        if response.status_code == 501:  # only explain is not implemented (sklearn models explain nothing)
            assert case.path.endswith(":explain") and response.json()["error"], f"501 from {where}: {response.text}"
        else:
            assert response.status_code < 500, (where, response.text[:300])


def test_client_mistakes_leave_no_traceback(fuzzed_server):
    if "Traceback" in fuzzed_server.log():
        pytest.fail(fuzzed_server.log()[fuzzed_server.log().index("Traceback") - 300 :][:3000])
