"""Shared helpers for the deployment-artefact tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
TERRAFORM = DEPLOY / "terraform"
MONITORING = DEPLOY / "monitoring"
WORKFLOWS = REPO / ".github" / "workflows"

# The files the runbook names, in its apply order, plus the migration Job.
K8S_BASE_FILES = [
    "namespace.yaml",
    "priority-classes.yaml",
    "service-accounts.yaml",
    "configmaps.yaml",
    "external-secrets.yaml",
    "network-policies.yaml",
    "migration-job.yaml",
    "api-deployment.yaml",
    "sockets-deployment.yaml",
    "worker-deployment.yaml",
    "web-deployment.yaml",
    "ingress.yaml",
]
OVERLAYS = ["staging", "production"]
CRD_KINDS = {"ExternalSecret", "SecretStore"}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def load_yaml_text(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render_overlay(env: str, image_tag: str | None = None) -> str:
    """The overlay as kustomize renders it (kubectl's built-in kustomize)."""
    exe = kubectl()
    assert exe is not None
    out = subprocess.run(
        [
            exe,
            "kustomize",
            "--load-restrictor",
            "LoadRestrictionsNone",
            str(K8S / "overlays" / env),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    if image_tag:
        out = re.sub(
            r"(image: \S+/pull-(?:api|temporal-worker)):unreleased", rf"\1:{image_tag}", out
        )
    return out


def by_kind_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


# --- PromQL metric names ---------------------------------------------------------------------

PROMQL_WORDS = {
    # functions
    "abs",
    "absent",
    "absent_over_time",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_quantile",
    "holt_winters",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "label_join",
    "label_values",
    "last_over_time",
    "ln",
    "log2",
    "log10",
    "max_over_time",
    "min_over_time",
    "predict_linear",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "sum_over_time",
    "time",
    "timestamp",
    "vector",
    "humanize",
    # aggregations and keywords
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
# Series Prometheus itself synthesises for every target; no process exports them.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (strings, matchers, ranges, groupings removed)."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+", " ", e)
    names = set()
    for tok in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if tok.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", tok):
            continue
        names.add(tok)
    return names


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs() -> dict[str, list[str]]:
    import json

    out: dict[str, list[str]] = {}
    for path in sorted((MONITORING / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        # PromQL only: the analytics dashboard's panels query ClickHouse (tests/analytics)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", []) if "expr" in t]
        for var in dash.get("templating", {}).get("list", []):
            q = var.get("query")
            if isinstance(q, dict) and "query" in q:
                # Grafana's label_values(<selector>, <label>): only the selector is PromQL.
                m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q["query"])
                exprs.append(m.group(1) if m else q["query"])
        out[path.name] = exprs
    return out
