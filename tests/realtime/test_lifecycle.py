"""Market lifecycle and mass cancels on the live feeds, against real `pull api` processes with
plain `websockets` clients: creating an event and a market, closing, resolving and voiding a
market push `event_lifecycle` / `market_lifecycle_v2` (Kalshi) and `market_status` (app) right
after the commit (no worker runs here, so nothing comes through the outbox relay), and every
resting order the market change canceled reaches its owner as a `user_order` (Kalshi) /
`order` (app) update."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import websockets

from tests.exchange.conftest import MarketFactory
from tests.realtime.conftest import command, connect, kalshi_user, recv
from tests.realtime.test_kalshi_ws import place
from tests.realtime.test_stream import url_of


async def collect(ws: Any, done: Any, timeout: float = 20) -> list[dict[str, Any]]:
    """Messages until `done(messages)` holds."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(got):
        got.append(await recv(ws, max(deadline - loop.time(), 0.01)))
    return got


def of(msgs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m.get("type") == kind]


async def test_close_resolve_void_push_lifecycle_and_canceled_orders(
    two_apis: list[str],
    client: httpx.AsyncClient,
    trader: Any,
    user_factory: Any,
    market_factory: MarketFactory,
) -> None:
    closing, voided = await market_factory(), await market_factory()
    alice = await kalshi_user(client, trader)
    admin = await user_factory(admin=True)
    async with httpx.AsyncClient(base_url=two_apis[1], timeout=30) as http:
        resting = {
            (await place(http, alice, closing, "yes", 40, 3))["order_id"],
            (await place(http, alice, closing, "no", 30, 2))["order_id"],
        }
        void_order = (await place(http, alice, voided, "yes", 20, 1))["order_id"]

        ws = await connect(two_apis[0], alice)
        app = await websockets.connect(
            url_of(two_apis[0], f"?markets={closing}"), additional_headers=alice.user.headers
        )
        try:
            await command(ws, 1, "subscribe", {"channels": ["market_lifecycle_v2", "user_orders"]})
            assert {(await recv(ws))["msg"]["channel"] for _ in range(2)} == {
                "market_lifecycle_v2",
                "user_orders",
            }
            await collect(app, lambda m: of(m, "book"))

            # a new event and market: event_lifecycle, then the market's `created`
            tag = uuid.uuid4().hex[:8].upper()
            series, event, market = f"KXLIFE{tag}", f"KXLIFE{tag}-E", f"KXLIFE{tag}-E-M"
            for path, body in (
                ("series", {"ticker": series, "title": "Lifecycle"}),
                ("events", {"ticker": event, "series_ticker": series, "title": "An event"}),
                (
                    "markets",
                    {
                        "ticker": market,
                        "event_ticker": event,
                        "title": "A market",
                        "open_time": "2030-01-01T00:00:00Z",
                        "close_time": "2030-02-01T00:00:00Z",
                    },
                ),
            ):
                r = await http.post(f"/api/admin/{path}", json=body, headers=admin.headers)
                assert r.status_code == 201, r.text
            got = await collect(
                ws, lambda m: of(m, "event_lifecycle") and of(m, "market_lifecycle_v2")
            )
            assert of(got, "event_lifecycle")[0]["msg"] == {
                "event_ticker": event,
                "title": "An event",
                "subtitle": "",
                "collateral_return_type": "",
                "series_ticker": series,
            }
            assert of(got, "market_lifecycle_v2")[0]["msg"] == {
                "market_ticker": market,
                "event_type": "created",
            }

            r = await http.post(f"/api/admin/markets/{closing}/close", headers=admin.headers)
            assert r.status_code == 200, r.text
            got = await collect(
                ws, lambda m: of(m, "market_lifecycle_v2") and len(of(m, "user_order")) == 2
            )
            assert of(got, "market_lifecycle_v2")[0]["msg"] == {
                "market_ticker": closing,
                "event_type": "deactivated",
                "is_deactivated": True,
            }
            canceled = {o["msg"]["order_id"]: o["msg"] for o in of(got, "user_order")}
            assert set(canceled) == resting
            assert {o["status"] for o in canceled.values()} == {"canceled"}
            assert {o["remaining_count_fp"] for o in canceled.values()} == {"0.00"}
            mine = await collect(app, lambda m: of(m, "market_status") and len(of(m, "order")) == 2)
            assert {o["data"]["order_id"] for o in of(mine, "order")} == resting
            assert {o["data"]["status"] for o in of(mine, "order")} == {"canceled"}
            assert of(mine, "market_status")[0]["data"] == {"status": "closed", "result": None}

            r = await http.post(
                f"/api/admin/markets/{closing}/resolve",
                json={"result": "yes"},
                headers=admin.headers,
            )
            assert r.status_code == 200, r.text
            got = await collect(ws, lambda m: of(m, "market_lifecycle_v2"))
            determined = of(got, "market_lifecycle_v2")[0]["msg"]
            assert (determined["market_ticker"], determined["event_type"]) == (
                closing,
                "determined",
            )
            assert determined["result"] == "yes"

            # void an open market directly: its resting order is canceled and announced
            r = await http.post(
                f"/api/admin/markets/{voided}/resolve",
                json={"result": "void"},
                headers=admin.headers,
            )
            assert r.status_code == 200, r.text
            got = await collect(ws, lambda m: of(m, "market_lifecycle_v2") and of(m, "user_order"))
            assert [o["msg"]["order_id"] for o in of(got, "user_order")] == [void_order]
            assert of(got, "user_order")[0]["msg"]["status"] == "canceled"
            life = of(got, "market_lifecycle_v2")[0]["msg"]
            assert (life["market_ticker"], life["event_type"], life["result"]) == (
                voided,
                "determined",
                "void",
            )
        finally:
            await ws.close()
            await app.close()
