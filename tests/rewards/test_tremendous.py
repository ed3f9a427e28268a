"""The Tremendous client against a local fake speaking Tremendous' wire format."""

from __future__ import annotations

import json

import pytest

from pull import devstack
from pull.rewards.activities import set_gift_card_provider
from pull.rewards.providers.base import GiftCardDeclined, GiftCardOrder, GiftCardUnavailable
from pull.rewards.providers.tremendous import TremendousClient, dollars
from tests.conftest import UserFactory
from tests.funding.conftest import serve
from tests.rewards.conftest import RewardsEnv
from tests.rewards.fake_tremendous import API_KEY, FakeTremendous


def _order(external_id: str = "r-1", product: str = "OKMHM2X2OHYV") -> GiftCardOrder:
    return GiftCardOrder(
        external_id=external_id,
        product_id=product,
        amount_cents=2_550,
        recipient_name="Ada",
        recipient_email="ada@example.com",
    )


def test_dollars_are_written_from_cents() -> None:
    assert [dollars(c) for c in (1, 99, 100, 2_550, 123_456)] == [
        "0.01",
        "0.99",
        "1.00",
        "25.50",
        "1234.56",
    ]


async def test_orders_are_placed_once_and_errors_are_typed() -> None:
    fake = FakeTremendous()
    async with serve(fake.app(), devstack.free_port()) as url:  # type: ignore[arg-type]
        client = TremendousClient(api_key=API_KEY, base_url=f"{url}/api/v2")
        result = await client.create_order(_order())
        assert result.status == "EXECUTED" and result.order_id in fake.orders
        sent = json.loads(fake.bodies[0])
        assert sent["external_id"] == "r-1"
        assert sent["reward"]["value"] == {"denomination": 25.5, "currency_code": "USD"}
        assert b'"denomination":25.50' in fake.bodies[0]
        assert sent["reward"]["recipient"] == {"name": "Ada", "email": "ada@example.com"}
        assert sent["payment"] == {"funding_source_id": "balance"}

        # A retry with the same external id gets the first order, not a second one.
        again = await client.create_order(_order())
        assert again.order_id == result.order_id and len(fake.orders) == 1

        with pytest.raises(GiftCardDeclined, match="Invalid product"):
            await client.create_order(_order("r-2", product="NOPE"))
        fake.fail_next = 1
        with pytest.raises(GiftCardUnavailable):
            await client.create_order(_order("r-3"))
        bad = TremendousClient(api_key="wrong", base_url=f"{url}/api/v2")
        with pytest.raises(GiftCardDeclined, match="401"):
            await bad.create_order(_order("r-4"))
    down = TremendousClient(api_key=API_KEY, base_url=f"{url}/api/v2", timeout=1)
    with pytest.raises(GiftCardUnavailable):
        await down.create_order(_order("r-5"))


async def test_redemption_workflow_orders_from_tremendous(
    rw: RewardsEnv, user_factory: UserFactory
) -> None:
    fake = FakeTremendous()
    user = await user_factory()
    await rw.grant(user, 1_000)
    item = await rw.item(
        name="$10 Amazon",
        kind="gift_card",
        points_price=1_000,
        stock=1,
        provider_product_id="OKMHM2X2OHYV",
        face_value_cents=1_000,
    )
    async with serve(fake.app(), devstack.free_port()) as url:  # type: ignore[arg-type]
        set_gift_card_provider(TremendousClient(api_key=API_KEY, base_url=f"{url}/api/v2"))
        try:
            fake.fail_next = 1  # an outage first: Temporal retries the activity
            r = await rw.redeem(user, item["id"])
            assert r.status_code == 201, r.text
            async with rw.worker():
                done = await rw.wait_redemption(user, r.json()["id"], "fulfilled")
        finally:
            set_gift_card_provider(None)
    assert done["provider_ref"] in fake.orders
    assert json.loads(fake.bodies[0])["external_id"] == done["id"]
    assert (await rw.balance(user))["available"] == 0
    await rw.assert_books()
