"""The WebSocket wire under the live feeds: uvicorn's sans-I/O `websockets` protocol with two
changes, selected by `pull api` (`uvicorn.run(ws=PROTOCOL)`).

- Keep-alive pings carry the body `heartbeat`, as Kalshi's do (every STREAM_PING_SECONDS; a
  client that does not answer within STREAM_PONG_TIMEOUT_SECONDS is closed with 1011).
- The ASGI scope of an accepted socket carries the extension `pull.raw_send`: a `RawSocket`
  that writes ready-made WebSocket frames straight to the transport. The hub encodes a
  message once per tick and writes the same bytes to every subscriber that gets them, with no
  ASGI message, no task switch and no copy per subscriber (see pull.realtime.connection).

Under another server (or uvicorn's other protocols) the extension is absent and connections
send text through ASGI as before.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

PROTOCOL = "pull.realtime.wire:HeartbeatWebSocketProtocol"
EXTENSION = "pull.raw_send"
HEARTBEAT = b"heartbeat"


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented server-to-client text frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class RawSocket:
    """Direct writes to one accepted socket's transport (ready-made frames only)."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: HeartbeatWebSocketProtocol) -> None:
        self._protocol = protocol

    @property
    def writable(self) -> asyncio.Event:
        """Set while the transport's write buffer is below its high-water mark."""
        return self._protocol.writable

    def open(self) -> bool:
        p = self._protocol
        return not (p.close_sent or p.disconnected or p.transport.is_closing())

    def write(self, frames: bytes) -> bool:
        """Write whole frames; False once the socket is closing (nothing written)."""
        p = self._protocol
        if p.close_sent or p.disconnected or p.transport.is_closing():
            return False
        p.transport.write(frames)
        return True


class HeartbeatWebSocketProtocol(WebSocketsSansIOProtocol):
    def send_keepalive_ping(self) -> None:
        self.ping_timer = None
        if self.close_sent or self.transport.is_closing():
            return
        # Kalshi's body; a pong echoes it, which is how handle_pong matches it to this ping
        # (one ping is in flight at a time).
        self.pending_ping_payload = HEARTBEAT
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(HEARTBEAT)
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.ping_timeout is not None:
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
        else:
            self.schedule_ping()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and not self.close_sent:
            scope["extensions"][EXTENSION] = RawSocket(self)
