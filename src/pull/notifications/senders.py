"""The channel senders for a process's settings (real providers when configured)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pull.config import Settings
from pull.identity.mailer import sender_for
from pull.notifications.delivery import MatrixAlerts, Senders
from pull.notifications.push import (
    ApnsPushSender,
    FcmPushSender,
    PushSender,
    SandboxPushSender,
)


def _service_account(raw: str) -> dict[str, Any]:
    text = raw.strip()
    if not text.startswith("{"):
        text = Path(text).read_text()
    value: dict[str, Any] = json.loads(text)
    return value


def push_senders(settings: Settings) -> dict[str, PushSender]:
    """FCM when FCM_SERVICE_ACCOUNT is set, APNs when APNS_KEY is set; else their sandboxes
    (development and test). Deployed without them, push is not sent (no sandbox rows)."""
    out: dict[str, PushSender] = {}
    if settings.fcm_service_account:
        out["fcm"] = FcmPushSender(
            service_account=_service_account(settings.fcm_service_account),
            base_url=settings.fcm_base_url,
        )
    elif not settings.is_deployed:
        out["fcm"] = SandboxPushSender("fcm")
    if settings.apns_key:
        key = settings.apns_key
        if not key.lstrip().startswith("-----BEGIN"):
            key = Path(key).read_text()
        out["apns"] = ApnsPushSender(
            key_pem=key,
            key_id=settings.apns_key_id,
            team_id=settings.apns_team_id,
            topic=settings.apns_topic,
            base_url=settings.apns_base_url,
        )
    elif not settings.is_deployed:
        out["apns"] = SandboxPushSender("apns")
    return out


def make_senders(settings: Settings, matrix: MatrixAlerts | None = None) -> Senders:
    return Senders(
        email=sender_for(settings),
        push=push_senders(settings),
        matrix=matrix,
        app_url=settings.app_url,
    )
