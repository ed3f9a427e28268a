"""The process's Matrix homeserver client (one per event loop) and PULL's Matrix ids."""

from __future__ import annotations

import asyncio
import uuid

from pull.config import Settings
from pull.messaging.errors import MessagingUnavailable
from pull.messaging.matrix import Homeserver, MatrixError

BOT = "pull"
_servers: dict[tuple[str, int], Homeserver] = {}


def homeserver(settings: Settings) -> Homeserver:
    """The process's client of MATRIX_HOMESERVER_URL (one per event loop)."""
    if not settings.matrix_homeserver_url:
        raise MessagingUnavailable("Messaging is not configured (MATRIX_HOMESERVER_URL)")
    key = (settings.matrix_homeserver_url, id(asyncio.get_running_loop()))
    hs = _servers.get(key)
    if hs is None:
        hs = Homeserver(
            url=settings.matrix_homeserver_url,
            shared_secret=settings.matrix_registration_shared_secret,
        )
        _servers[key] = hs
    return hs


async def close_homeservers() -> None:
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _servers if k[1] == loop]:
        await _servers.pop(key).aclose()


def unavailable(exc: MatrixError) -> MessagingUnavailable:
    return MessagingUnavailable(details={"homeserver": exc.status or "unreachable"})


def localpart(user_id: uuid.UUID) -> str:
    return f"u{user_id.hex}"


def pull_user_of(matrix_user_id: str) -> uuid.UUID | None:
    """The PULL customer behind a Matrix id PULL provisioned (`@u<hex>:server`)."""
    local = matrix_user_id[1:].split(":", 1)[0] if matrix_user_id.startswith("@") else ""
    if len(local) == 33 and local.startswith("u"):
        try:
            return uuid.UUID(hex=local[1:])
        except ValueError:
            return None
    return None
