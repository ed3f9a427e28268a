"""Webhook signatures exactly as the vendors compute them.

Persona:          `Persona-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`;
                  several `v1=` values may be present while a secret is rotated.
Checkr:           `X-Checkr-Signature: <hex HMAC-SHA256(api key, body)>`.
Parallel Markets: `X-Parallel-Signature: <hex HMAC-SHA256(secret, body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from pull.kit.errors import Unauthorized

PERSONA_HEADER = "Persona-Signature"
CHECKR_HEADER = "X-Checkr-Signature"
PARALLEL_HEADER = "X-Parallel-Signature"


class InvalidSignature(Unauthorized):
    code = "INVALID_SIGNATURE"
    message = "Webhook signature is missing or invalid"


def hex_hmac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def persona_signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={hex_hmac(secret, f'{t}.'.encode() + body)}"


def verify_persona(
    secret: str, header: str | None, body: bytes, *, tolerance: int, now: float | None = None
) -> None:
    if not header:
        raise InvalidSignature()
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.replace(" ", ",").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not timestamp.isdigit() or not candidates:
        raise InvalidSignature()
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise InvalidSignature("Webhook timestamp is outside the allowed window")
    expected = hex_hmac(secret, f"{timestamp}.".encode() + body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature()


def verify_hex(secret: str, header: str | None, body: bytes) -> None:
    """Checkr and Parallel Markets: the hex digest of the body, nothing else."""
    if not header or not hmac.compare_digest(hex_hmac(secret, body), header.strip().lower()):
        raise InvalidSignature()
