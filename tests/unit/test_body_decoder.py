"""Large bodies are decoded in the helper process, in-process tests of the client: the same
answers as decoding inline, errors carried back, and a helper that died is replaced."""

import asyncio
import os
import signal
import subprocess
import sys

import numpy as np
import orjson
import pytest

from model_server.core.body_decoder import BodyDecoder
from model_server.core.codec import V1Request, V2Request
from model_server.core.errors import InvalidInput, ModelFailure

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] * 50


@pytest.fixture
def decoder():
    decoder = BodyDecoder(threshold=1024)
    yield decoder
    decoder.close()


def decode(decoder, protocol, body, header_length=None):
    return asyncio.run(decoder.decode(protocol, body, header_length))


def test_small_bodies_never_start_the_helper(decoder):
    request = decode(decoder, "v1", orjson.dumps({"instances": ROWS[:2]}))
    assert isinstance(request, V1Request) and request.instances == ROWS[:2]
    assert decoder._helper is None


def test_large_bodies_decode_in_the_helper_as_they_would_inline(decoder):
    v1 = decode(decoder, "v1", orjson.dumps({"instances": ROWS}))
    assert decoder._helper is not None and decoder._helper.pid != os.getpid()
    assert isinstance(v1.instances, np.ndarray) and v1.instances.tolist() == ROWS  # rows of numbers: one matrix
    body = {"id": "big", "inputs": [{"name": "x", "datatype": "FP64", "shape": [len(ROWS), 4], "data": ROWS}]}
    v2 = decode(decoder, "v2", orjson.dumps(body))
    assert isinstance(v2, V2Request) and v2.id == "big" and v2.inputs[0].data.tolist() == ROWS


def test_a_client_error_in_the_helper_is_the_same_client_error(decoder):
    with pytest.raises(InvalidInput, match='missing "instances"'):
        decode(decoder, "v1", orjson.dumps({"rows": ROWS}))
    with pytest.raises(InvalidInput, match="not valid JSON"):
        decode(decoder, "v1", b"{" + b" " * 2048)


def test_a_helper_that_died_is_replaced_by_the_next_large_body(decoder):
    body = orjson.dumps({"instances": ROWS})
    decode(decoder, "v1", body)
    first = decoder._helper
    os.kill(first.pid, signal.SIGKILL)  # killed for memory, say, between two bodies
    first.wait()
    assert decode(decoder, "v1", body).instances.tolist() == ROWS
    assert decoder._helper.pid != first.pid


def test_a_helper_that_dies_during_a_body_fails_that_body_only(decoder):
    body = orjson.dumps({"instances": ROWS})
    # A helper that reads the body's first bytes and dies without answering.
    dying = "import sys; sys.stdin.buffer.read(8); sys.exit(1)"
    decoder._helper = subprocess.Popen([sys.executable, "-c", dying], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with pytest.raises(ModelFailure, match="restarts with the next"):
        decode(decoder, "v1", body)
    assert decode(decoder, "v1", body).instances.tolist() == ROWS
