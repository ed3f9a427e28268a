"""The order state machine: Alpaca's statuses and the transitions PULL accepts.

Statuses only move forward: a terminal status never changes, `pending_new` is never re-entered,
a filled quantity never shrinks (fills are applied by cumulative quantity, see orders.py), so
duplicated, late and out-of-order reports are harmless: a stale one is simply not allowed.
"""

from __future__ import annotations

TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
OPEN = frozenset(
    {
        "pending_new",
        "accepted",
        "new",
        "partially_filled",
        "pending_cancel",
        "pending_replace",
        "done_for_day",
        "accepted_for_bidding",
        "held",
        "stopped",
        "suspended",
        "calculated",
    }
)
STATUSES = TERMINAL | OPEN
_ROUTED = frozenset({"new", "partially_filled", "pending_cancel", "pending_replace"})

# to-status -> the statuses it may follow (terminal statuses may follow any open one)
_FROM: dict[str, frozenset[str]] = {
    "accepted": frozenset({"pending_new"}),
    "accepted_for_bidding": frozenset({"pending_new", "accepted"}),
    "held": frozenset({"pending_new", "accepted", "new"}),
    "new": frozenset(
        {
            "pending_new",
            "accepted",
            "accepted_for_bidding",
            "held",
            "pending_cancel",
            "pending_replace",
            "done_for_day",
            "suspended",
        }
    ),
    "partially_filled": OPEN - {"partially_filled"},
    "pending_cancel": frozenset(
        {
            "pending_new",
            "accepted",
            "new",
            "partially_filled",
            "held",
            "done_for_day",
            "pending_replace",
        }
    ),
    "pending_replace": frozenset(
        {"pending_new", "accepted", "new", "partially_filled", "held", "done_for_day"}
    ),
    "done_for_day": frozenset({"new", "partially_filled"}),
    "stopped": frozenset({"new", "partially_filled"}),
    "calculated": frozenset({"new", "partially_filled", "stopped"}),
    "suspended": frozenset({"pending_new", "accepted", "new", "partially_filled"}),
}


def allowed(current: str, target: str) -> bool:
    """May an order in `current` move to `target`?"""
    if current == target or current in TERMINAL or target not in STATUSES:
        return False
    if target in TERMINAL:
        return True
    return current in _FROM.get(target, frozenset())


def after_fill(current: str, *, fully: bool) -> str:
    """The status a fill implies (a fill while pending_cancel/replace keeps that status)."""
    if fully:
        return "filled"
    if current in ("pending_cancel", "pending_replace") or current in TERMINAL:
        return current
    return "partially_filled"


def next_status(current: str, reported: str, *, partially_filled: bool) -> str:
    """The status after the broker reports `reported`: itself when allowed, else `current`.

    A report of `new` for an order that already has fills means `partially_filled`."""
    if reported == "new" and partially_filled:
        reported = "partially_filled"
    return reported if allowed(current, reported) else current


def is_routed(status: str) -> bool:
    return status in _ROUTED
