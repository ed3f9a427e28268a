"""`pull` command line: the processes of the runbook plus operator tools."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from pull.config import Settings, get_settings, startup_refusal

app = typer.Typer(add_completion=False, no_args_is_help=True, help="PULL backend processes")


def _settings_or_exit() -> Settings:
    """Load settings; deployed environments must name every required one explicitly and may
    not run on a development default secret (one FATAL line names them all)."""
    settings = get_settings()
    refusal = startup_refusal(settings, dict(os.environ))
    if refusal is not None:
        typer.echo(refusal, err=True)
        raise typer.Exit(1)
    return settings


def _observability(settings: Settings, service: str) -> None:
    """JSON logs for this process (the API's app factory sets up Sentry in each worker)."""
    from pull.kit.logging import configure_logging

    configure_logging(settings.log_level, service)


@app.command()
def api(
    workers: int = typer.Option(0, help="Worker processes (default API_WORKERS)"),
) -> None:
    """Serve the HTTP API (uvicorn) on PORT."""
    import uvicorn

    from pull.kit.logging import logging_config
    from pull.realtime.wire import PROTOCOL as WS_PROTOCOL

    settings = _settings_or_exit()
    _observability(settings, settings.otel_service_name)
    count = workers or settings.api_workers
    if count > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pull-metrics-")
    uvicorn.run(
        "pull.app:served_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=count,
        log_config=logging_config(settings.log_level, settings.otel_service_name),
        access_log=False,
        proxy_headers=settings.trust_proxy,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        timeout_keep_alive=settings.http_keepalive_seconds,
        server_header=False,
        # live feeds: small JSON messages, so no compression (~4x less memory per socket);
        # pings (body `heartbeat`, as Kalshi's) every STREAM_PING_SECONDS close clients that
        # stop answering; frames written straight to the socket (pull.realtime.wire)
        ws=WS_PROTOCOL,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.stream_ping_seconds,
        ws_ping_timeout=settings.stream_pong_timeout_seconds,
        ws_max_size=settings.stream_max_message_bytes,
    )


@app.command()
def web(
    workers: int = typer.Option(0, help="Worker processes (default WEB_WORKERS)"),
) -> None:
    """Serve the web app (uvicorn) on WEB_PORT; it calls the API at WEB_API_URL."""
    import uvicorn

    from pull.web.config import get_web_settings
    from pull.web.config import startup_refusal as web_refusal

    settings = get_web_settings()
    refusal = web_refusal(settings)
    if refusal is not None:
        typer.echo(refusal, err=True)
        raise typer.Exit(1)
    uvicorn.run(
        "pull.web.app:served_web_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers or settings.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=settings.trust_proxy,
        server_header=False,
    )


@app.command()
def worker() -> None:
    """Run the Temporal worker on task queue pull-main-queue."""
    from pull import __version__
    from pull.kit.logging import configure_sentry
    from pull.worker import run_worker

    settings = _settings_or_exit()
    _observability(settings, settings.otel_service_name)
    configure_sentry(settings.sentry_dsn, settings.environment.value, __version__)
    asyncio.run(run_worker(settings))


@app.command()
def migrate(
    revision: str = typer.Argument("heads", help="Target revision"),
    downgrade: bool = typer.Option(False, help="Downgrade to REVISION instead"),
) -> None:
    """Apply database migrations (Alembic)."""
    from pull import migrate as m

    settings = _settings_or_exit()
    if downgrade:
        m.downgrade(settings.database_url, revision)
    else:
        m.upgrade(settings.database_url, revision)
        from pull.analytics.service import migrate_clickhouse

        applied = migrate_clickhouse(settings)
        typer.echo(f"clickhouse migrations applied: {applied or 'none needed'}")
    typer.echo("migrations applied")


@app.command()
def schedules() -> None:
    """Create the Temporal schedules that are missing (existing ones are kept)."""
    from temporalio.client import Client

    from pull.worker import ensure_schedules

    settings = _settings_or_exit()

    async def go() -> None:
        client = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
        )
        await ensure_schedules(client, settings, strict=True)

    asyncio.run(go())
    typer.echo("schedules ensured: brokerage-reconcile, rewards-maintenance, portfolio-*")


