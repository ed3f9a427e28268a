"""The web process's settings, from the environment (its own: it shares no code with the API)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_WEB_SECRET = "dev-only-web-session-secret-change-me-0123456789"  # noqa: S105 - dev default
DEPLOYED = ("staging", "production")


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: str = Field("development", alias="ENVIRONMENT")
    host: str = Field("0.0.0.0", alias="WEB_HOST")
    port: int = Field(3000, alias="WEB_PORT", ge=1, le=65535)
    workers: int = Field(1, alias="WEB_WORKERS", ge=1, le=64)
    # Where the public API answers, seen from the web process (inside the cluster: the Service)
    api_url: str = Field("http://127.0.0.1:3001", alias="WEB_API_URL")
    api_timeout_seconds: float = Field(10.0, alias="WEB_API_TIMEOUT_SECONDS", gt=0)
    # Encrypts the session cookie (the API's tokens) and signs CSRF tokens
    session_secret: str = Field(DEV_WEB_SECRET, alias="WEB_SESSION_SECRET", min_length=32)
    session_max_age_seconds: int = Field(30 * 24 * 3600, alias="WEB_SESSION_MAX_AGE_SECONDS")
    # Secure cookies; browsers accept them on http://localhost and 127.0.0.1 too
    cookie_secure: bool = Field(True, alias="WEB_COOKIE_SECURE")
    # Forward the browser's address to the API as X-Forwarded-For (the API trusts it only with
    # TRUST_PROXY); behind an ingress, the first X-Forwarded-For address the web process got
    trust_proxy: bool = Field(False, alias="TRUST_PROXY")
    log_level: str = Field("info", alias="LOG_LEVEL")
    # How long market data (series, a market, its candles) is reused across users (web.cache)
    public_cache_seconds: float = Field(2.0, alias="WEB_PUBLIC_CACHE_SECONDS", ge=0, le=60)

    @property
    def deployed(self) -> bool:
        return self.environment in DEPLOYED

    def fernet_key(self) -> bytes:
        return base64.urlsafe_b64encode(hashlib.sha256(self.session_secret.encode()).digest())


def startup_refusal(settings: WebSettings) -> str | None:
    """A deployed web process never runs on the published development secret."""
    if settings.deployed and settings.session_secret == DEV_WEB_SECRET:
        return "FATAL: WEB_SESSION_SECRET is the development default; set a secret of your own"
    return None


@lru_cache
def get_web_settings() -> WebSettings:
    return WebSettings()
