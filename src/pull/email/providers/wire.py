"""Nylas v3 webhook wire format: the signature, the challenge, the CloudEvents envelope.

`X-Nylas-Signature` is the hex HMAC-SHA256 of the raw request body keyed with the webhook
secret (developer.nylas.com/docs/v3/notifications/webhooks); it is checked on the bytes
received, before anything is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from pull.kit.errors import Unauthorized

SIGNATURE_HEADER = "X-Nylas-Signature"
TRUNCATE_BYTES = 1_000_000  # Nylas drops the body of a message larger than 1 MB


class InvalidSignature(Unauthorized):
    code = "INVALID_SIGNATURE"
    message = "Webhook signature is missing or invalid"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, header: str | None, body: bytes) -> None:
    if not header or not hmac.compare_digest(sign(secret, body), header.strip().lower()):
        raise InvalidSignature()


def envelope(
    trigger: str, obj: dict[str, Any], *, application_id: str, event_id: str | None = None
) -> dict[str, Any]:
    """A notification as Nylas sends it; `message.created` becomes `.truncated` (and loses
    its body) when the message is over 1 MB."""
    body = obj.get("body")
    if trigger == "message.created" and isinstance(body, str) and len(body) > TRUNCATE_BYTES:
        trigger = "message.created.truncated"
        obj = {k: v for k, v in obj.items() if k != "body"}
    return {
        "specversion": "1.0",
        "type": trigger,
        "source": "/google/emails/realtime",
        "id": event_id or secrets.token_hex(12),
        "time": int(time.time()),
        "webhook_delivery_attempt": 1,
        "data": {"application_id": application_id, "object": obj},
    }
