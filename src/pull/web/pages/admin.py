"""Operator pages (admin role with 2FA, enforced by the API): KYC reviews, withdrawal
approvals, market lifecycle and resolution, RWA offerings, analytics dashboards."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pull.web.client import ApiError
from pull.web.web import Page

router = APIRouter(prefix="/admin", include_in_schema=False)


def _operator(page: Page) -> None:
    page.require_login()
    if not page.session.is_admin:
        raise ApiError(403, "FORBIDDEN", "Operators only")


async def _act(page: Page, path: str, ok: str, back: str, body: Any = None) -> Response:
    try:
        await page.call("POST", path, json=body)
        page.session.say(ok)
    except ApiError as exc:
        page.session.say(exc.human, "error")
    return page.redirect(back)


def _range(days: int) -> dict[str, str]:
    end = date.today()
    return {"start": (end - timedelta(days=days - 1)).isoformat(), "end": end.isoformat()}


@router.get("")
async def dashboard(request: Request, days: int = 30) -> Response:
    """Analytics for operators: totals, daily actives, the funnel, revenue, top markets."""
    page = Page(request)
    _operator(page)
    span = _range(max(1, min(days, 365)))
    panels: dict[str, Any] = {}
    problems = []
    for name, path in (
        ("overview", "/api/admin/analytics/overview"),
        ("funnel", "/api/admin/analytics/funnel"),
        ("revenue", "/api/admin/analytics/revenue"),
        ("markets", "/api/admin/analytics/markets"),
        ("retention", "/api/admin/analytics/retention"),
    ):
        try:
            panels[name] = await page.call("GET", path, params=span)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            problems.append(f"{name}: {exc.human}")
    dau = [d["dau"] for d in panels.get("overview", {}).get("days", [])]
    return page.render(
        "admin/dashboard.html",
        days=days,
        span=span,
        dau_max=max(dau or [1]) or 1,
        problems=problems,
        title="Operators",
        **panels,
    )


@router.get("/kyc")
async def kyc_reviews(request: Request) -> Response:
    page = Page(request)
    _operator(page)
    reviews = (await page.call("GET", "/api/admin/kyc/reviews", params={"limit": 50}))["items"]
    return page.render("admin/kyc.html", reviews=reviews, title="KYC reviews")


@router.post("/kyc/{user_id}/approve")
async def kyc_approve(request: Request, user_id: str) -> Response:
    page = Page(request)
    _operator(page)
    form = await page.form()
    body = {"tier": form.get("tier", "standard"), "note": form.get("note", "").strip()}
    return await _act(page, f"/api/admin/kyc/{user_id}/approve", "Approved.", "/admin/kyc", body)


@router.post("/kyc/{user_id}/reject")
async def kyc_reject(request: Request, user_id: str) -> Response:
    page = Page(request)
    _operator(page)
    form = await page.form()
    body = {"reason": form.get("reason", "").strip()}
    return await _act(page, f"/api/admin/kyc/{user_id}/reject", "Rejected.", "/admin/kyc", body)


@router.get("/withdrawals")
async def withdrawals(request: Request) -> Response:
    page = Page(request)
    _operator(page)
    items = (await page.call("GET", "/api/admin/withdrawals"))["items"]
    return page.render("admin/withdrawals.html", withdrawals=items, title="Withdrawal approvals")


@router.post("/withdrawals/{withdrawal_id}/approve")
async def withdrawal_approve(request: Request, withdrawal_id: str) -> Response:
    page = Page(request)
    _operator(page)
    await page.form()
    return await _act(
        page, f"/api/admin/withdrawals/{withdrawal_id}/approve", "Approved.", "/admin/withdrawals"
    )


@router.post("/withdrawals/{withdrawal_id}/reject")
async def withdrawal_reject(request: Request, withdrawal_id: str) -> Response:
    page = Page(request)
    _operator(page)
    form = await page.form()
    return await _act(
        page,
        f"/api/admin/withdrawals/{withdrawal_id}/reject",
        "Rejected; the money is back in the customer's balance.",
        "/admin/withdrawals",
        {"reason": form.get("reason", "").strip()},
    )


@router.get("/markets")
async def markets(request: Request, status: str = "open", q: str = "") -> Response:
    page = Page(request)
    _operator(page)
    found = await page.call(
        "GET",
        "/api/v1/markets",
        params={"status": status if status != "all" else None, "q": q.strip(), "limit": 50},
    )
    return page.render(
        "admin/markets.html", markets=found["items"], status=status, q=q, title="Markets"
    )


@router.post("/markets/{ticker}/{action}")
async def market_action(request: Request, ticker: str, action: str) -> Response:
    page = Page(request)
    _operator(page)
    form = await page.form()
    if action not in ("open", "pause", "close", "resolve"):
        raise ApiError(404, "NOT_FOUND", "No such action")
    body = {"result": form.get("result", "")} if action == "resolve" else None
    done = {"open": "opened", "pause": "paused", "close": "closed", "resolve": "resolved"}[action]
    return await _act(
        page,
        f"/api/admin/markets/{ticker}/{action}",
        f"{ticker} {done}.",
        f"/admin/markets?status={form.get('back_status', 'open')}",
        body,
    )


@router.post("/markets")
async def create_market(request: Request) -> Response:
    page = Page(request)
    _operator(page)
    form = await page.form()
    now = datetime.now(UTC)
    try:
        hours = max(1, int(form.get("hours") or 24))
    except ValueError:
        hours = 24
    body = {
        "ticker": form.get("ticker", "").strip().upper(),
        "event_ticker": form.get("event_ticker", "").strip().upper(),
        "title": form.get("title", "").strip(),
        "rules_primary": form.get("rules_primary", "").strip(),
        "category": form.get("category", "").strip(),
        "open_time": now.isoformat(),
        "close_time": (now + timedelta(hours=hours)).isoformat(),
    }
    return await _act(
        page,
        "/api/admin/markets",
        f"Market {body['ticker']} created.",
        "/admin/markets?status=all",
        body,
    )


@router.get("/rwa")
async def rwa(request: Request) -> Response:
    page = Page(request)
    _operator(page)
    assets = (await page.call("GET", "/api/v1/rwa/assets", params={"limit": 50}))["items"]
    details = await page.gather(
        *(page.call("GET", f"/api/v1/rwa/assets/{a['id']}") for a in assets[:20])
    )
    return page.render("admin/rwa.html", assets=details, title="RWA offerings")


@router.post("/rwa/{asset_id}/offerings")
async def create_offering(request: Request, asset_id: str) -> Response:
    page = Page(request)
    _operator(page)
    form = await page.form()
    now = datetime.now(UTC)
    try:
        body = {
            "total_shares": int(form.get("total_shares") or 0),
            "price_cents": int(form.get("price_cents") or 0),
            "min_raise_cents": int(form.get("min_raise_cents") or 0),
            "opens_at": now.isoformat(),
            "closes_at": (now + timedelta(days=int(form.get("days") or 7))).isoformat(),
        }
    except ValueError:
        page.session.say("Shares, price, minimum raise and days are whole numbers.", "error")
        return page.redirect("/admin/rwa")
    return await _act(
        page, f"/api/admin/rwa/assets/{asset_id}/offerings", "Offering drafted.", "/admin/rwa", body
    )


@router.post("/rwa/offerings/{offering_id}/{action}")
async def offering_action(request: Request, offering_id: str, action: str) -> Response:
    page = Page(request)
    _operator(page)
    form = await page.form()
    if action not in ("open", "cancel"):
        raise ApiError(404, "NOT_FOUND", "No such action")
    body = {"reason": form.get("reason", "").strip()} if action == "cancel" else None
    return await _act(
        page,
        f"/api/admin/rwa/offerings/{offering_id}/{action}",
        "Offering opened." if action == "open" else "Offering canceled; subscribers refunded.",
        "/admin/rwa",
        body,
    )
