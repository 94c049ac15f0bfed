"""`helm test` client: send one inference request to the deployed model and check the answer.

Standard library only (it runs in the server image). Configured by environment:
BASE_URL, MODEL_NAME, PROTOCOL (v1 | v2), INSTANCES (JSON rows), ATTEMPTS (default 24,
5 s apart: the predictor may still be starting or scaling up from zero); over https, CA_FILE
verifies the server and CLIENT_CERT / CLIENT_KEY are presented (mutual TLS); the contents of
TOKEN_FILE are sent as Authorization: Bearer (an API key or a JWT).
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request


def build_request(protocol, name, rows):
    if protocol == "v1":
        return f"/v1/models/{name}:predict", {"instances": rows}
    flat = [value for row in rows for value in row]
    tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": flat}
    return f"/v2/models/{name}/infer", {"inputs": [tensor]}


def check_answer(protocol, name, rows, answer):
    """Return what is wrong with the answer, or None."""
    if protocol == "v1":
        predictions = answer.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(rows):
            return f"expected {len(rows)} predictions, got {predictions!r}"
        return None
    if answer.get("model_name") != name:
        return f"expected model_name {name!r}, got {answer.get('model_name')!r}"
    outputs = answer.get("outputs") or []
    if not outputs or outputs[0].get("shape", [None])[0] != len(rows):
        return f"expected an output with {len(rows)} rows, got {outputs!r}"
    return None


def main():
    base, name = os.environ["BASE_URL"].rstrip("/"), os.environ["MODEL_NAME"]
    protocol, rows = os.environ.get("PROTOCOL", "v2"), json.loads(os.environ["INSTANCES"])
    attempts = int(os.environ.get("ATTEMPTS", "24"))
    path, body = build_request(protocol, name, rows)
    headers = {"Content-Type": "application/json"}
    if os.environ.get("TOKEN_FILE"):
        with open(os.environ["TOKEN_FILE"]) as token:
            headers["Authorization"] = "Bearer " + token.read().strip()
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers)
    context = None
    if base.startswith("https:"):
        context = ssl.create_default_context(cafile=os.environ.get("CA_FILE") or None)
        if os.environ.get("CLIENT_CERT"):
            context.load_cert_chain(os.environ["CLIENT_CERT"], os.environ["CLIENT_KEY"])
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                answer = json.load(response)
            break
        except (urllib.error.URLError, ConnectionError) as error:
            # 4xx means the request itself is wrong: retrying will not help.
            if isinstance(error, urllib.error.HTTPError) and 400 <= error.code < 500 and error.code != 404:
                print(f"FAIL {base + path}: HTTP {error.code} {error.read().decode(errors='replace')}")
                return 1
            print(f"attempt {attempt}/{attempts}: {base + path}: {error}")
            if attempt == attempts:
                return 1
            time.sleep(5)
    problem = check_answer(protocol, name, rows, answer)
    print(("FAIL " + problem) if problem else f"OK {json.dumps(answer)}")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