@app.command()
def smoke(
    base_url: str = typer.Option(..., "--base-url", help="API base URL"),
    internal_key: str | None = typer.Option(None, "--internal-key"),
    register: bool = typer.Option(
        True, "--register/--no-register", help="Create a throwaway user to test register and login"
    ),
    metrics_url: str | None = typer.Option(
        None, "--metrics-url", help="Where /metrics is served (not through the public ingress)"
    ),
    web_url: str | None = typer.Option(
        None,
        "--web-url",
        help="Also run the web app's browser smoke set (tests/web -m smoke) against this URL",
    ),
) -> None:
    """Post-deployment verification from the runbook; exits non-zero naming failed checks."""
    from pull.ops.smoke import run

    code = run(base_url.rstrip("/"), internal_key, register, metrics_url=metrics_url)
    if web_url:
        code = max(code, _web_smoke(web_url.rstrip("/"), base_url.rstrip("/")))
    raise typer.Exit(code)


def _web_smoke(web_url: str, api_url: str) -> int:
    """Playwright for Python with Debian's Chromium, from a checkout of this repository."""
    tests = Path(__file__).resolve().parents[2] / "tests" / "web"
    if not tests.is_dir():
        typer.echo(f"[FAIL] web-smoke: {tests} not found; run from a checkout", err=True)
        return 1
    env = {**os.environ, "PULL_WEB_URL": web_url, "PULL_WEB_API_URL": api_url}
    args = [
        sys.executable,
        "-m",
        "pytest",
        str(tests),
        "-m",
        "smoke",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    done = subprocess.run(args, env=env, cwd=tests.parents[1], check=False)
    typer.echo("[PASS] web-smoke" if done.returncode == 0 else "[FAIL] web-smoke: see above")
    return 0 if done.returncode == 0 else 1


class _Lock:
    """An exclusive lock on the data directory, so two `pull dev` never share one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"


@app.command()
def dev(
    seed: bool = typer.Option(True, "--seed/--no-seed", help="Load demo data"),
) -> None:
    """Run everything on embedded PostgreSQL, Redis, Temporal and Synapse (PULL_DATA_DIR)."""
    from pull import devstack
    from pull import migrate as m

    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    lock = _Lock(data_dir / "dev.lock")
    if not lock.acquire():
        typer.echo(
            f"pull dev is already running on {data_dir} (pid {lock.holder()}); "
            "stop it or set PULL_DATA_DIR to another directory",
            err=True,
        )
        raise typer.Exit(1)

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    typer.echo(f"Starting embedded services in {data_dir} ...")
    stack = devstack.start_stack(
        data_dir,
        pg_port=settings.dev_postgres_port,
        redis_port=settings.dev_redis_port,
        temporal_port=settings.dev_temporal_port,
        temporal_ui_port=settings.dev_temporal_ui_port,
        matrix_port=settings.dev_matrix_port,
    )
    children: list[devstack.Service] = []
    code = 0
    try:
        env = {
            **os.environ,
            "DATABASE_URL": stack.database_url,
            "REDIS_URL": stack.redis_url,
            "TEMPORAL_ADDRESS": stack.temporal_address,
            "MATRIX_HOMESERVER_URL": stack.matrix_url,
            "MATRIX_REGISTRATION_SHARED_SECRET": stack.matrix_shared_secret,
        }
        m.upgrade(stack.database_url)
        # ClickHouse: the API opens chDB under PULL_DATA_DIR/chdb and applies the same
        # versioned migrations there (chDB is one process's; starting it twice costs seconds)
        if seed:
            _seed(env)
        web_env = {"WEB_API_URL": f"http://127.0.0.1:{settings.port}", **env}
        for name in ("api", "worker", "web"):
            proc = subprocess.Popen(
                [sys.executable, "-m", "pull.cli", name],
                env=web_env if name == "web" else env,
                preexec_fn=devstack._die_with_parent(signal.SIGTERM),
            )
            children.append(devstack.Service(name, proc))
        api_url = f"http://127.0.0.1:{settings.port}"
        _wait_http(f"{api_url}/health/ready", 60, lambda: stopping)
        web_url = f"http://127.0.0.1:{os.environ.get('WEB_PORT', '3000')}"
        _wait_http(f"{web_url}/health", 30, lambda: stopping)
        typer.echo(
            "\nPULL is running:\n"
            f"  Web app       {web_url}\n"
            f"  API           {api_url}\n"
            f"  API docs      {api_url}/docs\n"
            f"  Metrics       {api_url}/metrics  (worker: http://127.0.0.1:{settings.metrics_port}/metrics)\n"
            f"  Temporal UI   http://127.0.0.1:{settings.dev_temporal_ui_port}\n"
            f"  PostgreSQL    {stack.database_url.replace('+asyncpg', '')}\n"
            f"  Redis         {stack.redis_url}\n"
            f"  Matrix        {stack.matrix_url}  (Synapse; a token: POST /api/v1/messages/token)\n"
            "Press Ctrl-C to stop.\n"
        )
        while not stopping:
            dead = [c for c in children if c.proc.poll() is not None]
            if dead:
                typer.echo(f"{dead[0].name} exited with code {dead[0].proc.returncode}", err=True)
                code = 1
                break
            time.sleep(0.2)
    finally:
        typer.echo("Stopping ...")
        for child in reversed(children):
            child.stop()
        stack.stop()
        typer.echo("Stopped.")
    raise typer.Exit(code)


def _wait_http(url: str, timeout: float, cancelled: object) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cancelled) and cancelled():
            return
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    typer.echo(f"warning: {url} not ready after {timeout:.0f}s", err=True)


def _seed(env: dict[str, str]) -> None:
    """Demo data for a newcomer; each module's seeder is idempotent."""
    from pull.seed import seed_all

    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "TEMPORAL_ADDRESS")})
    get_settings.cache_clear()
    asyncio.run(seed_all(get_settings()))


