"""The pages, one module per part of the product; `register` mounts them all."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from pull.web.pages import (
        account,
        admin,
        auth,
        funding,
        live,
        mail,
        markets,
        messages,
        notifications,
        portfolio,
        rewards,
        rwa,
        settings,
        stocks,
    )

    for module in (
        auth,
        account,
        funding,
        markets,
        portfolio,
        rewards,
        rwa,
        stocks,
        mail,
        messages,
        notifications,
        settings,
        admin,
        live,
    ):
        app.include_router(module.router)
