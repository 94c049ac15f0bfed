"""_CoalescingTransport: what uvicorn writes during one loop iteration reaches the socket once."""

import asyncio

from model_server.http.protocol import _CoalescingTransport


class RecordingTransport:
    def __init__(self):
        self.writes, self.closed, self.closing = [], False, False

    def write(self, data):
        self.writes.append(data)

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closing or self.closed

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1234) if name == "peername" else default


def test_writes_of_one_iteration_go_out_as_one():
    async def scenario():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"{}")
        assert real.writes == []  # nothing sent yet, within the iteration
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return real.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"next"]


def test_close_sends_what_was_written_first_and_a_closing_socket_gets_nothing():
    async def scenario():
        loop = asyncio.get_running_loop()
        real, gone = RecordingTransport(), RecordingTransport()
        transport, to_gone = _CoalescingTransport(real, loop), _CoalescingTransport(gone, loop)
        transport.write(b"last response")
        transport.close()
        gone.closing = True  # the client went away
        to_gone.write(b"too late")
        await asyncio.sleep(0)
        return real, gone, to_gone

    real, gone, to_gone = asyncio.run(scenario())
    assert real.writes == [b"last response"] and real.closed
    assert gone.writes == []
    assert to_gone.get_extra_info("peername") == ("127.0.0.1", 1234)  # the rest is the real transport's


def test_a_large_body_goes_out_at_once_instead_of_piling_up():
    async def scenario():
        real = RecordingTransport()
        transport = _CoalescingTransport(real, asyncio.get_running_loop())
        chunk = b"x" * 40_000
        transport.write(chunk)
        transport.write(chunk)  # past MAX_PENDING: sent now, within the iteration
        sent_at_once = list(real.writes)
        transport.write(b"tail")
        await asyncio.sleep(0)
        return sent_at_once, real.writes

    sent_at_once, writes = asyncio.run(scenario())
    assert sent_at_once == [b"x" * 80_000]
    assert writes == [b"x" * 80_000, b"tail"]
