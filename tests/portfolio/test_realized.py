"""Realized lots and the Form 8949 CSV over HTTP against a real `pull api` process."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from tests.portfolio.conftest import call, create_market, fund, order


async def test_realized_lots_pages_and_form_8949(
    api_server: str, user_factory: Any, kyc_tier: Any, sessionmaker: Any
) -> None:
    ticker = await create_market(sessionmaker, taker_fee_bps=0)
    a, b = await user_factory(), await user_factory()
    for u in (a, b):
        await kyc_tier(u.id, "standard")
        await fund(sessionmaker, u.id, 100_000)
    # two lots for a: 5 YES at 30, then 5 at 50; selling 7 at 60 closes all of the first
    # lot and 2 of the second (FIFO)
    await order(api_server, b, ticker=ticker, side="no", action="buy", count=5, no_price=70)
    await order(api_server, a, ticker=ticker, side="yes", action="buy", count=5, yes_price=30)
    await order(api_server, b, ticker=ticker, side="no", action="buy", count=5, no_price=50)
    await order(api_server, a, ticker=ticker, side="yes", action="buy", count=5, yes_price=50)
    await order(api_server, b, ticker=ticker, side="yes", action="buy", count=7, yes_price=60)
    await order(api_server, a, ticker=ticker, side="yes", action="sell", count=7, yes_price=60)

    year = dt.datetime.now(dt.UTC).year
    r = await call(api_server, a, "GET", "/api/v1/portfolio/realized", params={"limit": 1})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["year"] == year and len(first["items"]) == 1 and first["cursor"]
    lot = first["items"][0]
    assert (lot["quantity"], lot["proceeds"], lot["cost"], lot["gain"]) == ("5", 300, 150, 150)
    assert lot["holding_period"] == "short" and lot["symbol"] == f"{ticker}:YES"
    nxt = await call(
        api_server,
        a,
        "GET",
        "/api/v1/portfolio/realized",
        params={"limit": 1, "cursor": first["cursor"], "year": year},
    )
    second = nxt.json()
    assert second["cursor"] is None
    assert [(i["quantity"], i["proceeds"], i["cost"]) for i in second["items"]] == [("2", 120, 100)]
    assert second["short_term_gain"] == 150 + 20 and second["long_term_gain"] == 0

    view = (await call(api_server, a, "GET", "/api/v1/portfolio")).json()
    yes = next(h for h in view["holdings"] if h["symbol"] == f"{ticker}:YES")
    assert yes["quantity"] == "3" and yes["cost_basis"] == 150 and yes["realized_pnl"] == 170

    f = await call(api_server, a, "GET", "/api/v1/portfolio/realized/form-8949.csv")
    assert f.status_code == 200 and f.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(f.text)))
    assert rows[0][2] == "(a) Description of property" and len(rows) == 3
    today = dt.datetime.now(dt.UTC).strftime("%m/%d/%Y")
    assert rows[1][:2] == ["I", "C"] and rows[1][3] == today
    assert rows[1][5:] == ["3.00", "1.50", "", "", "1.50"]
    assert rows[2][5:] == ["1.20", "1.00", "", "", "0.20"]

    empty = await call(api_server, a, "GET", "/api/v1/portfolio/realized", params={"year": 2001})
    assert empty.json()["items"] == []


async def test_realized_bad_input_is_4xx(api_server: str, user_factory: Any) -> None:
    user = await user_factory()
    for params, code in (
        ({"year": 1999}, "INVALID_YEAR"),
        ({"year": "abc"}, "VALIDATION_ERROR"),
        ({"year": 10**12}, "VALIDATION_ERROR"),
        ({"cursor": "not-a-cursor"}, "INVALID_CURSOR"),
        ({"cursor": "eyJvZmZzZXQiOiJ4In0"}, "INVALID_CURSOR"),  # {"offset":"x"}
        ({"limit": 0}, "VALIDATION_ERROR"),
    ):
        r = await call(api_server, user, "GET", "/api/v1/portfolio/realized", params=params)
        assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code, (params, r.text)