@app.command()
def seed() -> None:
    """Load `pull dev`'s demo data (demo accounts, open markets, market makers) into
    DATABASE_URL; idempotent. Refused in staging and production."""
    from pull.seed import seed_all

    settings = _settings_or_exit()
    if settings.is_deployed:
        typer.echo("error: demo data is for development and test only", err=True)
        raise typer.Exit(1)
    asyncio.run(seed_all(settings))
    typer.echo("demo data loaded")


users_app = typer.Typer(
    no_args_is_help=True,
    help="User accounts, in DATABASE_URL (default: the database of a running `pull dev`)",
)
app.add_typer(users_app, name="users")


def _users_call(coro_fn: Any, **kwargs: Any) -> Any:
    """Run an identity command; domain errors and an unreachable database print one line."""
    from pull.kit.errors import AppError

    settings = _settings_or_exit()
    try:
        return asyncio.run(coro_fn(settings, **kwargs))
    except AppError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(
            f"error: cannot reach the database ({exc}); is `pull dev` running, "
            "or DATABASE_URL set?",
            err=True,
        )
        raise typer.Exit(1) from None


@users_app.command("create")
def users_create(
    email: str = typer.Option(..., "--email", help="Login email"),
    password: str = typer.Option(
        ..., "--password", prompt=True, hide_input=True, help="Prompted for when omitted"
    ),
    admin: bool = typer.Option(False, "--admin", help="Give the admin role"),
    verified: bool = typer.Option(
        False, "--verified", help="Mark the email address and the phone number verified"
    ),
    phone: str | None = typer.Option(
        None, "--phone", help="Phone number, E.164 (+14155550100); needed with --verified"
    ),
) -> None:
    """Create a user (password policy applies)."""
    from pull.identity.commands import create_user

    if verified and phone is None:
        typer.echo("error: --verified needs --phone (the number to mark verified)", err=True)
        raise typer.Exit(2)
    user = _users_call(
        create_user, email=email, password=password, admin=admin, verified=verified, phone=phone
    )
    typer.echo(f"created {user.role} {user.email} ({user.id})")


