"""checkov static scan of the Dockerfiles, Terraform, Kubernetes base and rendered overlays.

checkov is not a project dependency (its own pins clash with the application's); the test runs
`checkov` from PATH, else `uvx --from checkov==3.3.30 checkov` (uv fetches it from PyPI once and
caches it), and skips, saying why, when neither is available. Findings must be fixed, or skipped
with a written justification in deploy/.checkov.yaml.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import (
    DEPLOY,
    K8S,
    K8S_BASE_FILES,
    OVERLAYS,
    REPO,
    kubectl,
    render_overlay,
)

CHECKOV_VERSION = "3.3.30"


def checkov_cmd() -> list[str] | None:
    if shutil.which("checkov"):
        return ["checkov"]
    if shutil.which("uvx"):
        return ["uvx", "--quiet", "--from", f"checkov=={CHECKOV_VERSION}", "checkov"]
    return None


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    cmd = checkov_cmd()
    if cmd is None:
        pytest.skip("neither checkov nor uvx is installed")
    # checkov ignores -f files when -d is also given: each input gets a directory of its own.
    docker = tmp_path_factory.mktemp("docker")
    for image in ("api", "worker"):
        shutil.copy(DEPLOY / "docker" / f"{image}.Dockerfile", docker / f"{image}.Dockerfile")
    k8s = tmp_path_factory.mktemp("k8s")
    for name in K8S_BASE_FILES:
        shutil.copy(K8S / name, k8s / name)
    if kubectl() is not None:
        for env in OVERLAYS:
            (k8s / f"rendered-{env}.yaml").write_text(render_overlay(env, image_tag="0123abcd4567"))
    proc = subprocess.run(
        [
            *cmd,
            "--config-file",
            str(DEPLOY / ".checkov.yaml"),
            "-d",
            str(DEPLOY / "terraform"),
            "-d",
            str(k8s),
            "-d",
            str(docker),
            "-o",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode not in (0, 1):
        if "Failed to download" in proc.stderr or "No solution found" in proc.stderr:
            pytest.skip(f"checkov could not be installed: {proc.stderr[-300:]}")
        raise AssertionError(proc.stderr[-3000:])
    # checkov prints one JSON document per framework, sometimes several in a row.
    reports: list[dict[str, Any]] = []
    decoder, text, pos = json.JSONDecoder(), proc.stdout, 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        doc, pos = decoder.raw_decode(text, pos)
        reports.extend(doc if isinstance(doc, list) else [doc])
    return reports


def test_every_framework_was_scanned(scan: list[dict[str, Any]]) -> None:
    passed = {r["check_type"]: r["summary"]["passed"] for r in scan}
    assert passed.get("terraform", 0) > 50
    assert passed.get("kubernetes", 0) > 100
    assert passed.get("dockerfile", 0) > 10


def test_no_unjustified_findings(scan: list[dict[str, Any]]) -> None:
    failed = [
        f"{r['check_type']}: {c['check_id']} {c['resource']} ({c['file_path']})"
        for r in scan
        for c in r["results"].get("failed_checks", [])
    ]
    assert not failed, "fix these or justify them in deploy/.checkov.yaml:\n" + "\n".join(failed)


def test_every_skip_is_justified() -> None:
    lines = (DEPLOY / ".checkov.yaml").read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV")]
    assert skips
    for i in skips:
        assert lines[i - 1].strip().startswith("#"), f"{lines[i].strip()} has no justification"


def test_paths_exist() -> None:
    assert all(Path(K8S / n).exists() for n in K8S_BASE_FILES)
