"""Portfolio routes (`/api/v1/portfolio`): the caller's holdings, history, realized lots,
statements. Thin: parse, call the service, shape."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pull.brokerage import service as brokerage
from pull.identity.deps import AuthUser, CurrentUser
from pull.kit.db import SessionDep, utcnow
from pull.kit.errors import BadRequest
from pull.kit.pagination import (
    clamp_limit,
    created_before,
    created_next,
    decode_cursor,
    encode_cursor,
)
from pull.kit.ratelimit import general
from pull.portfolio import chart, realized, service
from pull.portfolio.schemas import HistoryRead, PortfolioRead, RealizedPage, StatementPage

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    429: {"description": "Rate limited"},
}
router = APIRouter(prefix="/api/v1/portfolio", tags=["portfolio"], responses=_ERRORS)
relaxed = [Depends(general)]


def _broker(request: Request) -> brokerage.Broker:
    return brokerage.make_broker(request.app.state.settings, request.app.state.sessionmaker)


@router.get(
    "",
    response_model=PortfolioRead,
    dependencies=relaxed,
    summary="Everything the caller owns: cash, contracts, RWA shares, stocks, crypto, points",
)
async def get_portfolio(user: CurrentUser, session: SessionDep, request: Request) -> Response:
    data = await service.view(
        session=session,
        user_id=user.id,
        settings=request.app.state.settings,
        broker=_broker(request),
        now=utcnow(),
    )
    # plain data straight to JSON (the same bytes PortfolioRead would write; tested)
    return Response(service.to_json(data), media_type="application/json")


@router.get(
    "/history",
    response_model=HistoryRead,
    dependencies=relaxed,
    summary="Equity over a period in Alpaca's portfolio-history shape (time-weighted %)",
)
async def get_history(
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    period: Annotated[str, Query(max_length=8, description="1D, 1W, 1M, 3M, 1Y or ALL")] = "1M",
    timeframe: Annotated[
        str | None, Query(max_length=8, description="5Min, 1H or 1D (default per period)")
    ] = None,
) -> HistoryRead:
    return await service.history(
        session=session,
        user_id=user.id,
        period=period,
        timeframe=timeframe,
        settings=request.app.state.settings,
        broker=_broker(request),
        now=utcnow(),
    )


def _year(year: int | None) -> int:
    return utcnow().year if year is None else year


@router.get(
    "/realized",
    response_model=RealizedPage,
    dependencies=relaxed,
    summary="Lots closed in a year (FIFO): acquired, sold, proceeds, cost, gain, holding period",
)
async def get_realized(
    user: CurrentUser,
    session: SessionDep,
    year: Annotated[int | None, Query(ge=-(10**6), le=10**6, description="UTC year")] = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=200)] = None,
) -> RealizedPage:
    y = _year(year)
    lots = await realized.closed_in_year(session=session, user_id=user.id, year=y, now=utcnow())
    start = (decode_cursor(cursor) or {}).get("offset", 0)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise BadRequest("Invalid cursor", code="INVALID_CURSOR")
    n = clamp_limit(limit)
    page = lots[start : start + n]
    more = start + n < len(lots)
    return RealizedPage(
        year=y,
        items=page,
        cursor=encode_cursor({"offset": start + n}) if more else None,
        short_term_gain=sum(lot.gain for lot in lots if lot.holding_period == "short"),
        long_term_gain=sum(lot.gain for lot in lots if lot.holding_period == "long"),
    )


@router.get(
    "/realized/form-8949.csv",
    dependencies=relaxed,
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Form 8949 rows"}},
    summary="The year's closed lots as IRS Form 8949 rows (CSV)",
)
async def get_form_8949(
    user: CurrentUser,
    session: SessionDep,
    year: Annotated[int | None, Query(ge=-(10**6), le=10**6, description="UTC year")] = None,
) -> Response:
    y = _year(year)
    lots = await realized.closed_in_year(session=session, user_id=user.id, year=y, now=utcnow())
    return Response(
        realized.form_8949_csv(lots),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="form-8949-{y}.csv"'},
    )


async def _chart_data(
    user: AuthUser, session: SessionDep, request: Request, period: str, timeframe: str | None
) -> chart.ChartData:
    _, s = await service.history_series(
        session=session,
        user_id=user.id,
        period=period,
        timeframe=timeframe,
        settings=request.app.state.settings,
        broker=_broker(request),
        now=utcnow(),
    )
    return chart.ChartData(
        s.timestamp, s.equity, f"Equity, {period}", (s.profit_loss_pct or [0.0])[-1] >= 0
    )


Period = Annotated[str, Query(max_length=8, description="1D, 1W, 1M, 3M, 1Y or ALL")]
Timeframe = Annotated[str | None, Query(max_length=8, description="5Min, 1H or 1D")]


@router.get(
    "/chart.svg",
    dependencies=relaxed,
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "Equity chart"}},
    summary="The caller's equity over a period as an SVG chart (drawn server-side)",
)
async def chart_svg(
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    period: Period = "1M",
    timeframe: Timeframe = None,
) -> Response:
    data = await _chart_data(user, session, request, period, timeframe)
    return Response(chart.equity_svg(data), media_type="image/svg+xml")


@router.get(
    "/chart.png",
    dependencies=relaxed,
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "Equity chart"}},
    summary="The caller's equity over a period as a PNG chart (drawn server-side)",
)
async def chart_png(
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    period: Period = "1M",
    timeframe: Timeframe = None,
) -> Response:
    data = await _chart_data(user, session, request, period, timeframe)
    return Response(chart.equity_png(data), media_type="image/png")


@router.get(
    "/statements",
    response_model=StatementPage,
    dependencies=relaxed,
    summary="The caller's monthly statements, newest first",
)
async def list_statements(
    user: CurrentUser,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=200)] = None,
) -> StatementPage:
    n = clamp_limit(limit)
    rows = await service.statements(
        session=session, user_id=user.id, before=created_before(cursor), limit=n + 1
    )
    return StatementPage(items=rows[:n], cursor=created_next(rows, n))


async def _statement(
    session: SessionDep, user: AuthUser, statement_id: uuid.UUID
) -> tuple[bytes, bytes, str]:
    return await service.statement_files(
        session=session, user_id=user.id, statement_id=statement_id
    )


@router.get(
    "/statements/{statement_id}.pdf",
    dependencies=relaxed,
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Not yours"}},
    summary="Download a statement's PDF (the caller's own only)",
)
async def statement_pdf(
    user: CurrentUser, session: SessionDep, statement_id: uuid.UUID
) -> Response:
    pdf, _, month = await _statement(session, user, statement_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="statement-{month}.pdf"'},
    )


@router.get(
    "/statements/{statement_id}.csv",
    dependencies=relaxed,
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "Not yours"}},
    summary="Download a statement's transactions as CSV (the caller's own only)",
)
async def statement_csv(
    user: CurrentUser, session: SessionDep, statement_id: uuid.UUID
) -> Response:
    _, data, month = await _statement(session, user, statement_id)
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="statement-{month}.csv"'},
    )


def routers() -> list[APIRouter]:
    return [router]
