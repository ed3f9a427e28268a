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
    "rwa_listing",
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
    "rwa_listing",
    "price_alert",
)
CHANNELS: Final[tuple[Channel, ...]] = ("in_app", "email", "push", "matrix")
# Delivered by the per-notification workflow (in-app is the stored row itself).
OUTBOUND: Final[tuple[Channel, ...]] = ("email", "push", "matrix")
INTERRUPTING: Final[frozenset[str]] = frozenset({"push", "matrix"})

# (type, channel) -> on by default. In-app is always on by default (but for the opt-in types);
# email for money and KYC; push for what a trader acts on; the Matrix alerts room is opt-in.
_EMAIL_DEFAULT = {"settlement", "deposit", "withdrawal", "kyc", "rwa_vote"}
_PUSH_DEFAULT = {"fill", "settlement", "price_alert", "rwa_vote", "deposit", "withdrawal"}
# Opt-in types: off on every channel until the customer turns one on; turning any channel on
# is what puts them on the type's recipient list (an RWA offering opening or closing soon).
OPT_IN: Final[frozenset[str]] = frozenset({"rwa_listing"})


def default_enabled(type_: str, channel: str) -> bool:
    if type_ in OPT_IN:
        return False
    if channel == "in_app":
        return True
    if channel == "email":
        return type_ in _EMAIL_DEFAULT
    if channel == "push":
        return type_ in _PUSH_DEFAULT
    return False
