"""Domain events -> notifications: pure functions of (topic, outbox event id, payload).

The dedupe key names the event (`<topic>:<outbox id>`), so a redelivered event makes no
second notification. Amounts are integer cents in payloads and shown as dollars here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from pull.notifications.service import Notice

Builder = Callable[[int, dict[str, Any]], list[Notice]]


def dollars(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def _uid(value: Any) -> uuid.UUID:
    return uuid.UUID(str(value))


def trade(event_id: int, p: dict[str, Any]) -> list[Notice]:
    """A fill for the taker and for each resting order it matched (summed per user)."""
    ticker = str(p["ticker"])
    side = str(p.get("side", "yes"))
    taker = _uid(p["user_id"])
    per_user: dict[uuid.UUID, list[tuple[int, int, str]]] = {}
    for f in p.get("fills", []):
        count, yes_price = int(f["count"]), int(f["yes_price"])
        per_user.setdefault(taker, []).append((count, yes_price, side))
        maker_side = "no" if side == "yes" else "yes"
        if f.get("maker_user_id"):
            per_user.setdefault(_uid(f["maker_user_id"]), []).append((count, yes_price, maker_side))
    out = []
    for user_id, fills in per_user.items():
        total = sum(c for c, _, _ in fills)
        their_side = fills[0][2]
        cost = sum(c * (y if their_side == "yes" else 100 - y) for c, y, _ in fills)
        avg = round(cost / total) if total else 0
        out.append(
            Notice(
                user_id=user_id,
                type="fill",
                title=f"Filled: {total} {their_side.upper()} on {ticker}",
                body=f"{total} {their_side.upper()} contracts of {ticker} at {avg}¢ on average.",
                dedupe_key=f"exchange.trade:{event_id}",
                data={"ticker": ticker, "count": total, "side": their_side, "avg_price": avg},
            )
        )
    return out


def settlement(event_id: int, p: dict[str, Any]) -> list[Notice]:
    ticker, result = str(p["ticker"]), str(p.get("result", ""))
    return [
        Notice(
            user_id=_uid(s["user_id"]),
            type="settlement",
            title=f"{ticker} settled {result.upper()}",
            body=f"{ticker} settled {result.upper()}: {dollars(int(s.get('revenue', 0)))} paid "
            "to your cash balance.",
            dedupe_key=f"exchange.settlement:{ticker}:{s['user_id']}",
            data={"ticker": ticker, "result": result, "revenue": int(s.get("revenue", 0))},
        )
        for s in p.get("settlements", [])
    ]


_FUNDING_TEXT = {
    "funding.deposit_settled": (
        "deposit",
        "Deposit completed",
        "Your deposit of {a} is available.",
    ),
    "funding.deposit_failed": ("deposit", "Deposit failed", "Your deposit of {a} failed."),
    "funding.deposit_returned": (
        "deposit",
        "Deposit returned",
        "Your bank returned your deposit of {a}.",
    ),
    "funding.withdrawal_completed": (
        "withdrawal",
        "Withdrawal sent",
        "Your withdrawal of {a} was sent to your bank.",
    ),
    "funding.withdrawal_failed": (
        "withdrawal",
        "Withdrawal failed",
        "Your withdrawal of {a} failed; the money is back in your balance.",
    ),
    "funding.withdrawal_rejected": (
        "withdrawal",
        "Withdrawal not approved",
        "Your withdrawal of {a} was not approved; the money is back in your balance.",
    ),
    "funding.withdrawal_returned": (
        "withdrawal",
        "Withdrawal returned",
        "Your bank returned your withdrawal of {a}; it is back in your balance.",
    ),
}


def funding(topic: str) -> Builder:
    type_, title, body = _FUNDING_TEXT[topic]

    def build(event_id: int, p: dict[str, Any]) -> list[Notice]:
        amount = dollars(int(p.get("amount", 0)))
        ref = p.get("deposit_id") or p.get("withdrawal_id")
        return [
            Notice(
                user_id=_uid(p["user_id"]),
                type=type_,
                title=title,
                body=body.format(a=amount),
                dedupe_key=f"{topic}:{ref or event_id}",
                data={"amount": int(p.get("amount", 0)), "id": str(ref) if ref else None},
            )
        ]

    return build


def kyc_tier(event_id: int, p: dict[str, Any]) -> list[Notice]:
    to = str(p.get("to", ""))
    if to == "none":
        title, body = "Verification expired", "Your identity verification is no longer valid."
    else:
        title = "Verification approved"
        body = f"Your account is now verified at the {to} tier."
    return [
        Notice(
            user_id=_uid(p["user_id"]),
            type="kyc",
            title=title,
            body=body,
            dedupe_key=f"kyc.tier_changed:{event_id}",
            data={"from": p.get("from"), "to": to},
        )
    ]


def kyc_declined(event_id: int, p: dict[str, Any]) -> list[Notice]:
    """A declined verification (automatic or after review); the reason is not repeated here
    (`GET /api/v1/kyc/status` shows what the customer may see)."""
    return [
        Notice(
            user_id=_uid(p["user_id"]),
            type="kyc",
            title="Verification not approved",
            body="We could not verify your identity. See Settings > Verification for what "
            "you can do next.",
            dedupe_key=f"kyc.declined:{p.get('application_id', event_id)}",
            data={"application_id": p.get("application_id")},
        )
    ]


def rewards_earned(event_id: int, p: dict[str, Any]) -> list[Notice]:
    points = int(p.get("points", 0))
    if points <= 0:
        return []
    return [
        Notice(
            user_id=_uid(p["user_id"]),
            type="rewards",
            title=f"You earned {points:,} points",
            body=f"{points:,} points for {str(p.get('source', 'activity')).replace('_', ' ')}.",
            dedupe_key=f"rewards.earned:{p.get('lot_id', event_id)}",
            data={"points": points, "source": p.get("source")},
        )
    ]


def points_expiring(event_id: int, p: dict[str, Any]) -> list[Notice]:
    """`emailed: true` means the rewards module has e-mailed the warning itself (with the
    lots listed): the notification keeps its other channels, not a second e-mail."""
    points = int(p.get("points", 0))
    return [
        Notice(
            user_id=_uid(p["user_id"]),
            type="rewards",
            title=f"{points:,} points expire soon",
            body=f"{points:,} of your points expire soon: redeem them in Rewards.",
            dedupe_key=f"rewards.points_expiring:{event_id}",
            data={"points": points},
            done_channels=frozenset({"email"}) if p.get("emailed") is True else frozenset(),
        )
    ]


def rwa_subscription(event_id: int, p: dict[str, Any]) -> list[Notice]:
    """The subscriber's result once their subscription is resolved at the offering's close."""
    title, shares, amount = str(p.get("title", "the offering")), int(p["shares"]), int(p["amount"])
    if p.get("outcome") == "funded":
        head = f"{title}: offering funded"
        body = f"The offering was funded: your {shares:,} shares ({dollars(amount)}) are issued."
    elif p.get("outcome") == "failed":
        head = f"{title}: offering did not fund"
        body = f"The offering did not reach its minimum: your {dollars(amount)} hold is released."
    else:
        head = f"{title}: offering canceled"
        body = f"The offering was canceled: your {dollars(amount)} hold is released."
    return [
        Notice(
            user_id=_uid(p["user_id"]),
            type="rwa_offering",
            title=head,
            body=body,
            dedupe_key=f"rwa.subscription_settled:{p['subscription_id']}",
            data={
                "offering_id": p.get("offering_id"),
                "asset_id": p.get("asset_id"),
                "outcome": p.get("outcome"),
                "shares": shares,
                "amount": amount,
            },
        )
    ]


def buyout_vote(p: dict[str, Any], holders: list[tuple[uuid.UUID, int]]) -> list[Notice]:
    """`rwa.buyout_opened` for its asset's holders (resolved by the consumer: the ledger)."""
    title, price = str(p.get("title", "your asset")), int(p["price_cents"])
    return [
        Notice(
            user_id=user_id,
            type="rwa_vote",
            title=f"Vote: a buyout offer for {title}",
            body=f"{p.get('buyer') or 'A buyer'} offers {dollars(price)} for the whole of {title}; "
            f"you hold {shares:,} shares. Vote before {p.get('closes_at', '')[:16]} UTC.",
            dedupe_key=f"rwa.buyout_opened:{p['buyout_id']}",
            data={"buyout_id": p["buyout_id"], "asset_id": p.get("asset_id"), "shares": shares},
        )
        for user_id, shares in holders
    ]


