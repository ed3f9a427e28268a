"""Notification types, channels and the defaults a customer starts with.

Quiet hours hold back the channels that buzz a phone (push and the Matrix alerts room) until
they end; in-app and email are never held (they do not interrupt).
"""

from __future__ import annotations

from typing import Final, Literal

NotificationType = Literal[
    "fill",
    "settlement",
    "deposit",
    "withdrawal",
    "kyc",
    "rewards",
    "rwa_offering",
    "rwa_vote",
    "price_alert",
]
Channel = Literal["in_app", "email", "push", "matrix"]

TYPES: Final[tuple[NotificationType, ...]] = (
    "fill",
    "settlement",
    "deposit",
    "withdrawal",
    "kyc",
    "rewards",
    "rwa_offering",
    "rwa_vote",
    "price_alert",
)
CHANNELS: Final[tuple[Channel, ...]] = ("in_app", "email", "push", "matrix")
# Delivered by the per-notification workflow (in-app is the stored row itself).
OUTBOUND: Final[tuple[Channel, ...]] = ("email", "push", "matrix")
INTERRUPTING: Final[frozenset[str]] = frozenset({"push", "matrix"})

# (type, channel) -> on by default. In-app is always on by default; email for money and KYC;
# push for what a trader acts on; the Matrix alerts room is opt-in.
_EMAIL_DEFAULT = {"settlement", "deposit", "withdrawal", "kyc", "rwa_vote"}
_PUSH_DEFAULT = {"fill", "settlement", "price_alert", "rwa_vote", "deposit", "withdrawal"}


def default_enabled(type_: str, channel: str) -> bool:
    if channel == "in_app":
        return True
    if channel == "email":
        return type_ in _EMAIL_DEFAULT
    if channel == "push":
        return type_ in _PUSH_DEFAULT
    return False
