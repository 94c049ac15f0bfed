"""schemathesis against the server's own /openapi.json: no route answers 5xx, whatever it is sent.

Every generated case is sent twice: as generated, and with the served model's name, so that the
routes are exercised past their 404s; against a server with --auth api_key too (with the key,
and without it: 401 on every route but health and readiness). 501 is allowed only for explain, the one route truly not
implemented, and then with a message. Client mistakes leave no traceback in the log.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from model_server.core.auth import hash_api_key
from tests.support.servers import start_server

API_KEY = "fuzz-key"
# Health, readiness and /metrics (without --auth_metrics) answer without a credential whatever --auth says.
OPEN_WITH_AUTH = re.compile(
    r"/|/metrics|/ping|/health|/v2/health/(live|ready)|/v2/models/[^/]+(/versions/[^/]+)?/ready|/v1/models/[^/:]+"
)


@pytest.fixture(scope="module", params=["open", "api_key"])
def fuzzed_server(request, demo_model_dir, tmp_path_factory):
    """The server as it starts by default, and behind --auth api_key (every case then sent with
    the key, and once without it: 401, never a 5xx)."""
    args, headers = [], {}
    if request.param == "api_key":
        keys = tmp_path_factory.mktemp("keys") / "api-keys"
        keys.write_text(f"{hash_api_key(API_KEY)} fuzzer\n")
        args, headers = ["--auth=api_key", f"--auth_api_keys_file={keys}"], {"x-api-key": API_KEY}
    with start_server(demo_model_dir, "iris", *args) as served:
        served.headers = headers
        yield served


CASES_PER_ROUTE = 200


def test_no_route_answers_a_server_error(fuzzed_server):
    # schemathesis' pytest plugin does not run under pytest 9: its strategies, driven here.
    # A copy: schemathesis adds its User-Agent to the dict it is given.
    schema = schemathesis.openapi.from_url(
        f"{fuzzed_server.http_url}/openapi.json", headers=dict(fuzzed_server.headers)
    )
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
        if server.headers and not served_name:
            anonymous = case.call(base_url=server.http_url, timeout=15, headers={"x-api-key": ""})
            if not OPEN_WITH_AUTH.fullmatch(case.formatted_path):
                assert anonymous.status_code == 401, (
                    server.headers,
                    case.method,
                    case.formatted_path,
                    anonymous.text[:300],
                )
            assert anonymous.status_code < 500
        response = case.call(base_url=server.http_url, timeout=15, headers=dict(server.headers))
        where = f"{case.method} {case.formatted_path}"
        if response.status_code == 501:  # only explain is not implemented (sklearn models explain nothing)
            assert case.path.endswith(":explain") and response.json()["error"], f"501 from {where}: {response.text}"
        else:
            assert response.status_code < 500, (where, response.text[:300])


def test_client_mistakes_leave_no_traceback(fuzzed_server):
    if "Traceback" in fuzzed_server.log():
        pytest.fail(fuzzed_server.log()[fuzzed_server.log().index("Traceback") - 300 :][:3000])
