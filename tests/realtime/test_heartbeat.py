"""Keep-alive against a real `pull api`: the server pings every STREAM_PING_SECONDS with the
body `heartbeat` (Kalshi's), a client that answers stays connected, one that stops answering
is closed after STREAM_PONG_TIMEOUT_SECONDS. The client is the `websockets` library's sans-I/O
protocol over a plain socket, so the test sees every control frame (and decides whether to
answer), with no PULL code on the client side."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from tests.conftest import Services, start_api_process, stop_process


@pytest.fixture(scope="module")
def pinging_api(services: Services) -> Iterator[str]:
    proc, url = start_api_process(
        services, STREAM_PING_SECONDS="0.5", STREAM_PONG_TIMEOUT_SECONDS="1.5"
    )
    yield url
    stop_process(proc)


async def session(
    http_url: str, headers: dict[str, str], *, answer: bool, pings_wanted: int, seconds: float
) -> tuple[list[bytes], list[str], bool]:
    """Hold `/api/v1/stream` until `pings_wanted` pings came, the server closed it, or
    `seconds` passed: the pings' bodies, the text messages, and whether the server closed."""
    parts = urlsplit(http_url)
    proto = ClientProtocol(parse_uri(f"ws://{parts.hostname}:{parts.port}/api/v1/stream"))
    request = proto.connect()
    for name, value in headers.items():
        request.headers[name] = value
    proto.send_request(request)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"".join(proto.data_to_send()))
    pings: list[bytes] = []
    texts: list[str] = []
    closed = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (left := deadline - loop.time()) > 0 and len(pings) < pings_wanted:
            try:
                data = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            if not data:
                closed = True
                break
            proto.receive_data(data)
            for event in proto.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.PING:
                    pings.append(bytes(event.data))
                elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    texts.append(bytes(event.data).decode())
                elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    closed = True
            out = proto.data_to_send()  # pongs (the protocol answers pings itself)
            if answer or not texts:
                writer.write(b"".join(out))
    finally:
        writer.close()
    return pings, texts, closed


async def test_pings_say_heartbeat_and_the_unresponsive_are_closed(
    pinging_api: str, user_factory: Any
) -> None:
    user = await user_factory()
    # a client that answers: 4 pings 0.5 s apart, each within the 1.5 s pong timeout
    pings, texts, closed = await session(
        pinging_api, user.headers, answer=True, pings_wanted=4, seconds=60.0
    )
    assert texts and '"type":"hello"' in texts[0]
    assert pings == [b"heartbeat"] * 4
    assert not closed

    # a client that stops answering (after the handshake) is closed by the server
    pings, texts, closed = await session(
        pinging_api, user.headers, answer=False, pings_wanted=100, seconds=60.0
    )
    assert closed and pings and set(pings) == {b"heartbeat"}
