"""A real `pull api` keeps an idle keep-alive connection open longer than its clients reuse
one (HTTP_KEEPALIVE_SECONDS): httpx drops idle connections after 5 s and load balancers
after 60 s, so a server that closed first would race the request sent on it at that moment."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

REQUEST = b"GET /health/live HTTP/1.1\r\nHost: pull\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data  # closed by the server
        data += chunk
    return data


def test_an_idle_connection_is_still_open_after_httpx_would_have_dropped_it(
    api_server: str,
) -> None:
    url = urlparse(api_server)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(6.5)  # idle past httpx's keepalive_expiry (5 s) and uvicorn's default (5 s)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
