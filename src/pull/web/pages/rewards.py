"""Rewards: points balance, tier progress, streak, catalog and redeem, leaderboard, referrals."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(include_in_schema=False)


@router.get("/rewards")
async def rewards(request: Request, period: str = "monthly") -> Response:
    page = Page(request)
    page.require_login()
    balance, catalog, history, redemptions, board, referrals = await page.gather(
        page.call("GET", "/api/v1/rewards/balance"),
        page.call("GET", "/api/v1/rewards/catalog"),
        page.call("GET", "/api/v1/rewards/history", params={"limit": 10}),
        page.call("GET", "/api/v1/rewards/redemptions", params={"limit": 5}),
        page.optional(
            page.call("GET", "/api/v1/rewards/leaderboard", params={"period": period, "limit": 10})
        ),
        page.call("GET", "/api/v1/rewards/referrals"),
    )
    progress = None
    if balance.get("points_to_next_tier"):
        have = balance["qualifying_points"]
        progress = round(100 * have / (have + balance["points_to_next_tier"]))
    return page.render(
        "rewards.html",
        balance=balance,
        catalog=catalog["items"],
        history=history["items"],
        redemptions=redemptions["items"],
        board=board,
        period=period,
        referrals=referrals,
        progress=progress,
        title="Rewards",
        share_url=f"{request.base_url}signup?ref={referrals['code']}",
    )


@router.post("/rewards/streak")
async def streak(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    await page.form()
    try:
        s = await page.call("POST", "/api/v1/rewards/daily-streak")
        earned = f" (+{s['points']} points)" if s.get("points") else ""
        page.session.say(f"Checked in: a {s['streak']}-day streak{earned}.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/rewards")


@router.post("/rewards/redeem")
async def redeem(request: Request) -> Response:
    page = Page(request)
    page.require_login()
    form = await page.form()
    body = {"reward_id": form.get("reward_id", ""), "quantity": 1}
    try:
        r = await page.call("POST", "/api/v1/rewards/redeem", json=body, idempotent=True)
        page.session.say(f"Redeemed {r['points']:,} points; status {r['status']}.")
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect("/rewards")
