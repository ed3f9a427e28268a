"""The web process: `pull web` serves `served_web_app()` on WEB_PORT."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from pull.web.cache import PublicCache
from pull.web.client import Api, ApiError
from pull.web.config import WebSettings, get_web_settings
from pull.web.session import COOKIE, SessionCodec
from pull.web.web import CsrfFailed, LoginRequired, Page, login_url

REQUESTS = Counter("web_requests_total", "Pages served", ["method", "route", "status"])
LATENCY = Histogram(
    "web_request_duration_seconds",
    "Server-side time to answer a page",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
)
IN_PROGRESS = Gauge("web_requests_in_progress", "Pages being answered")
UNQUIET = ("/health", "/health/live", "/health/ready", "/metrics")


def _csp() -> str:
    """The live stream is same-origin (`/stream`), so nothing beyond 'self' is needed."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )


def create_web_app(settings: WebSettings | None = None) -> FastAPI:
    settings = settings or get_web_settings()
    codec = SessionCodec(settings.fernet_key(), settings.session_max_age_seconds)
    csp = _csp()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.api = Api(settings.api_url, settings.api_timeout_seconds)
        app.state.public_cache = PublicCache(settings.public_cache_seconds)
        try:
            yield
        finally:
            await app.state.api.close()

    app = FastAPI(
        title="PULL web", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.settings = settings

    @app.middleware("http")
    async def session_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path in UNQUIET or path.startswith("/static/"):
            return await call_next(request)
        started = time.perf_counter()
        IN_PROGRESS.inc()
        request.state.session = codec.load(request.cookies.get(COOKIE))
        try:
            response = await call_next(request)
        finally:
            IN_PROGRESS.dec()
        session = request.state.session
        if session.dirty:
            response.set_cookie(
                COOKIE,
                codec.dump(session),
                max_age=settings.session_max_age_seconds,
                httponly=True,
                secure=settings.cookie_secure,
                samesite="lax",
                path="/",
            )
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        route = getattr(request.scope.get("route"), "path", "unmatched")
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return Page(request).redirect(login_url(exc.next_url))

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        page = Page(request)
        return page.render(
            "error.html",
            status_code=403,
            title="Form expired",
            message="This form has expired (or came from another site). Reload the page and "
            "try again.",
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        page = Page(request)
        if exc.status == 401:
            page.session.sign_out()
            return page.redirect(login_url(request.url.path))
        if page.htmx:
            return page.render("_message.html", kind="error", message=exc.human, error=exc)
        return page.render(
            "error.html",
            status_code=exc.status if exc.status in (403, 404, 409) else 502,
            title="Something stopped this page",
            message=exc.human,
            error=exc,
        )

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready(request: Request) -> Response:
        """Ready when the API answers its liveness probe (pages are useless without it)."""
        try:
            await request.app.state.api.request("GET", "/health/live")
        except ApiError as exc:
            return JSONResponse({"status": "unready", "api": exc.message}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """For Prometheus scraping the pods; not through the ingress, which sets
        X-Forwarded-For on every request it passes (the web app routes every path)."""
        if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
            return PlainTextResponse("Not Found", status_code=404)
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        page = Page(request)
        if page.session.signed_in:
            return RedirectResponse("/markets", status_code=303)
        return page.render("home.html")

    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    from pull.web.pages import register

    register(app)
    return app


YOUNG_GC_THRESHOLD = 50_000  # as `pull api` (pull.app.served_app), in place of CPython's 700


def served_web_app() -> FastAPI:
    """The app `pull web` serves (uvicorn's factory, once per worker process): `create_web_app`,
    then what start-up built (modules, templates, routes) moved out of the cyclic collector's
    sight with `gc.freeze()` and the young generation's threshold raised, as the API does. A
    full collection walks every tracked object while the event loop waits: in bench/web.py
    (stop 29) one fell inside each 20 s run and held every page in flight for its length. Not in
    `create_web_app`: tests may build apps in one process."""
    app = create_web_app()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 20, 100)
    return app
