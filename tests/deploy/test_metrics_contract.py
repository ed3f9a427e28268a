"""Every metric an alert rule or a dashboard queries is exported by the running API or worker."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Services, free_port, spawn, stop_process, wait_http
from tests.deploy.helpers import (
    PROMETHEUS_SYNTHETIC,
    alert_rules,
    dashboard_exprs,
    promql_metric_names,
)

SUFFIXES = {
    "counter": ["_total"],
    "histogram": ["_bucket", "_sum", "_count"],
    "summary": ["_sum", "_count"],
    "gauge": [""],
    "unknown": [""],
    "untyped": [""],
    "info": ["_info"],
}


def exported_names(text: str) -> set[str]:
    """Series names a scrape can return, including families that have no sample yet
    (a labelled counter before its first increment)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in SUFFIXES.get(family.type, [""]))
        names.update(sample.name for sample in family.samples)
    return names


def queried_names() -> dict[str, set[str]]:
    out = {f"alert {r['alert']}": promql_metric_names(r["expr"]) for r in alert_rules()}
    for dashboard, exprs in dashboard_exprs().items():
        for expr in exprs:
            out.setdefault(f"dashboard {dashboard}", set()).update(promql_metric_names(expr))
    return out


def test_metric_name_extraction() -> None:
    assert promql_metric_names(
        "histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        '{route=~"/api/.*", instance=~"$instance"}[$__rate_interval]))) > 2'
    ) == {"http_request_duration_seconds_bucket"}
    assert promql_metric_names("(sum(rate(a_total[5m])) or vector(0)) + on (job) b / (c > 0)") == {
        "a_total",
        "b",
        "c",
    }


def _web_metrics(services: Services, api_server: str) -> set[str]:
    """A real `pull web` in front of the test API: one page, then its /metrics."""
    port = free_port()
    env = services.env(WEB_PORT=str(port), WEB_HOST="127.0.0.1", WEB_API_URL=api_server)
    proc = spawn(["web"], env, services.data_dir / f"web-metrics-{port}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        httpx.get(f"http://127.0.0.1:{port}/login", timeout=10)
        return exported_names(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        stop_process(proc)


def test_alerts_and_dashboards_use_only_exported_metrics(
    services: Services, api_server: str, worker_metrics_url: str
) -> None:
    # One request first, so the API's labelled series exist too.
    httpx.get(f"{api_server}/health", timeout=10)
    api = exported_names(httpx.get(f"{api_server}/metrics", timeout=10).text)
    worker = exported_names(httpx.get(worker_metrics_url, timeout=10).text)
    web = _web_metrics(services, api_server)
    assert "http_requests_total" in api
    assert "temporal_workflow_task_queue_backlog" in worker
    assert "web_request_duration_seconds_bucket" in web
    exported = api | worker | web | PROMETHEUS_SYNTHETIC
    queried = queried_names()
    assert len(queried) == len(alert_rules()) + 3
    missing = {
        where: sorted(names - exported) for where, names in queried.items() if names - exported
    }
    assert not missing, f"queried but not exported: {missing}"
    # Each process exports the memory metrics the memory alert divides.
    for names in (api, worker):
        assert {"process_resident_memory_bytes", "process_memory_limit_bytes"} <= names
