"""Group commit of subscriptions over HTTP (the hot drop): concurrent subscriptions to one
offering are counted together, never oversubscribed, each answered once (201 or a typed 409),
replays give the stored answer, the books stay intact. The property over batches of any size
is in test_properties (`batched`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from sqlalchemy import text

from tests.rwa.conftest import RwaEnvFactory


async def test_hot_drop_is_group_committed_and_never_oversubscribed(
    rwa_env: RwaEnvFactory,
) -> None:
    env = await rwa_env()
    users = [await env.investor(cash=1_000) for _ in range(60)]
    broke = await env.investor(cash=0)
    unverified = await env.investor(cash=1_000, tier="none")
    asset = await env.create_asset()
    offering = await env.create_offering(
        asset["id"],
        total_shares=40,
        price_cents=100,
        max_per_investor_bps=10_000,
        min_raise_cents=1,
        closes_at=(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat(),
    )
    oid = offering["id"]
    await env.open_offering(oid)
    # Refused by a batch (below the tier: not admitted; no cash: its hold fails the batch),
    # answered on the one-subscription path.
    kyc = await env.subscribe(unverified, oid, 1)
    assert kyc.status_code == 403 and kyc.json()["error"]["code"] == "KYC_REQUIRED"
    poor = await asyncio.gather(env.subscribe(broke, oid, 1), env.subscribe(users[0], oid, 1))
    assert poor[0].status_code == 409, poor[0].text
    assert poor[0].json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert poor[1].status_code == 201, poor[1].text
    sent: list[tuple[Any, str]] = [(u, uuid.uuid4().hex) for u in users[1:]]
    first = await asyncio.gather(*(env.subscribe(u, oid, 1, key=k) for u, k in sent))
    codes = [r.status_code for r in first]
    assert codes.count(201) == 39, [r.text for r in first if r.status_code != 201][:3]
    refused = [r.json()["error"] for r in first if r.status_code != 201]
    assert {e["code"] for e in refused} == {"OFFERING_SOLD_OUT"}
    assert all(e["details"] == {"remaining": 0} for e in refused)
    again = await asyncio.gather(*(env.subscribe(u, oid, 1, key=k) for u, k in sent))
    for a, b in zip(first, again, strict=True):
        if a.status_code == 201:
            assert b.status_code == 201 and b.json() == a.json()
            assert b.headers.get("Idempotent-Replayed") == "true"
        else:
            assert b.status_code == 409
    state = await env.get(f"/api/v1/rwa/offerings/{oid}", users[0])
    assert state["shares_subscribed"] == 40
    async with env.maker() as s:
        subs = (
            await s.execute(
                text(
                    "SELECT count(*), count(DISTINCT created_at), count(DISTINCT user_id) "
                    "FROM rwa_subscriptions WHERE offering_id = :o"
                ),
                {"o": uuid.UUID(oid)},
            )
        ).one()
    assert subs[0] == subs[2] == 40
    # Counted in batches: a batch's subscriptions share its time (one per transaction
    # would give 40 distinct times).
    assert subs[1] < 40
    for u in users:
        balance = await env.balance(u)
        assert balance["held"] in (0, 100)
    await env.assert_books()
