"""Settings: documented, environment-only, strict where deployed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pull.config import REQUIRED_IN_DEPLOYED, Settings, missing_required

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
