"""The trading sequence through Kalshi's current official SDKs (kalshi_python_sync and
kalshi_python_async 3.34, Python >= 3.13), unchanged. Run by tests/exchange/test_kalshi_sdk_v3.py
in a side virtualenv, since the SDKs need a newer Python than PULL's; reads its setup as JSON on
stdin and prints what it saw as JSON. Any response the SDK cannot parse raises."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def sync_sequence(cfg: dict[str, Any]) -> dict[str, Any]:
    import kalshi_python_sync as k

    def client(user: dict[str, str] | None) -> Any:
        conf = k.Configuration(host=cfg["url"] + "/trade-api/v2")
        if user is not None:
            conf.api_key_id = user["key_id"]
            conf.private_key_pem = user["pem"]
        return k.KalshiClient(conf)

    anon, alice, bob = client(None), client(cfg["alice"]), client(cfg["bob"])
    t = cfg["ticker"]
    out: dict[str, Any] = {"version": k.__version__}
    if cfg["phase"] == "settle":
        s = alice.get_settlements(ticker=t)
        out["settlements"] = [x.to_dict() for x in s.settlements]
        out["balance"] = alice.get_balance().balance
        return out
    out["markets"] = [m.ticker for m in anon.get_markets(series_ticker=cfg["series"]).markets]
    out["market_status"] = anon.get_market(t).market.status
    out["book_before"] = anon.get_market_orderbook(t).orderbook_fp.to_dict()
    placed = alice.create_order_v2(
        ticker=t,
        side="bid",
        count="10",
        price="0.4000",
        time_in_force="good_till_canceled",
        self_trade_prevention_type="taker_at_cross",
        client_order_id=cfg["coid"],
    )
    out["placed"] = placed.to_dict()
    out["order"] = alice.get_order(placed.order_id).order.to_dict()
    out["orders"] = [o.order_id for o in alice.get_orders(ticker=t).orders]
    out["book_resting"] = anon.get_market_orderbook(t).orderbook_fp.to_dict()
    crossed = bob.create_order_v2(
        ticker=t,
        side="ask",
        count="4",
        price="0.4000",
        time_in_force="immediate_or_cancel",
        self_trade_prevention_type="taker_at_cross",
    )
    out["crossed"] = crossed.to_dict()
    out["fills"] = [f.to_dict() for f in alice.get_fills(ticker=t).fills]
    pos = alice.get_positions(ticker=t)
    out["positions"] = [p.to_dict() for p in pos.market_positions]
    out["canceled"] = alice.cancel_order_v2(placed.order_id).to_dict()
    out["after_cancel"] = alice.get_order(placed.order_id).order.status
    out["balance"] = alice.get_balance().to_dict()
    out["trades"] = len(anon.get_trades(ticker=t).trades)
    return out


async def async_sequence(cfg: dict[str, Any]) -> dict[str, Any]:
    import kalshi_python_async as k

    def client(user: dict[str, str] | None) -> Any:
        conf = k.Configuration(host=cfg["url"] + "/trade-api/v2")
        if user is not None:
            conf.api_key_id = user["key_id"]
            conf.private_key_pem = user["pem"]
        return k.KalshiClient(conf)

    anon, alice, bob = client(None), client(cfg["alice"]), client(cfg["bob"])
    t = cfg["ticker"]
    out: dict[str, Any] = {"version": k.__version__}
    try:
        if cfg["phase"] == "settle":
            s = await alice.get_settlements(ticker=t)
            out["settlements"] = [x.to_dict() for x in s.settlements]
            out["balance"] = (await alice.get_balance()).balance
            return out
        markets = await anon.get_markets(series_ticker=cfg["series"])
        out["markets"] = [m.ticker for m in markets.markets]
        out["market_status"] = (await anon.get_market(t)).market.status
        out["book_before"] = (await anon.get_market_orderbook(t)).orderbook_fp.to_dict()
        placed = await alice.create_order_v2(
            ticker=t,
            side="bid",
            count="10",
            price="0.4000",
            time_in_force="good_till_canceled",
            self_trade_prevention_type="taker_at_cross",
            client_order_id=cfg["coid"],
        )
        out["placed"] = placed.to_dict()
        out["order"] = (await alice.get_order(placed.order_id)).order.to_dict()
        out["orders"] = [o.order_id for o in (await alice.get_orders(ticker=t)).orders]
        out["book_resting"] = (await anon.get_market_orderbook(t)).orderbook_fp.to_dict()
        crossed = await bob.create_order_v2(
            ticker=t,
            side="ask",
            count="4",
            price="0.4000",
            time_in_force="immediate_or_cancel",
            self_trade_prevention_type="taker_at_cross",
        )
        out["crossed"] = crossed.to_dict()
        out["fills"] = [f.to_dict() for f in (await alice.get_fills(ticker=t)).fills]
        pos = await alice.get_positions(ticker=t)
        out["positions"] = [p.to_dict() for p in pos.market_positions]
        out["canceled"] = (await alice.cancel_order_v2(placed.order_id)).to_dict()
        out["after_cancel"] = (await alice.get_order(placed.order_id)).order.status
        out["balance"] = (await alice.get_balance()).to_dict()
        out["trades"] = len((await anon.get_trades(ticker=t)).trades)
        return out
    finally:
        for c in (anon, alice, bob):
            await c.close()


def main() -> None:
    cfg = json.load(sys.stdin)
    if cfg["sdk"] == "sync":
        out = sync_sequence(cfg)
    else:
        out = asyncio.run(async_sequence(cfg))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
