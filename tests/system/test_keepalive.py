"""A real `pull api` keeps an idle keep-alive connection open longer than its clients reuse
one (HTTP_KEEPALIVE_SECONDS): httpx drops idle connections after 5 s and load balancers
after 60 s, so a server that closed first would race the request sent on it at that moment."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

REQUEST = b"GET /health/live HTTP/1.1\r\nHost: pull\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    """One whole response (head and its Content-Length body), so the next call starts at the
    next response: the body may arrive in a segment of its own, after the head."""
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data  # closed by the server
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    assert len(body) == length, "the server closed the connection inside a response"
    return head


def test_an_idle_connection_is_still_open_after_httpx_would_have_dropped_it(
    api_server: str,
) -> None:
    url = urlparse(api_server)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(6.5)  # idle past httpx's keepalive_expiry (5 s) and uvicorn's default (5 s)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
