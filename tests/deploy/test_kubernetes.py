"""Kubernetes manifests and kustomize overlays, validated offline.

Built-in kinds are validated against the Kubernetes OpenAPI-derived JSON schemas shipped by
`kubernetes-validate` (strict: unknown fields are errors), for the oldest version we support on
GKE (1.30) and the newest the package knows. The External Secrets CRDs (ExternalSecret,
SecretStore) have no schema there: `test_external_secrets_structure` checks them with a schema of
our own covering the fields ESO requires. Overlays are rendered with kubectl's built-in kustomize;
those tests skip, saying so, on a machine without kubectl.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.helpers import (
    CRD_KINDS,
    K8S,
    K8S_BASE_FILES,
    OVERLAYS,
    by_kind_name,
    kubectl,
    load_docs,
    load_yaml_text,
    render_overlay,
)

K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
LIVE_FEED_PATHS = {"/api/v1/stream", "/trade-api/ws/v2"}
needs_kubectl = pytest.mark.skipif(
    kubectl() is None, reason="kubectl (with built-in kustomize) is not installed"
)


def base_docs() -> list[dict[str, Any]]:
    return [d for f in K8S_BASE_FILES for d in load_docs(K8S / f)]


def validate(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["spec"]["template"]["spec"]["containers"])


def env_map(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# --- the files themselves ----------------------------------------------------------------------


def test_every_yaml_file_is_listed_in_the_base_kustomization() -> None:
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == on_disk == set(K8S_BASE_FILES)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", K8S_BASE_FILES)
def test_base_manifest_validates_against_kubernetes_schema(name: str, version: str) -> None:
    docs = load_docs(K8S / name)
    assert docs, f"{name} is empty"
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        validate(doc, version)


def test_schema_validation_rejects_a_broken_manifest() -> None:
    """The validator really checks: an unknown field and a wrong type are both rejected."""
    dep = by_kind_name(load_docs(K8S / "api-deployment.yaml"))[("Deployment", "pull-api")]
    unknown = copy.deepcopy(dep)
    unknown["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(unknown, K8S_VERSIONS[0])
    wrong_type = copy.deepcopy(dep)
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong_type, K8S_VERSIONS[0])


ESO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "external-secrets.io/v1"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
        },
    },
    "oneOf": [
        {
            "properties": {
                "kind": {"const": "SecretStore"},
                "spec": {
                    "type": "object",
                    "required": ["provider"],
                    "additionalProperties": False,
                    "properties": {
                        "provider": {
                            "type": "object",
                            "required": ["gcpsm"],
                            "additionalProperties": False,
                            "properties": {
                                "gcpsm": {
                                    "type": "object",
                                    "required": ["projectID", "auth"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "projectID": {"type": "string", "minLength": 1},
                                        "auth": {
                                            "type": "object",
                                            "required": ["workloadIdentity"],
                                            "properties": {
                                                "workloadIdentity": {
                                                    "type": "object",
                                                    "required": [
                                                        "clusterLocation",
                                                        "clusterName",
                                                        "serviceAccountRef",
                                                    ],
                                                }
                                            },
                                        },
                                    },
                                }
                            },
                        }
                    },
                },
            }
        },
        {
            "properties": {
                "kind": {"const": "ExternalSecret"},
                "spec": {
                    "type": "object",
                    "required": ["secretStoreRef", "target", "data", "refreshInterval"],
                    "additionalProperties": False,
                    "properties": {
                        "refreshInterval": {"type": "string", "pattern": "^[0-9]+[smh]$"},
                        "secretStoreRef": {
                            "type": "object",
                            "required": ["kind", "name"],
                            "properties": {"kind": {"enum": ["SecretStore", "ClusterSecretStore"]}},
                        },
                        "target": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "creationPolicy": {"enum": ["Owner", "Orphan", "Merge", "None"]},
                                "deletionPolicy": {"enum": ["Delete", "Merge", "Retain"]},
                            },
                        },
                        "data": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["secretKey", "remoteRef"],
                                "additionalProperties": False,
                                "properties": {
                                    "secretKey": {"type": "string", "pattern": "^[A-Z_]+$"},
                                    "remoteRef": {
                                        "type": "object",
                                        "required": ["key"],
                                        "properties": {"key": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    },
                },
            }
        },
    ],
}

SECRET_KEYS = [
    "JWT_SECRET",
    "DATABASE_URL",
    "REDIS_URL",
    "INTERNAL_API_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "PLAID_CLIENT_ID",
    "PLAID_SECRET",
    "SENTRY_DSN",
    "PERSONA_WEBHOOK_SECRET",
    "CHECKR_WEBHOOK_SECRET",
    "PARALLEL_MARKETS_WEBHOOK_SECRET",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_VERIFY_SERVICE_SID",
    "MATRIX_HOMESERVER_URL",
    "MATRIX_REGISTRATION_SHARED_SECRET",
    # email (docs/email.md): Nylas v3, and Anthropic for reply drafts (empty: the sandbox drafter)
    "NYLAS_API_KEY",
    "NYLAS_CLIENT_ID",
    "NYLAS_WEBHOOK_SECRET",
    "ANTHROPIC_API_KEY",
    "WEB_SESSION_SECRET",  # the web app's cookie key (pull-web takes only this one)
]


def check_external_secrets(docs: list[dict[str, Any]], env: str) -> None:
    objs = by_kind_name(docs)
    store = objs[("SecretStore", "pull-gcp-secret-store")]
    es = objs[("ExternalSecret", "pull-secrets")]
    for doc in (store, es):
        jsonschema.validate(doc, ESO_SCHEMA)
    assert store["spec"]["provider"]["gcpsm"]["projectID"] == f"pull-{env}"
    sa = store["spec"]["provider"]["gcpsm"]["auth"]["workloadIdentity"]["serviceAccountRef"]
    assert ("ServiceAccount", sa["name"]) in objs
    assert es["spec"]["target"]["name"] == "pull-secrets"
    assert es["spec"]["secretStoreRef"]["name"] == "pull-gcp-secret-store"
    data = es["spec"]["data"]
    assert [d["secretKey"] for d in data] == SECRET_KEYS
    for d in data:
        expected = f"pull-{env}-" + d["secretKey"].lower().replace("_", "-")
        assert d["remoteRef"]["key"] == expected


def test_external_secrets_structure() -> None:
    docs = base_docs()
    check_external_secrets(docs, "production")
    broken = copy.deepcopy(by_kind_name(docs)[("ExternalSecret", "pull-secrets")])
    broken["spec"]["data"][0]["remoteRefs"] = broken["spec"]["data"][0].pop("remoteRef")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ESO_SCHEMA)


def test_every_secret_with_a_development_default_is_delivered() -> None:
    """A deployed process refuses to start on a development default (pull.config), so the
    cluster must deliver a real value for every one of them, and every required setting."""
    from pull.config import REQUIRED_IN_DEPLOYED, SECRETS_WITH_DEV_DEFAULTS

    delivered = set(SECRET_KEYS) | {"TEMPORAL_ADDRESS"}  # TEMPORAL_ADDRESS: a ConfigMap
    assert set(SECRETS_WITH_DEV_DEFAULTS) <= delivered
    assert set(REQUIRED_IN_DEPLOYED) <= delivered


# --- what the runbook and the application need -------------------------------------------------


def test_every_object_is_in_namespace_pull_with_a_component_label() -> None:
    for doc in base_docs():
        meta = doc["metadata"]
        labels = meta.get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "pull", meta["name"]
        assert labels.get("app.kubernetes.io/component") in {
            "platform",
            "migration",
            "api",
            "worker",
            "web",
        }, meta["name"]
        if doc["kind"] not in {"Namespace", "PriorityClass"}:
            assert meta.get("namespace") == "pull", f"{doc['kind']}/{meta['name']}"
    ns = by_kind_name(base_docs())[("Namespace", "pull")]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_configmaps_map_the_runbook_keys_to_our_settings() -> None:
    from pull.config import Settings

    objs = by_kind_name(base_docs())
    expected = {
        "pull-shared-config": {"ENVIRONMENT", "LOG_LEVEL", "TEMPORAL_NAMESPACE"},
        "pull-api-config": {"PORT", "CORS_ORIGINS", "BODY_LIMIT"},
        "pull-worker-config": {"WORKER_CONCURRENCY", "PLAID_ENV"},
        "pull-redis-config": {"REDIS_POOL_MIN", "REDIS_POOL_MAX"},
        "pull-observability-config": {"OTEL_SERVICE_NAME", "METRICS_PORT"},
    }
    settings_names = {(f.alias or name).upper() for name, f in Settings.model_fields.items()}
    for name, keys in expected.items():
        data = objs[("ConfigMap", name)]["data"]
        assert keys <= set(data), f"{name} lacks {keys - set(data)}"
        assert "NODE_ENV" not in data
        for key, value in data.items():
            assert isinstance(value, str), f"{name}.{key} must be a string"
            # Every key is a setting the application reads (PLAID_ENV belongs to the Plaid
            # adapter, which reads it itself).
            assert key in settings_names or key == "PLAID_ENV", f"{name}.{key} is read by nothing"
    assert objs[("ConfigMap", "pull-api-config")]["data"]["PORT"] == "3001"
    assert objs[("ConfigMap", "pull-observability-config")]["data"]["METRICS_PORT"] == "9090"
    assert objs[("ConfigMap", "pull-shared-config")]["data"]["ENVIRONMENT"] == "production"
    # Settings accepts the values as they are written.
    merged: dict[str, str] = {}
    for name in expected:
        merged.update(objs[("ConfigMap", name)]["data"])
    Settings(**{k: v for k, v in merged.items() if k != "PLAID_ENV"})


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize(
    ("kind", "name", "command"),
    [
        ("Deployment", "pull-api", ["pull", "api"]),
        ("Deployment", "pull-sockets", ["pull", "api"]),
        ("Deployment", "pull-temporal-worker", ["pull", "worker"]),
        ("Deployment", "pull-web", ["pull", "web"]),
        ("Job", "pull-migrate", ["pull", "migrate"]),
    ],
)
def test_pods_are_hardened_and_reference_existing_objects(
    kind: str, name: str, command: list[str]
) -> None:
    objs = by_kind_name(base_docs())
    doc = objs[(kind, name)]
    pod = _pod_spec(doc)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert ("ServiceAccount", pod["serviceAccountName"]) in objs
    assert ("PriorityClass", pod["priorityClassName"]) in objs
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in containers(doc):
        assert c["command"] == command
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be a writable emptyDir"
        for src in c["envFrom"]:
            if "configMapRef" in src:
                assert ("ConfigMap", src["configMapRef"]["name"]) in objs
            else:
                assert src["secretRef"]["name"] == "pull-secrets"


def test_api_deployment_probes_port_and_graceful_shutdown() -> None:
    objs = by_kind_name(base_docs())
    dep = objs[("Deployment", "pull-api")]
    pod = _pod_spec(dep)
    (c,) = containers(dep)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 3001}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "3001"
    assert annotations["prometheus.io/path"] == "/metrics"
    # terminationGracePeriodSeconds > preStop sleep + the longest request (SHUTDOWN_GRACE_SECONDS)
    sleep = c["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    grace = int(objs[("ConfigMap", "pull-api-config")]["data"]["SHUTDOWN_GRACE_SECONDS"])
    assert grace >= 45
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1]) + grace
    keys = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for t in pod["topologySpreadConstraints"]:
        assert t["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_worker_deployment_exposes_metrics_on_9090() -> None:
    objs = by_kind_name(base_docs())
    dep = objs[("Deployment", "pull-temporal-worker")]
    (c,) = containers(dep)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 9090}
    assert c["livenessProbe"]["httpGet"]["port"] == "metrics"
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9090"
    assert env_map(c)["OTEL_SERVICE_NAME"] == "pull-temporal-worker"


def test_services_hpa_and_pdbs_select_the_right_pods() -> None:
    docs = base_docs()
    objs = by_kind_name(docs)
    pod_labels = {
        name: objs[(kind, name)]["spec"]["template"]["metadata"]["labels"]
        for kind, name in [
            ("Deployment", "pull-api"),
            ("Deployment", "pull-sockets"),
            ("Deployment", "pull-temporal-worker"),
            ("Deployment", "pull-web"),
        ]
    }

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]

    svc = objs[("Service", "pull-api")]
    assert selects(svc["spec"]["selector"]) == ["pull-api"]
    assert svc["spec"]["ports"][0]["port"] == 3001
    assert selects(objs[("Service", "pull-temporal-worker-metrics")]["spec"]["selector"]) == [
        "pull-temporal-worker"
    ]
    hpa = objs[("HorizontalPodAutoscaler", "pull-api-hpa")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "pull-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert sorted(n for d in pdbs for n in selects(d["spec"]["selector"]["matchLabels"])) == [
        "pull-api",
        "pull-sockets",
        "pull-temporal-worker",
        "pull-web",
    ]
    web = objs[("Service", "pull-web")]
    assert selects(web["spec"]["selector"]) == ["pull-web"]
    assert web["spec"]["ports"][0]["port"] == 3000


def _policies() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for d in load_docs(K8S / "network-policies.yaml")
        if d["kind"] == "NetworkPolicy"
    }


def test_network_policies_default_deny_and_allowed_flows() -> None:
    pols = _policies()
    deny = pols["default-deny-all"]
    assert deny["spec"]["podSelector"] == {}
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]

    dns = pols["allow-dns-egress"]["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}

    api_in = pols["pull-api-ingress"]["spec"]
    assert api_in["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "pull-api"}
    sources = [
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in api_in["ingress"]
        for f in rule["from"]
    ]
    assert "ingress-nginx" in sources
    assert all(p["port"] == 3001 for rule in api_in["ingress"] for p in rule["ports"])


PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}


def test_worker_egress_reaches_temporal_database_redis_and_nylas_https_only() -> None:
    pols = _policies()
    worker_pols = [
        p
        for p in pols.values()
        if "Egress" in p["spec"]["policyTypes"]
        and p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "pull-temporal-worker"
    ]
    assert len(worker_pols) == 1
    ports = {port["port"] for rule in worker_pols[0]["spec"]["egress"] for port in rule["ports"]}
    assert ports == {7233, 5432, 6379, 443}
    public = 0
    for rule in worker_pols[0]["spec"]["egress"]:
        for peer in rule["to"]:
            if "ipBlock" not in peer:
                continue
            if peer["ipBlock"]["cidr"] == "10.20.0.0/16":
                continue  # the private services range (PostgreSQL, Redis)
            # the email sync's Nylas calls: the internet on HTTPS only, never a private range
            public += 1
            assert peer["ipBlock"]["cidr"] == "0.0.0.0/0"
            assert set(peer["ipBlock"]["except"]) == PRIVATE_RANGES
            assert [(p["protocol"], p["port"]) for p in rule["ports"]] == [("TCP", 443)]
    assert public == 1
    # The only policy that selects every pod for egress is DNS.
    all_pods = [
        p for p in pols.values() if p["spec"]["podSelector"] == {} and "egress" in p["spec"]
    ]
    assert [p["metadata"]["name"] for p in all_pods] == ["allow-dns-egress"]


def test_ingress_has_tls_for_every_host_and_routes_to_the_api() -> None:
    ing = by_kind_name(base_docs())[("Ingress", "pull-api")]
    hosts = [r["host"] for r in ing["spec"]["rules"]]
    tls_hosts = [h for t in ing["spec"]["tls"] for h in t["hosts"]]
    assert hosts == tls_hosts == ["api.pull.com"]
    for path in ing["spec"]["rules"][0]["http"]["paths"]:
        # the live feeds' paths go to their own pods (test_kubernetes_sockets.py)
        name = "pull-sockets" if path["path"] in LIVE_FEED_PATHS else "pull-api"
        assert path["backend"]["service"] == {"name": name, "port": {"name": "http"}}


def _routed(paths: list[dict[str, Any]], url_path: str) -> bool:
    """Kubernetes Ingress matching: Exact, or Prefix by whole path elements."""
    for p in paths:
        rule = p["path"].rstrip("/") or "/"
        if p["pathType"] == "Exact" and url_path == p["path"]:
            return True
        if p["pathType"] == "Prefix" and (
            rule == "/" or url_path == rule or url_path.startswith(rule + "/")
        ):
            return True
    return False


def _ingresses() -> list[tuple[str, dict[str, Any]]]:
    staging = yaml.safe_load((K8S / "overlays" / "staging" / "ingress.yaml").read_text())
    return [("base", by_kind_name(base_docs())[("Ingress", "pull-api")]), ("staging", staging)]


def test_the_public_ingress_does_not_route_metrics() -> None:
    """/metrics is for Prometheus inside the cluster; every other route of the app is public
    (the dev-only Alpaca sandbox under /sandbox is not)."""
    from fastapi.routing import iter_route_contexts

    from pull.app import create_app
    from pull.exchange.kalshi import PREFIX as TRADE_API

    app = create_app()
    app_paths = {str(c.path) for c in iter_route_contexts(app.routes)} | {
        f"{TRADE_API}/portfolio/balance"
    }
    assert "/metrics" in app_paths
    for name, ing in _ingresses():
        paths = ing["spec"]["rules"][0]["http"]["paths"]
        for hidden in ("/metrics", "/metrics/", "/sandbox/alpaca/v2/account"):
            assert not _routed(paths, hidden), (name, hidden)
        for url_path in app_paths:
            if url_path.startswith(("/metrics", "/sandbox")):
                continue
            assert _routed(paths, url_path), (name, url_path)


def test_migration_job_runs_once_and_does_not_restart() -> None:
    job = by_kind_name(base_docs())[("Job", "pull-migrate")]
    assert _pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] <= 3
    assert job["spec"]["activeDeadlineSeconds"] > 0


# --- overlays ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", OVERLAYS)
def test_overlay_lists_exactly_the_base_files(env: str) -> None:
    k = yaml.safe_load((K8S / "overlays" / env / "kustomization.yaml").read_text())
    assert k["resources"] == [f"../../{f}" for f in K8S_BASE_FILES]
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert base["resources"] == K8S_BASE_FILES


@needs_kubectl
@pytest.mark.parametrize("env", OVERLAYS)
def test_rendered_overlay_validates_and_has_environment_values(env: str) -> None:
    docs = load_yaml_text(render_overlay(env, image_tag="0123abcd4567"))
    base = base_docs()
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == {
        (d["kind"], d["metadata"]["name"]) for d in base
    }
    for version in K8S_VERSIONS:
        for doc in docs:
            if doc["kind"] not in CRD_KINDS:
                validate(doc, version)
    check_external_secrets(docs, env)
    objs = by_kind_name(docs)
    shared = objs[("ConfigMap", "pull-shared-config")]["data"]
    assert shared["ENVIRONMENT"] == env
    assert shared["TEMPORAL_NAMESPACE"] == f"pull-{env}"
    for kind, name in [
        ("Deployment", "pull-api"),
        ("Deployment", "pull-sockets"),
        ("Deployment", "pull-temporal-worker"),
        ("Job", "pull-migrate"),
    ]:
        for c in containers(objs[(kind, name)]):
            assert re.fullmatch(
                rf"us-central1-docker\.pkg\.dev/pull-{env}/pull/pull-(api|temporal-worker)"
                r":0123abcd4567",
                c["image"],
            ), c["image"]
    host = "api.pull.com" if env == "production" else "api-staging.pull.com"
    ing = objs[("Ingress", "pull-api")]
    assert [r["host"] for r in ing["spec"]["rules"]] == [host]
    assert ing["spec"]["tls"][0]["hosts"] == [host]
    for sa in ("pull-api-sa", "pull-worker-sa", "pull-secrets-sa", "pull-migrate-sa"):
        gsa = objs[("ServiceAccount", sa)]["metadata"]["annotations"][
            "iam.gke.io/gcp-service-account"
        ]
        assert gsa.endswith(f"@pull-{env}.iam.gserviceaccount.com")
    for doc in docs:
        assert doc["metadata"]["labels"]["pull.com/environment"] == env
    hpa = objs[("HorizontalPodAutoscaler", "pull-temporal-worker-hpa")]["spec"]
    # Runbook sizes: staging workers 1..10, production 2..50.
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == ((2, 50) if env == "production" else (1, 10))
    worker = containers(objs[("Deployment", "pull-temporal-worker")])[0]
    if env == "production":
        assert worker["resources"]["limits"] == {"cpu": "4", "memory": "4Gi"}


@needs_kubectl
def test_staging_worker_pdb_does_not_block_drains() -> None:
    objs = by_kind_name(load_yaml_text(render_overlay("staging")))
    pdb = objs[("PodDisruptionBudget", "pull-temporal-worker-pdb")]["spec"]
    assert "minAvailable" not in pdb and pdb["maxUnavailable"] == 1


def test_the_ingress_carries_the_live_feeds() -> None:
    """WebSockets and SSE reach the API through the same Ingress, with idle timeouts longer
    than the pings (10 s) and heartbeats (15 s), and no session affinity (any pod serves any
    socket: each reads the Redis streams)."""
    for _, ing in _ingresses():
        paths = [p for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]]
        for path in ("/trade-api/ws/v2", "/api/v1/stream"):
            assert _routed(paths, path), path
    ann = by_kind_name(base_docs())[("Ingress", "pull-api")]["metadata"]["annotations"]
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    assert int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 600
    assert not any("affinity" in key for key in ann)


def test_web_deployment_probes_its_own_health_and_holds_one_secret() -> None:
    objs = by_kind_name(base_docs())
    dep = objs[("Deployment", "pull-web")]
    (c,) = containers(dep)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 3000}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "3000"
    # a client of the API only: no secretRef to the whole pull-secrets, just its own key
    assert all("secretRef" not in src for src in c["envFrom"])
    (secret,) = [e for e in c["env"] if "valueFrom" in e]
    assert secret["valueFrom"]["secretKeyRef"] == {
        "name": "pull-secrets",
        "key": "WEB_SESSION_SECRET",
    }
    data = objs[("ExternalSecret", "pull-secrets")]["spec"]["data"]
    assert "WEB_SESSION_SECRET" in {d["secretKey"] for d in data}
    config = objs[("ConfigMap", "pull-web-config")]["data"]
    assert config["WEB_API_URL"].startswith("http://pull-api.") and config["WEB_PORT"] == "3000"
    ing = objs[("Ingress", "pull-web")]
    assert [r["host"] for r in ing["spec"]["rules"]] == ["app.pull.com"]
    assert ing["spec"]["tls"][0]["hosts"] == ["app.pull.com"]
    (path,) = ing["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": "pull-web", "port": {"name": "http"}}
    pols = _policies()
    egress = pols["pull-web-egress"]["spec"]["egress"]
    assert [r["to"][0]["podSelector"]["matchLabels"] for r in egress] == [
        {"app.kubernetes.io/name": "pull-api"}
    ]
    assert pols["pull-api-from-web"]["spec"]["ingress"][0]["ports"][0]["port"] == 3001