def offering_notice(topic: str, p: dict[str, Any], users: list[uuid.UUID]) -> list[Notice]:
    """`rwa.offering_opened` / `rwa.offering_closing_soon` for the recipients the consumer
    chose; one per customer and offering whatever is redelivered (the dedupe key)."""
    title, price = str(p.get("title", "an asset")), int(p["price_cents"])
    total, left = int(p["total_shares"]), int(p["shares_remaining"])
    closes = str(p.get("closes_at", ""))[:16].replace("T", " ")
    if topic == "rwa.offering_opened":
        head = f"New offering: {title}"
        body = (
            f"{total:,} shares of {title} at {dollars(price)} each are open for subscription "
            f"until {closes} UTC."
        )
    else:
        head = f"Closing soon: {title}"
        body = (
            f"The offering of {title} closes at {closes} UTC; {left:,} of {total:,} shares "
            f"are left at {dollars(price)} each."
        )
    return [
        Notice(
            user_id=user_id,
            type="rwa_listing",
            title=head,
            body=body,
            dedupe_key=f"{topic}:{p['offering_id']}",
            data={
                "offering_id": p["offering_id"],
                "asset_id": p.get("asset_id"),
                "kind": topic.removeprefix("rwa.offering_"),
                "closes_at": p.get("closes_at"),
            },
        )
        for user_id in users
    ]


BUILDERS: dict[str, Builder] = {
    "exchange.trade": trade,
    "exchange.settlement": settlement,
    **{topic: funding(topic) for topic in _FUNDING_TEXT},
    "kyc.tier_changed": kyc_tier,
    "kyc.declined": kyc_declined,
    "rewards.earned": rewards_earned,
    "rewards.points_expiring": points_expiring,
    "rwa.subscription_settled": rwa_subscription,
}
# Topics whose recipients the consumer looks up (events.consume).
RESOLVED_TOPICS = ("rwa.buyout_opened", "rwa.offering_opened", "rwa.offering_closing_soon")
