"""GitHub Actions workflows: valid against the workflow JSON schema, with the runbook's triggers,
gates, Cloud Run flags, Kubernetes alternative and Slack notifications."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import WORKFLOWS


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True)
    return doc


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in job["steps"])


def check_jsonschema() -> str | None:
    exe = Path(sys.executable).parent / "check-jsonschema"
    return str(exe) if exe.exists() else shutil.which("check-jsonschema")


@pytest.mark.skipif(check_jsonschema() is None, reason="check-jsonschema is not installed")
def test_workflows_validate_against_the_github_workflow_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 3
    exe = check_jsonschema()
    assert exe is not None
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_lint_types_contracts_tests_and_builds_both_images() -> None:
    ci = load("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    jobs = ci["jobs"]
    text = {name: steps_text(job) for name, job in jobs.items()}
    assert "uv run ruff check ." in text["lint"]
    assert "uv run mypy" in text["types"]
    assert "uv run lint-imports" in text["import-contracts"]
    assert "make test" in text["test"]
    services = jobs["test"]["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "prometheus" in text["test"]  # promtool for the alert tests
    assert jobs["docker"]["strategy"]["matrix"]["image"] == ["api", "worker"]
    build = next(
        s for s in jobs["docker"]["steps"] if "docker/build-push-action" in s.get("uses", "")
    )
    assert build["with"]["file"] == "deploy/docker/${{ matrix.image }}.Dockerfile"


@pytest.mark.parametrize(
    ("name", "service", "flags"),
    [
        (
            "deploy-api.yml",
            "pull-api",
            ["--allow-unauthenticated", "--port 3001", "--timeout 60"],
        ),
        (
            "deploy-workers.yml",
            "pull-temporal-worker",
            ["--no-allow-unauthenticated", "--timeout 3600", "--no-cpu-throttling"],
        ),
    ],
)
def test_deploy_workflow(name: str, service: str, flags: list[str]) -> None:
    wf = load(name)
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["type"] == "choice"
    assert inputs["environment"]["options"] == ["staging", "production"]
    assert inputs["environment"]["default"] == "staging"
    assert inputs["target"]["options"] == ["cloud-run", "kubernetes"]
    stem = name.removesuffix(".yml")
    assert wf["run-name"].startswith(f"{stem} ${{{{ inputs.environment || 'staging' }}}}")
    jobs = wf["jobs"]

    # Production needs a successful staging deploy of the same commit.
    gate = jobs["staging-gate"]
    assert "== 'production'" in gate["if"]
    gate_script = steps_text(gate)
    assert f"--workflow {name}" in gate_script
    assert '--commit "$GITHUB_SHA"' in gate_script
    assert "--status success" in gate_script
    assert f'startswith("{stem} staging")' in gate_script
    assert "exit 1" in gate_script
    assert wf["permissions"]["actions"] == "read"
    for job in ("build", "deploy-cloud-run", "deploy-kubernetes"):
        needs = jobs[job]["needs"]
        needs = [needs] if isinstance(needs, str) else needs
        assert "staging-gate" in needs, job
        assert "needs.staging-gate.result != 'failure'" in jobs["build"]["if"]

    # Cloud Run with the runbook's flags, then rollback on failure.
    cloud_run = steps_text(jobs["deploy-cloud-run"])
    assert f'echo "SERVICE={service}"' in cloud_run  # production name, as in the runbook
    assert f'echo "SERVICE={service}-staging"' in cloud_run
    for flag in [
        "gcloud run deploy",
        "--image",
        "--region",
        "--platform managed",
        '--memory "$MEMORY"',
        '--cpu "$CPU"',
        '--min-instances "$MIN"',
        '--max-instances "$MAX"',
        "--set-env-vars",
        "ENVIRONMENT=${ENVIRONMENT}",
        "TEMPORAL_NAMESPACE=pull-${ENVIRONMENT}",
        '--set-secrets "$SECRETS"',
        *flags,
    ]:
        assert flag in cloud_run, flag
    assert "gcloud run services update-traffic" in cloud_run
    rollback = jobs["deploy-cloud-run"]["steps"][-1]
    assert "failure()" in rollback["if"]

    # Kubernetes alternative.
    k8s = jobs["deploy-kubernetes"]
    assert "inputs.target == 'kubernetes'" in k8s["if"]
    assert "kubectl" in steps_text(k8s) or "deploy/ops.mk" in steps_text(k8s)
    assert "rollout undo" in steps_text(k8s)

    # Slack, whatever happened.
    notify = jobs["notify"]
    assert notify["if"] == "${{ always() }}"
    assert set(notify["needs"]) == {
        "staging-gate",
        "build",
        "deploy-cloud-run",
        "deploy-kubernetes",
    }
    step = notify["steps"][0]
    assert step["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    assert '"$SLACK_WEBHOOK_URL"' in step["run"]


def test_api_deploy_migrates_before_rolling_and_smoke_tests_after() -> None:
    steps = load("deploy-api.yml")["jobs"]["deploy-cloud-run"]["steps"]
    names = [s.get("name", "") for s in steps]
    migrate = next(i for i, n in enumerate(names) if "migrations" in n)
    deploy = next(i for i, s in enumerate(steps) if "gcloud run deploy" in s.get("run", ""))
    smoke = next(i for i, s in enumerate(steps) if "pull smoke" in s.get("run", ""))
    assert migrate < deploy < smoke
    assert "--args migrate" in steps[migrate]["run"]
    assert "--wait" in steps[migrate]["run"]
    k8s = steps_text(load("deploy-api.yml")["jobs"]["deploy-kubernetes"])
    assert "k8s-apply" in k8s  # ops.mk runs the migration Job before the API