@users_app.command("grant-admin")
def users_grant_admin(email: str = typer.Argument(..., help="Email of an existing user")) -> None:
    """Give an existing user the admin role."""
    from pull.identity.commands import grant_admin

    user = _users_call(grant_admin, email=email)
    typer.echo(f"{user.email} is now admin")


@users_app.command("set-kyc")
def users_set_kyc(
    email: str = typer.Argument(..., help="Email of the customer"),
    tier: str = typer.Argument(..., help="none, basic, standard, enhanced or accredited"),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)"),
    operator: str = typer.Option(
        ..., "--operator", help="Email of the admin account doing this (the audit actor)"
    ),
) -> None:
    """Set a customer's KYC tier by hand (support cases); audited with the operator as actor."""
    from pull.kyc.commands import set_kyc

    found = _users_call(set_kyc, email=email, tier=tier, reason=reason, operator=operator)
    typer.echo(f"{found.email} is now KYC tier {tier}")


def _restriction(email: str, restricted: bool, reason: str) -> None:
    from pull.funding.commands import set_restricted

    done = _users_call(set_restricted, email=email, restricted=restricted, reason=reason)
    owed = f"; owes {done.owed} cents" if done.owed else ""
    typer.echo(f"{email} is now {done.status}{owed}")


@users_app.command("restrict")
def users_restrict(
    email: str = typer.Argument(..., help="Email of an active user"),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)"),
) -> None:
    """Restrict an account: it can sign in and read, not move money or trade. Audited."""
    _restriction(email, True, reason)


@users_app.command("unrestrict")
def users_unrestrict(
    email: str = typer.Argument(..., help="Email of a restricted user"),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)"),
) -> None:
    """Make a restricted account active again (a debt is still repaid by later credits)."""
    _restriction(email, False, reason)


ledger_app = typer.Typer(
    no_args_is_help=True,
    help="The ledger, in DATABASE_URL (default: the database of a running `pull dev`)",
)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("check")
def ledger_check(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
) -> None:
    """Per account class: the accounts that must never go negative and those that are
    negative now (docs/money.md). Exits 1 when a never-negative account is negative."""
    from pull.ledger.commands import check, render

    report = _users_call(check)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        for line in render(report):
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(1)


analytics_app = typer.Typer(no_args_is_help=True, help="Analytics (ClickHouse) tools")
app.add_typer(analytics_app, name="analytics")


@analytics_app.command("backfill")
def analytics_backfill(
    batch_size: int = typer.Option(20_000, min=1, max=100_000, help="Rows per insert"),
) -> None:
    """Load history from PostgreSQL into ClickHouse (idempotent: safe to run again).

    With embedded chDB and the API running, the inserts go through the API process that owns
    the engine (docs/analytics.md).
    """
    from pull.analytics.client import close_warehouses, warehouse_for
    from pull.analytics.errors import AnalyticsUnavailable
    from pull.analytics.service import backfill
    from pull.kit.db import make_engine, make_sessionmaker

    settings = _settings_or_exit()

    async def go() -> None:
        engine = make_engine(settings.database_url, pool_size=2, max_overflow=0)
        try:
            wh = warehouse_for(settings)
            result = await backfill(maker=make_sessionmaker(engine), wh=wh, batch_size=batch_size)
        finally:
            await engine.dispose()
            close_warehouses()
        typer.echo(
            f"backfill: {result.outbox_events} outbox events, {result.users} users, "
            f"{result.client_events} client events; {result.rows_in_clickhouse} rows in "
            "ClickHouse"
        )

    try:
        asyncio.run(go())
    except AnalyticsUnavailable as exc:
        typer.echo(f"FATAL: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    app()


if __name__ == "__main__":
    main()
