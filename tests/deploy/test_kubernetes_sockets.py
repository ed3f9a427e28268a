"""The live feeds' own Deployment (deploy/kubernetes/sockets-deployment.yaml): `pull api` pods
that the Ingress sends only /api/v1/stream and /trade-api/ws/v2 to (docs/realtime.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.deploy.helpers import K8S, OVERLAYS, by_kind_name, load_docs, load_yaml_text
from tests.deploy.test_kubernetes import (
    LIVE_FEED_PATHS,
    _ingresses,
    _policies,
    base_docs,
    containers,
    env_map,
    needs_kubectl,
    render_overlay,
)

# docs/performance.md "Live feeds": RSS at start and per idle socket, measured by bench/stream.py
START_MIB = 500
KIB_PER_SOCKET = 41


def _mib(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def _backend(paths: list[dict[str, Any]], url_path: str) -> str | None:
    """The Service a request path reaches: ingress-nginx takes the longest matching Prefix."""
    best: tuple[int, str] | None = None
    for p in paths:
        rule = p["path"].rstrip("/") or "/"
        if p["pathType"] == "Prefix" and (url_path == rule or url_path.startswith(rule + "/")):
            if best is None or len(rule) > best[0]:
                best = (len(rule), p["backend"]["service"]["name"])
    return best[1] if best else None


def test_sockets_deployment_is_the_api_process_with_its_probes_and_metrics() -> None:
    objs = by_kind_name(base_docs())
    api, sockets = objs[("Deployment", "pull-api")], objs[("Deployment", "pull-sockets")]
    (a,), (c,) = containers(api), containers(sockets)
    assert c["image"] == a["image"] and c["command"] == a["command"] == ["pull", "api"]
    assert c["envFrom"] == a["envFrom"]  # the same settings: it reads the same DB and streams
    assert env_map(c)["OTEL_SERVICE_NAME"] == "pull-sockets"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 3001}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe] == a[probe], probe
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    annotations = sockets["spec"]["template"]["metadata"]["annotations"]
    assert annotations == api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "3001"
    pod = sockets["spec"]["template"]["spec"]
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = int(objs[("ConfigMap", "pull-api-config")]["data"]["SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > sleep + grace
    assert sockets["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    for t in pod["topologySpreadConstraints"]:
        assert t["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "pull-sockets"}


def test_sockets_memory_holds_the_connection_cap() -> None:
    """A pod at STREAM_MAX_CONNECTIONS stays under its memory limit (measured footprint)."""
    from pull.config import Settings

    (c,) = containers(by_kind_name(base_docs())[("Deployment", "pull-sockets")])
    cap = Settings().stream_max_connections
    need = START_MIB + cap * KIB_PER_SOCKET / 1024
    assert _mib(c["resources"]["limits"]["memory"]) > need
    assert _mib(c["resources"]["requests"]["memory"]) >= START_MIB


def test_sockets_service_hpa_and_pdb_select_only_the_socket_pods() -> None:
    objs = by_kind_name(base_docs())
    labels = {
        name: objs[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        for name in ("pull-api", "pull-sockets")
    }

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, lab in labels.items() if selector.items() <= lab.items()]

    assert selects(objs[("Service", "pull-sockets")]["spec"]["selector"]) == ["pull-sockets"]
    assert selects(objs[("Service", "pull-api")]["spec"]["selector"]) == ["pull-api"]
    assert objs[("Service", "pull-sockets")]["spec"]["ports"][0]["port"] == 3001
    pdb = objs[("PodDisruptionBudget", "pull-sockets-pdb")]["spec"]
    assert selects(pdb["selector"]["matchLabels"]) == ["pull-sockets"]
    hpa = objs[("HorizontalPodAutoscaler", "pull-sockets-hpa")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "pull-sockets"
    assert hpa["minReplicas"] >= 2  # a restart moves sockets to another pod, never to none
    resources = {m["resource"]["name"] for m in hpa["metrics"]}
    assert resources == {"cpu", "memory"}  # memory follows connections (~41 KiB each)


def test_the_ingress_sends_only_the_live_feeds_to_the_socket_pods() -> None:
    app_paths = [
        "/api/v1/orders",
        "/api/v1/markets/X/orderbook",
        "/api/v1/streams-other",
        "/trade-api/v2/portfolio/balance",
        "/trade-api/ws/v3",
    ]
    for name, ing in _ingresses():
        paths = [p for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]]
        for path in LIVE_FEED_PATHS:
            assert _backend(paths, path) == "pull-sockets", (name, path)
        for path in app_paths:
            assert _backend(paths, path) == "pull-api", (name, path)


def test_backend_matching_is_longest_prefix() -> None:
    """The helper the test above relies on picks the longer rule whatever the order."""
    rules = [
        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "a"}}},
        {"path": "/api/v1/stream", "pathType": "Prefix", "backend": {"service": {"name": "s"}}},
    ]
    for order in (rules, list(reversed(rules))):
        assert _backend(copy.deepcopy(order), "/api/v1/stream") == "s"
        assert _backend(order, "/api/v1/streamer") == "a"
        assert _backend(order, "/apix") is None


def test_network_policies_let_the_socket_pods_do_what_the_api_does() -> None:
    pols = _policies()
    for kind in ("ingress", "egress"):
        api, sockets = pols[f"pull-api-{kind}"]["spec"], pols[f"pull-sockets-{kind}"]["spec"]
        assert sockets["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "pull-sockets"}
        assert sockets[kind] == api[kind] and sockets["policyTypes"] == api["policyTypes"]
    sources = {
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in pols["pull-sockets-ingress"]["spec"]["ingress"]
        for f in rule["from"]
    }
    assert sources == {"ingress-nginx", "monitoring"}


@needs_kubectl
@pytest.mark.parametrize("env", OVERLAYS)
def test_rendered_overlay_routes_the_live_feeds_to_the_socket_pods(env: str) -> None:
    objs = by_kind_name(load_yaml_text(render_overlay(env, image_tag="0123abcd4567")))
    (c,) = containers(objs[("Deployment", "pull-sockets")])
    assert c["image"].endswith(f"pull-{env}/pull/pull-api:0123abcd4567"), c["image"]
    paths = [p for r in objs[("Ingress", "pull-api")]["spec"]["rules"] for p in r["http"]["paths"]]
    for path in LIVE_FEED_PATHS:
        assert _backend(paths, path) == "pull-sockets"
    assert load_docs(K8S / "sockets-deployment.yaml")
