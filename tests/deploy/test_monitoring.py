"""Prometheus rules, their promtool unit tests, the scrape config and the Grafana dashboards."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import MONITORING, alert_rules, dashboard_exprs

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian package `prometheus` provides it)",
)

# The runbook's table: metric -> (warning, critical) thresholds.
RUNBOOK_THRESHOLDS = {
    "PullApiErrorRate": (0.01, 0.05),
    "PullApiLatencyP99": (2.0, 5.0),
    "PullWorkerQueueDepth": (1000.0, 5000.0),
    "PullWorkerFailures": (10.0, 100.0),
    "PullDatabaseConnections": (0.80, 0.95),
    "PullMemoryUsage": (0.80, 0.95),
}
# Alerts with one level only: name -> (severity, threshold).
SINGLE_LEVEL = {
    "PullLedgerNegativeAccount": ("critical", 0.0),
    "PullStreamSlowConsumers": ("warning", 10.0),
    "PullStreamDeliveryLag": ("warning", 0.1),
    "PullStreamFanoutSlow": ("warning", 0.05),
    "PullPortfolioSnapshotStale": ("warning", 26.0),
    "PullEmailWebhooksRejected": ("warning", 5.0),
    "PullWebLatencyP99": ("warning", 0.15),
    "PullMatrixHomeserverFailing": ("warning", 0.05),
}


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    proc = promtool("test", "rules", "alerts.test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


@needs_promtool
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A rule with a wrong threshold makes the unit tests fail: they pin the thresholds."""
    rules = (MONITORING / "alerts.yml").read_text().replace("> 0.05", "> 0.5")
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "alerts.test.yml").write_text((MONITORING / "alerts.test.yml").read_text())
    proc = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert proc.returncode != 0
    assert "PullApiErrorRateCritical" in proc.stdout + proc.stderr


@needs_promtool
def test_promtool_check_prometheus_config() -> None:
    proc = promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scrape_config_targets_api_3001_and_worker_9090() -> None:
    cfg = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["pull-api"]["static_configs"][0]["targets"] == ["api:3001"]
    assert jobs["pull-api"]["metrics_path"] == "/metrics"
    assert jobs["pull-temporal-worker"]["static_configs"][0]["targets"] == ["worker:9090"]
    assert jobs["pull-temporal-worker"]["metrics_path"] == "/metrics"
    assert cfg["rule_files"] == ["alerts.yml"]


def _threshold(expr: str) -> float:
    m = re.search(r">\s*([0-9.]+)\s*$", expr.strip())
    assert m, expr
    return float(m.group(1))


def test_alert_thresholds_are_the_runbooks() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    expected = {
        f"{base}{level}" for base in RUNBOOK_THRESHOLDS for level in ("Warning", "Critical")
    }
    assert set(rules) == expected | set(SINGLE_LEVEL)
    for name, (severity, threshold) in SINGLE_LEVEL.items():
        assert _threshold(rules[name]["expr"]) == threshold
        assert rules[name]["labels"]["severity"] == severity
        assert rules[name]["annotations"]["runbook_url"].startswith("docs/runbook.md#")
    for base, (warning, critical) in RUNBOOK_THRESHOLDS.items():
        w, c = rules[f"{base}Warning"], rules[f"{base}Critical"]
        assert _threshold(w["expr"]) == warning
        assert _threshold(c["expr"]) == critical
        assert w["labels"]["severity"] == "warning"
        assert c["labels"]["severity"] == "critical"
        for r in (w, c):
            assert r["annotations"]["runbook_url"].startswith("docs/runbook.md#")
            assert r["annotations"]["summary"]
    # Rates per minute: the failures rule scales a per-second rate by 60.
    assert "* 60 > 10" in rules["PullWorkerFailuresWarning"]["expr"]
    assert 'status=~"5.."' in rules["PullApiErrorRateWarning"]["expr"]
    assert "histogram_quantile(0.99" in rules["PullApiLatencyP99Warning"]["expr"]


def test_unit_tests_cover_every_alert_firing_and_silent() -> None:
    doc = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())
    assert doc["rule_files"] == ["alerts.yml"]
    fired: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for case in test["alert_rule_test"]:
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert fired == names
    assert silent == names


def test_runbook_documents_every_alert_anchor() -> None:
    runbook = (MONITORING.parents[1] / "docs" / "runbook.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbook, flags=re.M)
    }
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"docs/runbook.md has no section #{anchor}"
        assert rule["alert"] in runbook, f"docs/runbook.md does not name {rule['alert']}"


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text())
        for p in sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
    }


def test_dashboards_exist_and_are_well_formed() -> None:
    dashes = _dashboards()
    assert set(dashes) == {
        "analytics.json",
        "api-performance.json",
        "database-metrics.json",
        "worker-queue-metrics.json",
    }
    uids = set()
    for name, d in dashes.items():
        assert d["uid"] and d["title"] and d["panels"], name
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        # analytics.json reads ClickHouse; its SQL runs in tests/analytics/test_grafana.py
        source = (
            {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
            if name == "analytics.json"
            else {"type": "prometheus", "uid": "prometheus"}
        )
        for p in d["panels"]:
            assert p["datasource"] == source
            assert p["targets"], f"{name}: panel {p['title']} has no query"
    assert len(uids) == len(dashes)
    ds = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert ds["datasources"][0]["uid"] == "prometheus"
    prov = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "pull.yml").read_text()
    )
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every dashboard query (as recording rules, Grafana variables filled in)."""
    rules = []
    for name, exprs in dashboard_exprs().items():
        for i, expr in enumerate(exprs):
            concrete = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
            stem = name.split(".")[0].replace("-", "_")
            rules.append({"record": f"dashboard:{stem}:q{i}", "expr": concrete})
    assert len(rules) > 15
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = promtool("check", "rules", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
