"""Settings: documented, environment-only, strict where deployed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pull.config import (
    DEV_FIELD_KEY,
    REQUIRED_IN_DEPLOYED,
    SECRETS_WITH_DEV_DEFAULTS,
    Settings,
    dev_default_secrets,
    missing_required,
    startup_refusal,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented_with_its_default() -> None:
    text = DOC.read_text()
    for field in Settings.model_fields.values():
        alias = field.alias
        assert alias, field
        row = re.search(rf"^\| `{alias}` \| ([^|]*) \|", text, re.M)
        assert row, f"docs/configuration.md lacks a row for {alias}"


def test_required_settings_are_marked_in_the_docs() -> None:
    text = DOC.read_text()
    for name in REQUIRED_IN_DEPLOYED:
        row = re.search(rf"^\| `{name}` \|.*$", text, re.M)
        assert row and "**required**" in row.group(0), name


def test_missing_required_names_blank_values() -> None:
    env = {name: "x" for name in REQUIRED_IN_DEPLOYED}
    assert missing_required(env) == []
    env["JWT_SECRET"] = "  "
    del env["REDIS_URL"]
    assert missing_required(env) == ["JWT_SECRET", "REDIS_URL"]


def test_settings_read_the_runbook_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4001")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("WORKER_CONCURRENCY", "7")
    monkeypatch.setenv("ENVIRONMENT", "staging")
    s = Settings()
    assert s.port == 4001
    assert s.cors_origin_list == ["https://a.example", "https://b.example"]
    assert s.worker_concurrency == 7
    assert s.is_deployed


def test_every_secret_with_a_development_default_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out of the box every listed secret is flagged; replaced, none is; and the development
    environment never refuses."""
    for name in SECRETS_WITH_DEV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert dev_default_secrets(s) == list(SECRETS_WITH_DEV_DEFAULTS)
    assert startup_refusal(s, {}) is None  # development
    for name in SECRETS_WITH_DEV_DEFAULTS:
        monkeypatch.setenv(name, "y" * 40 if name != "FIELD_ENCRYPTION_KEYS" else "k2," + "z" * 44)
    assert dev_default_secrets(Settings()) == []
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", f"k2,{DEV_FIELD_KEY}")
    assert dev_default_secrets(Settings()) == ["FIELD_ENCRYPTION_KEYS"]


def test_deployed_refusal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name in SECRETS_WITH_DEV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    env = {name: "x" for name in REQUIRED_IN_DEPLOYED if name != "JWT_SECRET"}
    refusal = startup_refusal(Settings(), env)
    assert refusal is not None and "\n" not in refusal
    assert refusal == (
        "FATAL: Missing required environment variables: JWT_SECRET; Development default "
        "secrets must be replaced: FIELD_ENCRYPTION_KEYS, INTERNAL_API_KEY, "
        "PERSONA_WEBHOOK_SECRET, CHECKR_WEBHOOK_SECRET, PARALLEL_MARKETS_WEBHOOK_SECRET"
    )


def test_secrets_with_development_defaults_are_documented() -> None:
    text = DOC.read_text()
    for name in SECRETS_WITH_DEV_DEFAULTS:
        row = re.search(rf"^\| `{name}` \|.*$", text, re.M)
        assert row and "refused when deployed" in row.group(0), name
