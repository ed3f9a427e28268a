"""Per-request plumbing the pages share: the session, the API caller, rendering, redirects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from pull.web import fmt
from pull.web.cache import PublicCache
from pull.web.client import Api, ApiError
from pull.web.config import WebSettings
from pull.web.session import Session

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters.update(fmt.FILTERS)
TEMPLATES.env.globals.update(fmt.GLOBALS)


class LoginRequired(Exception):
    """Raised by a page that needs a signed-in user; answered with a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class CsrfFailed(Exception):
    """A form arrived without this session's CSRF token."""


class Page:
    """What a page handler works with: `await page.call(...)`, `page.render(...)`."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.session: Session = request.state.session
        self.api: Api = request.app.state.api
        self.settings: WebSettings = request.app.state.settings
        self._refreshing = asyncio.Lock()

    @property
    def client_ip(self) -> str:
        peer = self.request.client.host if self.request.client else "127.0.0.1"
        if self.settings.trust_proxy:
            forwarded = self.request.headers.get("x-forwarded-for", "").split(",")[0].strip()
            return forwarded or peer
        return peer

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    def require_login(self) -> None:
        if not self.session.signed_in:
            raise LoginRequired(self.request.url.path)

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        """Call the API as this user; an expired access token is refreshed once, even when
        several calls of one page (`gather`) see the 401 together: a refresh token is single-use,
        so only the first of them refreshes and the others retry with the new access token."""
        used = self.session.access
        try:
            return await self._call(method, path, **kw)
        except ApiError as exc:
            if exc.status != 401 or not self.session.refresh:
                raise
            async with self._refreshing:
                if self.session.access == used and not await self._refresh():
                    self.session.sign_out()
                    raise LoginRequired(self.request.url.path) from exc
            if not self.session.signed_in:
                raise LoginRequired(self.request.url.path) from exc
            return await self._call(method, path, **kw)

    async def public(self, path: str, **kw: Any) -> Any:
        """A GET of market data that is the same for every user (web.cache): from the few
        seconds' memory when another page just asked, else `call` (this user's token)."""
        params = kw.get("params") or {}
        key = path + "?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
        cache: PublicCache = self.request.app.state.public_cache
        return await cache.get(key, lambda: self.call("GET", path, **kw))

    async def gather(self, *calls: Awaitable[Any]) -> list[Any]:
        """Run a page's independent API calls at once: a page's time is its slowest call, not
        the sum of them (pages make four to six)."""
        return list(await asyncio.gather(*calls))

    @staticmethod
    async def optional(call: Awaitable[Any]) -> Any:
        """A call whose failure leaves only its part of the page empty (None)."""
        try:
            return await call
        except ApiError:
            return None

    async def anon(self, method: str, path: str, **kw: Any) -> Any:
        """Call the API without the user's token (sign-up, login, public pages)."""
        return await self.api.request(
            method,
            path,
            client_ip=self.client_ip,
            user_agent=self.request.headers.get("user-agent"),
            **kw,
        )

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        return await self.api.request(
            method,
            path,
            token=self.session.access,
            client_ip=self.client_ip,
            user_agent=self.request.headers.get("user-agent"),
            **kw,
        )

    async def refresh_once(self) -> bool:
        """Refresh the access token (for callers outside `call`, such as the stream relay)."""
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        try:
            pair = await self.anon(
                "POST", "/api/auth/refresh", json={"refresh_token": self.session.refresh}
            )
        except ApiError:
            return False
        self.session.access = pair["access_token"]
        self.session.refresh = pair["refresh_token"]
        self.session.dirty = True
        return True

    async def form(self) -> dict[str, str]:
        """The posted form, after its CSRF token has been checked."""
        data = await self.request.form()
        token = self.request.headers.get("x-csrf-token") or data.get("csrf_token")
        if not self.session.csrf_ok(str(token) if token else None):
            raise CsrfFailed()
        return {k: str(v) for k, v in data.items() if k != "csrf_token"}

    def render(self, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.update(
            session=self.session,
            csrf=self.session.csrf,
            user=self.session.user,
            flashes=self.session.take_flash() if not self.htmx else [],
            path=self.request.url.path,
        )
        return TEMPLATES.TemplateResponse(self.request, template, ctx, status_code=status_code)

    def redirect(self, url: str) -> Response:
        if self.htmx:
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(next_url, safe="/")


def safe_next(url: str | None) -> str:
    """Only local paths: a `next` parameter is never an open redirect."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/markets"
