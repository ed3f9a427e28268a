"""`POST /redeem` takes a limited stock's units in a transaction of their own (a hold row), so
the item's row lock is never held across the redemption's round trips; a redemption that does
not commit gives its units back, and a hold left by a crash is given back once it is stale."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pull.kit import db as kit_db
from pull.rewards import api, redemption, repository_stock
from tests.conftest import UserFactory
from tests.rewards.conftest import RewardsEnv


async def _stock(rw: RewardsEnv, item_id: str) -> tuple[int, int, int]:
    """(stock, hold rows, redemptions) of the item, as committed."""
    async with rw.maker() as s:
        row = (
            await s.execute(
                text(
                    "SELECT c.stock, (SELECT count(*) FROM rewards_stock_holds h "
                    "WHERE h.item_id = c.id), (SELECT count(*) FROM rewards_redemptions r "
                    "WHERE r.item_id = c.id) FROM rewards_catalog c WHERE c.id = :i"
                ),
                {"i": uuid.UUID(item_id)},
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def _row_lock_free(rw: RewardsEnv, item_id: str) -> bool:
    """Whether another buyer's stock UPDATE could lock the item's row now (FOR NO KEY UPDATE;
    the redemption's foreign key holds KEY SHARE, which does not conflict with it)."""
    async with rw.maker() as s, s.begin():
        await s.execute(text("SET LOCAL lock_timeout = '200ms'"))
        try:
            await s.execute(
                text("SELECT 1 FROM rewards_catalog WHERE id = :i FOR NO KEY UPDATE"),
                {"i": uuid.UUID(item_id)},
            )
        except DBAPIError:
            return False
    return True


async def test_the_item_row_is_not_locked_while_a_redemption_commits(
    rw: RewardsEnv, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await user_factory()
    await rw.grant(user, 100)
    item = await rw.item(name="mug", kind="sweepstakes", points_price=10, stock=3)
    seen: list[tuple[bool, tuple[int, int, int]]] = []
    real = kit_db.commit

    async def observed(session: Any) -> None:
        # the redemption is written, its units taken, its transaction not yet committed
        seen.append((await _row_lock_free(rw, item["id"]), await _stock(rw, item["id"])))
        await real(session)

    monkeypatch.setattr(api, "commit", observed)
    r = await rw.redeem(user, item["id"])
    assert r.status_code == 201, r.text
    (free, during), *_ = seen
    assert free  # before: the reserving UPDATE's lock was held until this commit
    assert during == (2, 1, 0)  # the units are held (committed), the redemption not yet
    assert await _stock(rw, item["id"]) == (2, 0, 1)  # the hold spent with the commit
    await rw.assert_books()


async def test_a_redemption_that_does_not_commit_gives_its_units_back(
    rw: RewardsEnv, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await user_factory()
    await rw.grant(user, 100)
    item = await rw.item(name="cap", kind="sweepstakes", points_price=10, stock=1)

    async def failing(session: Any) -> None:
        raise RuntimeError("the commit failed")

    monkeypatch.setattr(api, "commit", failing)
    with pytest.raises(RuntimeError):
        await rw.redeem(user, item["id"])
    monkeypatch.undo()
    assert await _stock(rw, item["id"]) == (1, 0, 0)  # given back, nothing written
    assert (await rw.balance(user))["available"] == 100
    other = await user_factory()
    await rw.grant(other, 10)
    r = await rw.redeem(other, item["id"])  # the unit is for sale again at once
    assert r.status_code == 201, r.text
    assert await _stock(rw, item["id"]) == (0, 0, 1)
    await rw.assert_books()


async def test_a_hold_left_by_a_crash_is_given_back_once_stale(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await rw.grant(user, 100)
    item = await rw.item(name="pen", kind="sweepstakes", points_price=10, stock=2)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    async with rw.maker() as s, s.begin():  # two crashed redemptions' holds: one stale
        await s.execute(
            text(
                "WITH c AS (UPDATE rewards_catalog SET stock = 0 WHERE id = :i RETURNING id) "
                "INSERT INTO rewards_stock_holds (id, item_id, quantity, created_at) "
                "SELECT gen_random_uuid(), c.id, 1, t FROM c, "
                "unnest(CAST(:ts AS timestamptz[])) AS t"
            ),
            {"i": uuid.UUID(item["id"]), "ts": [old, dt.datetime.now(dt.UTC)]},
        )
    r = await rw.redeem(user, item["id"])
    assert r.status_code == 201, r.text  # the stale hold's unit, given back and sold
    assert await _stock(rw, item["id"]) == (0, 1, 1)  # the fresh one is not swept
    r = await rw.redeem(user, item["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "OUT_OF_STOCK"
    await rw.assert_books()


async def test_a_hold_given_back_before_its_redemption_commits_is_not_sold(
    rw: RewardsEnv, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep and the redemption race for the hold row: whoever deletes it has the unit."""
    user = await user_factory()
    await rw.grant(user, 100)
    item = await rw.item(name="cup", kind="sweepstakes", points_price=10, stock=1)
    real = repository_stock.settle_hold

    async def swept_first(session: Any, hold_id: uuid.UUID) -> bool:
        async with rw.maker() as s, s.begin():  # a sweep gives the (committed) hold back first
            await redemption.give_back(session=s, hold_ids=[hold_id])
        return await real(session, hold_id)

    monkeypatch.setattr(repository_stock, "settle_hold", swept_first)
    r = await rw.redeem(user, item["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "OUT_OF_STOCK", r.text
    assert await _stock(rw, item["id"]) == (1, 0, 0)
    assert (await rw.balance(user))["available"] == 100
    await rw.assert_books()
