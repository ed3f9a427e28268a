"""The pages, one module per part of the product; `register` mounts them all."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from pull.web.pages import (
        account,
        admin,
        auth,
        funding,
        markets,
        rewards,
        rwa,
        settings,
        stocks,
    )

    for module in (auth, account, funding, markets, rewards, rwa, stocks, settings, admin):
        app.include_router(module.router)
