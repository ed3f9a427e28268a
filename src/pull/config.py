"""Settings, read only from the environment (names follow the runbook where it has one)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    test = "test"
    staging = "staging"
    production = "production"


# Settings that must be set explicitly outside development and test: their defaults are only
# good for a laptop (a well-known JWT secret, a local database).
REQUIRED_IN_DEPLOYED = (
    "JWT_SECRET",
    "DATABASE_URL",
    "REDIS_URL",
    "TEMPORAL_ADDRESS",
    "INTERNAL_API_KEY",
    "FIELD_ENCRYPTION_KEYS",
    # Phone verification: without Twilio no customer could pass KYC (the SMS sandbox is for
    # development and test only).
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_VERIFY_SERVICE_SID",
    # Messaging: the production homeserver and its registration secret (never logged).
    "MATRIX_HOMESERVER_URL",
    "MATRIX_REGISTRATION_SHARED_SECRET",
)

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"  # noqa: S105 - dev default
DEV_INTERNAL_KEY = "dev-internal-key"
# A Fernet key for development and tests only; deployed environments must set their own.
DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LTAxMjM0NTY3ODlhYmM="

# Secrets whose defaults are development values, published in this repository: a deployed
# process refuses to start while any of them still has it (FIELD_ENCRYPTION_KEYS: while any of
# its keys is the development key). Add a secret here when it gets a non-empty default.
SECRETS_WITH_DEV_DEFAULTS = (
    "JWT_SECRET",
    "FIELD_ENCRYPTION_KEYS",
    "INTERNAL_API_KEY",
    "PERSONA_WEBHOOK_SECRET",
    "CHECKR_WEBHOOK_SECRET",
    "PARALLEL_MARKETS_WEBHOOK_SECRET",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Environment = Field(Environment.development, alias="ENVIRONMENT")

    # HTTP
    port: int = Field(3001, alias="PORT")
    host: str = Field("0.0.0.0", alias="HOST")
    api_workers: int = Field(1, alias="API_WORKERS", ge=1)
    log_level: str = Field("info", alias="LOG_LEVEL")
    cors_origins: str = Field("http://localhost:3000", alias="CORS_ORIGINS")
    body_limit: int = Field(1_048_576, alias="BODY_LIMIT", ge=1024)
    trust_proxy: bool = Field(False, alias="TRUST_PROXY")
    # Off only for benchmarks that measure the handler alone; deployed environments keep it on.
    rate_limit_enabled: bool = Field(True, alias="RATE_LIMIT_ENABLED")
    shutdown_grace_seconds: int = Field(30, alias="SHUTDOWN_GRACE_SECONDS")
    # An idle keep-alive connection is closed by the server only after its clients (load
    # balancers keep 60 s, httpx 5 s) have stopped reusing it: a server that closes first races
    # a request sent on the connection at that moment (the client reads a closed socket).
    http_keepalive_seconds: int = Field(75, alias="HTTP_KEEPALIVE_SECONDS", ge=1, le=3600)
    internal_api_key: str = Field(DEV_INTERNAL_KEY, alias="INTERNAL_API_KEY")

    # Auth
    jwt_secret: str = Field(DEV_JWT_SECRET, alias="JWT_SECRET")
    jwt_access_ttl_seconds: int = Field(900, alias="JWT_ACCESS_TTL_SECONDS")
    refresh_ttl_days: int = Field(30, alias="REFRESH_TTL_DAYS")
    argon2_time_cost: int = Field(2, alias="ARGON2_TIME_COST")
    argon2_memory_cost: int = Field(19456, alias="ARGON2_MEMORY_COST")
    argon2_parallelism: int = Field(1, alias="ARGON2_PARALLELISM")
    field_encryption_keys: str = Field(DEV_FIELD_KEY, alias="FIELD_ENCRYPTION_KEYS")
    # Progressive lockout: THRESHOLD failures lock for MINUTES, each further lock twice as long.
    login_lockout_threshold: int = Field(5, alias="LOGIN_LOCKOUT_THRESHOLD", ge=1)
    login_lockout_minutes: int = Field(15, alias="LOGIN_LOCKOUT_MINUTES", ge=1)
    # Base URL of the web app, for the links in verification and reset emails.
    app_url: str = Field("http://localhost:3000", alias="APP_URL")

    # Outgoing email: SMTP when SMTP_HOST is set, else (development, test) the outbound_emails table
    smtp_host: str = Field("", alias="SMTP_HOST")
    smtp_port: int = Field(587, alias="SMTP_PORT")
    smtp_username: str = Field("", alias="SMTP_USERNAME")
    smtp_password: str = Field("", alias="SMTP_PASSWORD")
    smtp_from: str = Field("PULL <no-reply@pull.com>", alias="SMTP_FROM")
    smtp_starttls: bool = Field(True, alias="SMTP_STARTTLS")

    # Phone verification: Twilio Verify v2 when these three are set, else (development, test)
    # the SMS sandbox, whose texts the sandbox message box shows (docs/identity.md).
    twilio_account_sid: str = Field("", alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str = Field("", alias="TWILIO_AUTH_TOKEN")
    twilio_verify_service_sid: str = Field("", alias="TWILIO_VERIFY_SERVICE_SID")
    twilio_verify_base_url: str = Field("https://verify.twilio.com", alias="TWILIO_VERIFY_BASE_URL")

    # Data stores
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:55432/pull", alias="DATABASE_URL"
    )
    db_pool_size: int = Field(10, alias="DB_POOL_SIZE")
    db_max_overflow: int = Field(10, alias="DB_MAX_OVERFLOW")
    redis_url: str = Field("redis://127.0.0.1:56379/0", alias="REDIS_URL")
    redis_pool_min: int = Field(2, alias="REDIS_POOL_MIN")
    redis_pool_max: int = Field(50, alias="REDIS_POOL_MAX")

    # Temporal
    temporal_address: str = Field("127.0.0.1:57233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", alias="TEMPORAL_NAMESPACE")
    temporal_task_queue: str = Field("pull-main-queue", alias="TEMPORAL_TASK_QUEUE")
    temporal_activity_start_to_close_timeout: int = Field(
        30, alias="TEMPORAL_ACTIVITY_START_TO_CLOSE_TIMEOUT"
    )
    temporal_activity_heartbeat_timeout: int = Field(
        10, alias="TEMPORAL_ACTIVITY_HEARTBEAT_TIMEOUT"
    )
    worker_concurrency: int = Field(10, alias="WORKER_CONCURRENCY", ge=1)
    # The worker creates the Temporal schedules on start (pull.worker.ensure_schedules);
    # off for test and ad-hoc workers (`pull schedules` creates them once).
    worker_schedules: bool = Field(True, alias="WORKER_SCHEDULES")
    metrics_port: int = Field(9090, alias="METRICS_PORT")
    # Where the API is reachable from the internet without an ingress that hides /metrics
    # (Cloud Run), scrapers must send `Authorization: Bearer <METRICS_TOKEN>`; empty = open.
    metrics_token: str = Field("", alias="METRICS_TOKEN", repr=False)

    # Observability
    otel_service_name: str = Field("pull-api", alias="OTEL_SERVICE_NAME")
    sentry_dsn: str = Field("", alias="SENTRY_DSN")

    # Health
    health_timeout_seconds: float = Field(2.0, alias="HEALTH_TIMEOUT_SECONDS")

    # Embedded development stack (`pull dev`)
    data_dir: Path = Field(Path(".pull"), alias="PULL_DATA_DIR")
    dev_postgres_port: int = Field(55432, alias="PULL_DEV_POSTGRES_PORT")
    dev_redis_port: int = Field(56379, alias="PULL_DEV_REDIS_PORT")
    dev_temporal_port: int = Field(57233, alias="PULL_DEV_TEMPORAL_PORT")
    dev_temporal_ui_port: int = Field(58233, alias="PULL_DEV_TEMPORAL_UI_PORT")

    # Outbox relay
    outbox_poll_seconds: float = Field(0.5, alias="OUTBOX_POLL_SECONDS")

    # Live feeds: /trade-api/ws/v2 and /api/v1/stream (docs/realtime.md)
    stream_max_connections: int = Field(10_000, alias="STREAM_MAX_CONNECTIONS", ge=1)
    stream_max_subscriptions: int = Field(100, alias="STREAM_MAX_SUBSCRIPTIONS", ge=1)
    stream_max_markets: int = Field(256, alias="STREAM_MAX_MARKETS", ge=1)
    stream_queue_size: int = Field(2_000, alias="STREAM_QUEUE_SIZE", ge=10)
    stream_max_message_bytes: int = Field(16_384, alias="STREAM_MAX_MESSAGE_BYTES", ge=256)
    stream_commands_per_second: float = Field(20.0, alias="STREAM_COMMANDS_PER_SECOND", gt=0)
    stream_ping_seconds: float = Field(10.0, alias="STREAM_PING_SECONDS", gt=0)
    stream_pong_timeout_seconds: float = Field(20.0, alias="STREAM_PONG_TIMEOUT_SECONDS", gt=0)
    stream_idle_seconds: float = Field(300.0, alias="STREAM_IDLE_SECONDS", gt=0)
    stream_gap_seconds: float = Field(2.0, alias="STREAM_GAP_SECONDS", gt=0)
    stream_tick_seconds: float = Field(0.05, alias="STREAM_TICK_SECONDS", ge=0, le=1)

    # Analytics (docs/analytics.md). CLICKHOUSE_URL (http[s]://user:pass@host:8123/db) or
    # CLICKHOUSE_HOST (+ user, password, database, port, secure) name a server; with neither,
    # chDB runs in-process with its data under CLICKHOUSE_CHDB_PATH (default PULL_DATA_DIR/chdb).
    clickhouse_url: str = Field("", alias="CLICKHOUSE_URL")
    clickhouse_host: str = Field("", alias="CLICKHOUSE_HOST")
    clickhouse_port: int = Field(0, alias="CLICKHOUSE_PORT", ge=0, le=65535)
    clickhouse_user: str = Field(
        "default",
        alias="CLICKHOUSE_USER",
        validation_alias=AliasChoices("CLICKHOUSE_USER", "CLICKHOUSE_USERNAME"),
    )
    clickhouse_password: str = Field("", alias="CLICKHOUSE_PASSWORD")
    clickhouse_database: str = Field(
        "pull_analytics", alias="CLICKHOUSE_DATABASE", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
    )
    clickhouse_secure: bool = Field(False, alias="CLICKHOUSE_SECURE")
    clickhouse_chdb_path: str = Field("", alias="CLICKHOUSE_CHDB_PATH")
    # Which process moves events into ClickHouse: auto = the API with chDB (chDB is one
    # process's), the worker with a server; api, worker, or off.
    analytics_ingest: str = Field(
        "auto", alias="ANALYTICS_INGEST", pattern="^(auto|api|worker|off)$"
    )
    analytics_batch_size: int = Field(20_000, alias="ANALYTICS_BATCH_SIZE", ge=1, le=100_000)
    analytics_poll_seconds: float = Field(1.0, alias="ANALYTICS_POLL_SECONDS", gt=0)
    # An outbox id still missing after this long is a rolled-back transaction, not a slow one.
    analytics_gap_seconds: float = Field(60.0, alias="ANALYTICS_GAP_SECONDS", ge=0)
    # Client events are kept this long after ingest, so a resent message_id is recognised.
    analytics_inbox_retention_days: int = Field(7, alias="ANALYTICS_INBOX_RETENTION_DAYS", ge=1)
    analytics_track_max_batch: int = Field(500, alias="ANALYTICS_TRACK_MAX_BATCH", ge=1, le=10_000)

    # Exchange
    exchange_settlement_batch_size: int = Field(
        5000, alias="EXCHANGE_SETTLEMENT_BATCH_SIZE", ge=1, le=50_000
    )
    exchange_settlement_parallelism: int = Field(
        2, alias="EXCHANGE_SETTLEMENT_PARALLELISM", ge=1, le=16
    )
    exchange_clock_seconds: float = Field(1.0, alias="EXCHANGE_CLOCK_SECONDS", gt=0)
    # Orders for one market placed together in one transaction per API process (group commit,
    # pull.exchange.book_commands); 1 places every order in its own transaction.
    exchange_order_batch_max: int = Field(64, alias="EXCHANGE_ORDER_BATCH_MAX", ge=1, le=500)

    # KYC (docs/kyc.md)
    # JSON overrides of the tier limits in cents, e.g. {"basic": {"daily_deposit": 50000}}.
    kyc_limits: str = Field("", alias="KYC_LIMITS")
    kyc_approval_valid_days: int = Field(365, alias="KYC_APPROVAL_VALID_DAYS", ge=1)
    kyc_expiry_reminder_days: int = Field(30, alias="KYC_EXPIRY_REMINDER_DAYS", ge=0)
    # Waiting for a provider: reminders after 24 h and 72 h, the attempt expires after 7 days.
    kyc_reminder_1_seconds: int = Field(86_400, alias="KYC_REMINDER_1_SECONDS", ge=1)
    kyc_reminder_2_seconds: int = Field(259_200, alias="KYC_REMINDER_2_SECONDS", ge=1)
    kyc_step_timeout_seconds: int = Field(604_800, alias="KYC_STEP_TIMEOUT_SECONDS", ge=1)
    # Sanctions list (OFAC SDN CSV format); empty: the small test list shipped in the package.
    kyc_sanctions_list_path: str = Field("", alias="KYC_SANCTIONS_LIST_PATH")
    kyc_webhook_tolerance_seconds: int = Field(300, alias="KYC_WEBHOOK_TOLERANCE_SECONDS", ge=1)
    # Sandboxes: where they deliver their webhooks (this API) and how long they take.
    kyc_webhook_base_url: str = Field("http://127.0.0.1:3001", alias="KYC_WEBHOOK_BASE_URL")
    kyc_sandbox_delay_seconds: float = Field(2.0, alias="KYC_SANDBOX_DELAY_SECONDS", ge=0)
    persona_api_key: str = Field("", alias="PERSONA_API_KEY")
    persona_api_url: str = Field("https://withpersona.com/api/v1", alias="PERSONA_API_URL")
    persona_template_standard: str = Field("", alias="PERSONA_TEMPLATE_STANDARD")
    persona_template_enhanced: str = Field("", alias="PERSONA_TEMPLATE_ENHANCED")
    persona_webhook_secret: str = Field(
        "dev-persona-webhook-secret", alias="PERSONA_WEBHOOK_SECRET"
    )
    checkr_api_key: str = Field("", alias="CHECKR_API_KEY")
    checkr_api_url: str = Field("https://api.checkr.com/v1", alias="CHECKR_API_URL")
    checkr_package: str = Field("tasker_standard", alias="CHECKR_PACKAGE")
    checkr_webhook_secret: str = Field("dev-checkr-webhook-secret", alias="CHECKR_WEBHOOK_SECRET")
    parallel_markets_api_key: str = Field("", alias="PARALLEL_MARKETS_API_KEY")
    parallel_markets_api_url: str = Field(
        "https://api.parallelmarkets.com/v2", alias="PARALLEL_MARKETS_API_URL"
    )
    parallel_markets_webhook_secret: str = Field(
        "dev-parallel-markets-webhook-secret", alias="PARALLEL_MARKETS_WEBHOOK_SECRET"
    )

    # Funding (docs/money.md, docs/sandbox.md). The real Plaid client is used when both
    # PLAID_CLIENT_ID and PLAID_SECRET are set; otherwise the Plaid sandbox (not when deployed).
    plaid_env: str = Field("sandbox", alias="PLAID_ENV")
    plaid_client_id: str = Field("", alias="PLAID_CLIENT_ID")
    plaid_secret: str = Field("", alias="PLAID_SECRET")
    plaid_base_url: str = Field("", alias="PLAID_BASE_URL")
    plaid_webhook_url: str = Field(
        "http://127.0.0.1:3001/webhooks/plaid", alias="PLAID_WEBHOOK_URL"
    )
    plaid_webhook_max_age_seconds: int = Field(300, alias="PLAID_WEBHOOK_MAX_AGE_SECONDS", ge=1)
    plaid_sandbox_post_seconds: float = Field(2.0, alias="PLAID_SANDBOX_POST_SECONDS", ge=0)
    plaid_sandbox_settle_seconds: float = Field(3.0, alias="PLAID_SANDBOX_SETTLE_SECONDS", ge=0)
    plaid_sandbox_return_seconds: float = Field(3.0, alias="PLAID_SANDBOX_RETURN_SECONDS", ge=0)
    plaid_sandbox_key_seed: str = Field(
        "dev-plaid-sandbox-webhook-key", alias="PLAID_SANDBOX_KEY_SEED"
    )
    withdrawal_approval_threshold_cents: int = Field(
        1_000_000, alias="WITHDRAWAL_APPROVAL_THRESHOLD_CENTS", ge=0
    )
    deposit_return_window_seconds: int = Field(
        5_184_000, alias="DEPOSIT_RETURN_WINDOW_SECONDS", ge=0
    )

    # Rewards (docs/rewards.md)
    rewards_points_expiry_days: int = Field(365, alias="REWARDS_POINTS_EXPIRY_DAYS", ge=1)
    rewards_expiry_warning_days: int = Field(30, alias="REWARDS_EXPIRY_WARNING_DAYS", ge=0)
    # "name:threshold" (qualifying points in 365 days) and "name:multiplier in basis points".
    rewards_tiers: str = Field(
        "bronze:0,silver:1000,gold:5000,platinum:20000", alias="REWARDS_TIERS"
    )
    rewards_tier_multipliers_bp: str = Field(
        "bronze:10000,silver:11000,gold:12500,platinum:15000", alias="REWARDS_TIER_MULTIPLIERS_BP"
    )
    rewards_tier_review_days: int = Field(30, alias="REWARDS_TIER_REVIEW_DAYS", ge=1)
    rewards_cash_points_per_dollar: int = Field(100, alias="REWARDS_CASH_POINTS_PER_DOLLAR", ge=1)
    rewards_streak_points: int = Field(10, alias="REWARDS_STREAK_POINTS", ge=0)
    rewards_streak_freeze_every: int = Field(7, alias="REWARDS_STREAK_FREEZE_EVERY", ge=1)
    rewards_streak_max_freezes: int = Field(2, alias="REWARDS_STREAK_MAX_FREEZES", ge=0)
    rewards_referrer_points: int = Field(500, alias="REWARDS_REFERRER_POINTS", ge=0)
    rewards_referee_points: int = Field(250, alias="REWARDS_REFEREE_POINTS", ge=0)
    rewards_referral_min_deposit_cents: int = Field(
        1000, alias="REWARDS_REFERRAL_MIN_DEPOSIT_CENTS", ge=0
    )
    rewards_referral_yearly_cap: int = Field(20, alias="REWARDS_REFERRAL_YEARLY_CAP", ge=0)
    rewards_adjustment_approval_threshold: int = Field(
        10_000, alias="REWARDS_ADJUSTMENT_APPROVAL_THRESHOLD", ge=0
    )
    # Redemptions in flight per API process; more wait in the process, not for a DB connection.
    rewards_redeem_concurrency: int = Field(16, alias="REWARDS_REDEEM_CONCURRENCY", ge=1)
    rewards_maintenance_interval_seconds: int = Field(
        3600, alias="REWARDS_MAINTENANCE_INTERVAL_SECONDS", ge=1
    )
    # Portfolio snapshots (docs/portfolio.md): customers per batch, minutes between intraday
    # points.
    portfolio_snapshot_batch: int = Field(2000, alias="PORTFOLIO_SNAPSHOT_BATCH", ge=1, le=20000)
    portfolio_intraday_minutes: int = Field(5, alias="PORTFOLIO_INTRADAY_MINUTES", ge=1, le=1440)
    # Gift cards: Tremendous when TREMENDOUS_API_KEY is set, else the sandbox.
    tremendous_api_key: str = Field("", alias="TREMENDOUS_API_KEY")
    tremendous_base_url: str = Field(
        "https://testflight.tremendous.com/api/v2", alias="TREMENDOUS_BASE_URL"
    )
    tremendous_funding_source_id: str = Field("balance", alias="TREMENDOUS_FUNDING_SOURCE_ID")
    # Real-world assets (docs/rwa.md). PSA's real client is used when PSA_API_TOKEN is set;
    # otherwise the PSA sandbox with magic certificate numbers (not when deployed).
    psa_api_token: str = Field("", alias="PSA_API_TOKEN")
    psa_base_url: str = Field("https://api.psacard.com/publicapi", alias="PSA_BASE_URL")
    rwa_lockup_seconds: int = Field(7_776_000, alias="RWA_LOCKUP_SECONDS", ge=0)
    rwa_settle_batch_size: int = Field(200, alias="RWA_SETTLE_BATCH_SIZE", ge=1, le=10_000)
    # Subscriptions in flight per API process (a hot drop queues in the process, not for a
    # database connection).
    rwa_subscribe_concurrency: int = Field(16, alias="RWA_SUBSCRIBE_CONCURRENCY", ge=1)
    # Subscriptions to one offering counted together in one transaction per API process
    # (group commit, pull.rwa.subscription_batcher); 1 subscribes each in its own.
    rwa_subscribe_batch_max: int = Field(64, alias="RWA_SUBSCRIBE_BATCH_MAX", ge=1, le=500)
    # Orders for one asset placed together in one transaction per API process (group commit,
    # pull.rwa.order_batcher); 1 places every order in its own.
    rwa_order_batch_max: int = Field(32, alias="RWA_ORDER_BATCH_MAX", ge=1, le=500)
    # Secondary trading hours: empty = always; else "mon-fri 09:30-16:00 America/New_York".
    rwa_trading_hours: str = Field(
        "",
        alias="RWA_TRADING_HOURS",
        pattern=r"^$|^(mon|tue|wed|thu|fri|sat|sun)-(mon|tue|wed|thu|fri|sat|sun) "
        r"([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9] [A-Za-z_]+(/[A-Za-z_+-]+)*$",
    )
    rwa_buyout_vote_seconds: int = Field(259_200, alias="RWA_BUYOUT_VOTE_SECONDS", ge=1)
    rwa_buyout_pass_bps: int = Field(5000, alias="RWA_BUYOUT_PASS_BPS", ge=1, le=10_000)
    # "Closing soon" is announced this long before an offering closes (0: never), when the
    # offering was open longer than that (docs/messaging.md).
    rwa_closing_soon_seconds: int = Field(86_400, alias="RWA_CLOSING_SOON_SECONDS", ge=0)
    # Brokerage (docs/brokerage.md). The real broker (Alpaca's Broker API) is used when both
    # ALPACA_BROKER_KEY and ALPACA_BROKER_SECRET are set; otherwise the sandbox broker.
    alpaca_broker_key: str = Field("", alias="ALPACA_BROKER_KEY")
    alpaca_broker_secret: str = Field("", alias="ALPACA_BROKER_SECRET")
    alpaca_broker_base_url: str = Field(
        "https://broker-api.sandbox.alpaca.markets", alias="ALPACA_BROKER_BASE_URL"
    )
    alpaca_data_url: str = Field("https://data.sandbox.alpaca.markets", alias="ALPACA_DATA_URL")
    alpaca_firm_account_id: str = Field("", alias="ALPACA_FIRM_ACCOUNT_ID")
    brokerage_market_buffer_bps: int = Field(
        500, alias="BROKERAGE_MARKET_BUFFER_BPS", ge=0, le=10_000
    )
    brokerage_reconcile_seconds: int = Field(60, alias="BROKERAGE_RECONCILE_SECONDS", ge=1)
    brokerage_reconcile_grace_seconds: float = Field(
        30.0, alias="BROKERAGE_RECONCILE_GRACE_SECONDS", ge=0
    )
    brokerage_pending_timeout_seconds: float = Field(
        300.0, alias="BROKERAGE_PENDING_TIMEOUT_SECONDS", ge=0
    )
    brokerage_event_poll_seconds: float = Field(0.2, alias="BROKERAGE_EVENT_POLL_SECONDS", gt=0)
    brokerage_sandbox_tick_seconds: float = Field(
        15.0, alias="BROKERAGE_SANDBOX_TICK_SECONDS", gt=0
    )
    brokerage_consumer_enabled: bool = Field(True, alias="BROKERAGE_CONSUMER_ENABLED")
    brokerage_sandbox_api_key: str = Field(
        "pull-sandbox-broker-key", alias="BROKERAGE_SANDBOX_API_KEY"
    )
    brokerage_sandbox_api_secret: str = Field(
        "pull-sandbox-broker-secret", alias="BROKERAGE_SANDBOX_API_SECRET"
    )
    # Email (docs/email.md). The real Nylas client when NYLAS_API_KEY is set, else the Nylas
    # sandbox (not when deployed); an LLM drafts replies through Anthropic's SDK when
    # ANTHROPIC_API_KEY is set, else the deterministic sandbox drafter.
    nylas_api_key: str = Field("", alias="NYLAS_API_KEY")
    nylas_client_id: str = Field("", alias="NYLAS_CLIENT_ID")
    nylas_api_uri: str = Field("https://api.us.nylas.com", alias="NYLAS_API_URI")
    nylas_webhook_secret: str = Field("dev-nylas-webhook-secret", alias="NYLAS_WEBHOOK_SECRET")
    email_callback_url: str = Field(
        "http://127.0.0.1:3001/api/v1/email/callback", alias="EMAIL_CALLBACK_URL"
    )
    email_webhook_base_url: str = Field("http://127.0.0.1:3001", alias="EMAIL_WEBHOOK_BASE_URL")
    email_sandbox_delay_seconds: float = Field(2.0, alias="EMAIL_SANDBOX_DELAY_SECONDS", ge=0)
    email_task_queue: str = Field("", alias="EMAIL_TASK_QUEUE")
    anthropic_api_key: str = Field("", alias="ANTHROPIC_API_KEY")
    anthropic_model: str = Field("claude-haiku-4-5", alias="ANTHROPIC_MODEL")
    anthropic_base_url: str = Field("", alias="ANTHROPIC_BASE_URL")

    # Messaging (docs/messaging.md): the Matrix homeserver PULL provisions accounts and rooms
    # on, and its registration shared secret (Synapse `registration_shared_secret`). `pull dev`
    # and the tests start an embedded Synapse and set both. MATRIX_CLIENT_URL is the URL other
    # Matrix clients (Element) use; default MATRIX_HOMESERVER_URL.
    matrix_homeserver_url: str = Field("", alias="MATRIX_HOMESERVER_URL")
    matrix_registration_shared_secret: str = Field("", alias="MATRIX_REGISTRATION_SHARED_SECRET")
    matrix_client_url: str = Field("", alias="MATRIX_CLIENT_URL")
    dev_matrix_port: int = Field(58008, alias="PULL_DEV_MATRIX_PORT")

    # Notifications (docs/messaging.md). Mobile push: FCM HTTP v1 when FCM_SERVICE_ACCOUNT (the
    # service-account JSON, or a path to it) is set, APNs when APNS_KEY (the .p8 PEM, or a path)
    # is set; otherwise their sandboxes (development and test only).
    fcm_service_account: str = Field("", alias="FCM_SERVICE_ACCOUNT")
    fcm_base_url: str = Field("https://fcm.googleapis.com", alias="FCM_BASE_URL")
    apns_key: str = Field("", alias="APNS_KEY")
    apns_key_id: str = Field("", alias="APNS_KEY_ID")
    apns_team_id: str = Field("", alias="APNS_TEAM_ID")
    apns_topic: str = Field("com.pull.app", alias="APNS_TOPIC")
    apns_base_url: str = Field("https://api.push.apple.com", alias="APNS_BASE_URL")

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret_length(cls, v: str) -> str:
        # HS256 keys shorter than the hash output are brute-forceable offline (RFC 7518 3.2).
        if len(v.encode()) < 32:
            raise ValueError("JWT_SECRET must be at least 32 bytes")
        return v

    @field_validator("log_level")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def is_deployed(self) -> bool:
        return self.environment in (Environment.staging, Environment.production)


def missing_required(environ: dict[str, str]) -> list[str]:
    """Names of required settings absent from `environ` (only enforced when deployed)."""
    return [name for name in REQUIRED_IN_DEPLOYED if not environ.get(name, "").strip()]


def dev_default_secrets(settings: Settings) -> list[str]:
    """Names of secrets in `settings` that still hold their development default."""
    by_alias = {f.alias: (name, f.default) for name, f in Settings.model_fields.items()}
    found = []
    for alias in SECRETS_WITH_DEV_DEFAULTS:
        name, default = by_alias[alias]
        value = str(getattr(settings, name)).strip()
        if alias == "FIELD_ENCRYPTION_KEYS":
            if DEV_FIELD_KEY in {k.strip() for k in value.split(",")}:
                found.append(alias)
        elif value == str(default):
            found.append(alias)
    return found


def startup_refusal(settings: Settings, environ: dict[str, str]) -> str | None:
    """The one FATAL line a deployed process prints instead of starting, or None to start."""
    if not settings.is_deployed:
        return None
    parts = []
    missing = missing_required(environ)
    if missing:
        parts.append(f"Missing required environment variables: {', '.join(missing)}")
    defaults = [name for name in dev_default_secrets(settings) if name not in missing]
    if defaults:
        parts.append(f"Development default secrets must be replaced: {', '.join(defaults)}")
    return f"FATAL: {'; '.join(parts)}" if parts else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
