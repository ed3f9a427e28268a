"""A lean WebSocket client for bench/stream.py: many sockets in one process at little CPU.

The `websockets` library spends tens of microseconds of Python per message; with 1,000
subscribers receiving ~60 messages/s each, the clients would compete with the server for the
machine's 2 cores and inflate the latency being measured. This client is an asyncio Protocol
that does the RFC 6455 handshake, splits the server's (unmasked) frames, answers pings with
masked pongs (the server closes sockets that do not) and hands each text message to a
callback. It is bench-only: the tests use the `websockets` library, no PULL code.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable

OnText = Callable[[bytes], None]


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = (
        bytes((0x80 | opcode, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x80 | opcode, 254, n)
    )
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


class Client(asyncio.Protocol):
    def __init__(self, host: str, path: str, headers: dict[str, str], on_text: OnText) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        self.on_text = on_text
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode("latin-1")))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            self.opened.set_result(None)
        at = 0
        size = len(buf)
        while size - at >= 2:
            b0, b1 = buf[at], buf[at + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - at < 4:
                    break
                n = (buf[at + 2] << 8) | buf[at + 3]
                head = 4
            elif n == 127:
                if size - at < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, at + 2)
                head = 10
            if size - at < head + n:
                break
            payload = bytes(buf[at + head : at + head + n])
            at += head + n
            opcode = b0 & 0x0F
            if opcode == 0x1:
                self.on_text(payload)
            elif opcode == 0x9 and self.transport is not None:  # ping: answer with its body
                self.transport.write(_masked(0xA, payload))
            elif opcode == 0x8 and self.transport is not None:
                self.transport.close()
        if at:
            del buf[:at]

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_masked(0x8, struct.pack("!H", 1000)))
            self.transport.close()


async def connect(url: str, headers: dict[str, str], on_text: OnText) -> Client:
    """Open `url` (ws://host:port/path?query); returns once the server accepted the upgrade."""
    assert url.startswith("ws://")
    hostport, _, rest = url[5:].partition("/")
    host, _, port = hostport.partition(":")
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: Client(hostport, "/" + rest, headers, on_text), host, int(port or 80)
    )
    await proto.opened
    return proto
