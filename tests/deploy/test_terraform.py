"""Terraform: every file parses (python-hcl2) and carries the runbook's settings.

`terraform validate` needs the Google provider, which cannot be downloaded here; where a
terraform binary exists, `terraform fmt -check` still runs (it needs no provider).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.deploy.helpers import TERRAFORM


def _clean(value: Any) -> Any:
    """python-hcl2 keeps HCL quoting ('"x"') and block markers; strip both."""
    if isinstance(value, dict):
        return {
            _clean(k): _clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        data: dict[str, Any] = _clean(hcl2.load(f))
    return data


def tf_files() -> list[Path]:
    return sorted(TERRAFORM.glob("*.tf"))


def resources() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in tf_files():
        for block in load(path).get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    out[f"{rtype}.{name}"] = body
    return out


def variables() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for block in load(TERRAFORM / "variables.tf").get("variable", []):
        out.update(block)
    return out


def test_the_four_files_exist_and_parse() -> None:
    names = {p.name for p in tf_files()}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= names
    for path in tf_files():
        assert load(path), path.name


def test_provider_and_backend_are_pinned() -> None:
    versions = load(TERRAFORM / "versions.tf")
    tf = versions["terraform"][0]
    google = tf["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert google["version"].startswith("~>")
    assert "gcs" in tf["backend"][0]


def test_runbook_resources_exist() -> None:
    res = resources()
    for address in [
        "google_sql_database_instance.main",
        "google_redis_instance.main",
        "google_cloud_run_v2_service.api",
        "google_cloud_run_v2_service.worker",
        "google_kms_key_ring.main",
        "google_kms_crypto_key.main",
        "google_storage_bucket.backups",
        "google_vpc_access_connector.main",
        "google_secret_manager_secret.app",
        "google_service_account.api",
        "google_service_account.worker",
        "google_service_account.secrets",
        "google_secret_manager_secret_iam_member.access",
        "google_project_iam_member.api_sql_client",
    ]:
        assert address in res, address


def test_cloud_sql_matches_the_runbook() -> None:
    sql = resources()["google_sql_database_instance.main"]
    assert sql["database_version"] == "POSTGRES_16"
    settings = sql["settings"][0]
    assert settings["availability_type"] == "REGIONAL"
    assert settings["disk_type"] == "PD_SSD"
    assert settings["disk_autoresize"] is True
    backup = settings["backup_configuration"][0]
    assert backup["enabled"] is True
    assert backup["start_time"] == "03:00"
    assert backup["point_in_time_recovery_enabled"] is True
    assert backup["transaction_log_retention_days"] == 7
    ip = settings["ip_configuration"][0]
    assert ip["ipv4_enabled"] is False
    assert ip["ssl_mode"] == "ENCRYPTED_ONLY"


def test_redis_keeps_rdb_snapshots_every_12_hours_with_auth_and_tls() -> None:
    redis = resources()["google_redis_instance.main"]
    assert redis["persistence_config"][0] == {
        "persistence_mode": "RDB",
        "rdb_snapshot_period": "TWELVE_HOURS",
    }
    assert redis["auth_enabled"] is True
    assert redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    assert redis["connect_mode"] == "PRIVATE_SERVICE_ACCESS"


def _container(service: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = service["template"][0]["containers"][0]
    return c


def test_cloud_run_services_ports_probes_and_secrets() -> None:
    res = resources()
    api, worker = res["google_cloud_run_v2_service.api"], res["google_cloud_run_v2_service.worker"]
    assert _container(api)["ports"][0]["container_port"] == 3001
    assert _container(worker)["ports"][0]["container_port"] == 9090
    assert _container(api)["liveness_probe"][0]["http_get"][0]["path"] == "/health/live"
    assert worker["template"][0]["timeout"] == "3600s"
    assert _container(worker)["resources"][0]["cpu_idle"] is False
    assert worker["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    for svc in (api, worker):
        assert "vpc_access" in svc["template"][0]
        assert "${google_vpc_access_connector.main.id}" in str(svc["template"][0]["vpc_access"])
        # The deploy workflows roll images; Terraform must not fight them.
        assert "template[0].containers[0].image" in str(svc["lifecycle"])
        secret_env = _container(svc)["dynamic"][0]["env"]
        assert secret_env["for_each"] == "${local.secrets}"


def test_one_secret_manager_secret_per_application_secret() -> None:
    main = load(TERRAFORM / "main.tf")
    secrets: dict[str, str] = {}
    for block in main["locals"]:
        if "secrets" in block:
            secrets = block["secrets"]
    assert set(secrets) == {
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
        # Cloud Run only: the API is public there, so /metrics needs the scrape token
        "METRICS_TOKEN",
        "NYLAS_API_KEY",
        "NYLAS_CLIENT_ID",
        "NYLAS_WEBHOOK_SECRET",
        "ANTHROPIC_API_KEY",
    }
    # Same names the ExternalSecret reads: pull-<env>-<lower-kebab of the variable>.
    for env_var, suffix in secrets.items():
        assert suffix == env_var.lower().replace("_", "-")
    secret = resources()["google_secret_manager_secret.app"]
    assert secret["for_each"] == "${local.secrets}"
    assert secret["secret_id"] == "${local.name_prefix}-${each.value}"


def test_backups_bucket_and_keys() -> None:
    res = resources()
    bucket = res["google_storage_bucket.backups"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True
    assert bucket["encryption"][0]["default_kms_key_name"] == "${google_kms_crypto_key.main.id}"
    key = res["google_kms_crypto_key.main"]
    assert key["key_ring"] == "${google_kms_key_ring.main.id}"
    assert key["rotation_period"] == "${var.kms_rotation_period}"
    assert variables()["kms_rotation_period"]["default"] == "7776000s"  # 90 days


def test_every_variable_used_is_declared_and_described() -> None:
    declared = variables()
    used: set[str] = set()
    for path in tf_files():
        used |= set(re.findall(r"\bvar\.([a-z0-9_]+)", path.read_text()))
    assert used <= set(declared), used - set(declared)
    for name, body in declared.items():
        assert body.get("description"), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"


@pytest.mark.parametrize("env", ["staging", "production"])
def test_tfvars_set_only_declared_variables_and_every_required_one(env: str) -> None:
    tfvars = load(TERRAFORM / "environments" / f"{env}.tfvars")
    declared = variables()
    assert set(tfvars) <= set(declared), set(tfvars) - set(declared)
    required = {name for name, body in declared.items() if "default" not in body}
    assert required <= set(tfvars), required - set(tfvars)
    assert tfvars["environment"] == env
    assert tfvars["project_id"] == f"pull-{env}"
    assert tfvars["temporal_namespace"] == f"pull-{env}"
    # Runbook worker sizes: staging 2 CPU/2Gi/1..10, production 4 CPU/4Gi/2..50.
    sizes = (
        tfvars["worker_cpu"],
        tfvars["worker_memory"],
        tfvars["worker_min_instances"],
        tfvars["worker_max_instances"],
    )
    assert sizes == (("4", "4Gi", 2, 50) if env == "production" else ("2", "2Gi", 1, 10))
    if env == "production":
        assert tfvars["db_deletion_protection"] is True
        assert tfvars["redis_tier"] == "STANDARD_HA"


def test_outputs_reference_existing_resources() -> None:
    res = resources()
    outputs = load(TERRAFORM / "outputs.tf")["output"]
    assert outputs
    for block in outputs:
        for name, body in block.items():
            assert body.get("description"), name
            for ref in re.findall(r"\b(google_[a-z0-9_]+\.[a-z0-9_]+)", str(body["value"])):
                assert ref in res, f"output {name} refers to missing {ref}"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_is_clean() -> None:
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cloud_run_deploys_mount_every_terraform_secret() -> None:
    """`gcloud run deploy --set-secrets` replaces the service's whole secret list, so each
    deploy workflow (and the runbook's command) must name every secret Terraform mounts, or a
    deploy silently drops one (the Matrix settings, which a deployed process requires, and the
    Nylas keys were missing)."""
    main = load(TERRAFORM / "main.tf")
    secrets: dict[str, str] = next(b["secrets"] for b in main["locals"] if "secrets" in b)
    repo = TERRAFORM.parents[1]
    for wf in ("deploy-api.yml", "deploy-workers.yml"):
        text = (repo / ".github" / "workflows" / wf).read_text()
        found = re.search(r'echo "SECRETS=([^"]+)"', text)
        assert found is not None, wf
        pairs = dict(item.split("=", 1) for item in found.group(1).split(","))
        assert pairs == {k: f"${{p}}-{v}:latest" for k, v in secrets.items()}, wf
    runbook = (repo / "docs" / "runbook.md").read_text()
    found = re.search(r'--set-secrets "([^"]+)"', runbook)
    assert found is not None
    pairs = dict(item.split("=", 1) for item in found.group(1).split(","))
    assert pairs == {k: f"pull-production-{v}:latest" for k, v in secrets.items()}


def test_web_service_gets_only_the_api_url_and_its_cookie_key() -> None:
    """`pull web` is a client of the API: its Cloud Run service has port 3000 and probes, its
    own Secret Manager secret (the ESO path of deploy/kubernetes reads the same id), and none of
    the API's secrets or network access."""
    res = resources()
    web = res["google_cloud_run_v2_service.web"]
    container = _container(web)
    assert container["ports"][0]["container_port"] == 3000
    assert container["liveness_probe"][0]["http_get"][0]["path"] == "/health/live"
    env = {e["name"]: e for e in container["env"]}
    assert env["WEB_API_URL"]["value"] == "${google_cloud_run_v2_service.api.uri}"
    ref = env["WEB_SESSION_SECRET"]["value_source"][0]["secret_key_ref"][0]
    assert ref["secret"] == "${google_secret_manager_secret.web_session.secret_id}"
    assert "dynamic" not in container  # none of local.secrets
    assert "vpc_access" not in web["template"][0]
    assert "template[0].containers[0].image" in str(web["lifecycle"])
    secret = res["google_secret_manager_secret.web_session"]
    assert secret["secret_id"] == "${local.name_prefix}-web-session-secret"
    eso = (TERRAFORM.parent / "kubernetes" / "external-secrets.yaml").read_text()
    assert "pull-production-web-session-secret" in eso
    readers = res["google_secret_manager_secret_iam_member.web_session"]["for_each"]
    assert "google_service_account.web.email" in str(readers)
    assert "google_service_account.api" not in str(readers)
