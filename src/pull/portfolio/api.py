"""Portfolio routes (`/api/v1/portfolio`): the caller's holdings, history, realized lots,
statements. Thin: parse, call the service, shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from pull.brokerage import service as brokerage
from pull.identity.deps import CurrentUser
from pull.kit.db import SessionDep, utcnow
from pull.kit.ratelimit import general
from pull.portfolio import service
from pull.portfolio.schemas import HistoryRead, PortfolioRead

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
async def get_portfolio(user: CurrentUser, session: SessionDep, request: Request) -> PortfolioRead:
    return await service.portfolio(
        session=session,
        user_id=user.id,
        settings=request.app.state.settings,
        broker=_broker(request),
        now=utcnow(),
    )


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


def routers() -> list[APIRouter]:
    return [router]
