"""Settings, read only from the environment (names follow the runbook where it has one)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
)

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"  # noqa: S105 - dev default
DEV_INTERNAL_KEY = "dev-internal-key"
# A Fernet key for development and tests only; deployed environments must set their own.
DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LTAxMjM0NTY3ODlhYmM="


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
    metrics_port: int = Field(9090, alias="METRICS_PORT")

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

    # KYC (docs/kyc.md)
    # JSON overrides of the tier limits in cents, e.g. {"basic": {"daily_deposit": 50000}}.
    kyc_limits: str = Field("", alias="KYC_LIMITS")
    kyc_approval_valid_days: int = Field(365, alias="KYC_APPROVAL_VALID_DAYS", ge=1)

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
