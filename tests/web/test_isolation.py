"""The web app is a client of the API: no import of any other part of `pull`, ever."""

from __future__ import annotations

import ast
from pathlib import Path

import pull.web

WEB = Path(pull.web.__file__).parent


def test_the_web_package_imports_nothing_of_pull_but_itself() -> None:
    offenders = []
    for path in WEB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if (name == "pull" or name.startswith("pull.")) and not (
                    name == "pull.web" or name.startswith("pull.web.")
                ):
                    offenders.append(f"{path.relative_to(WEB)}: {name}")
    assert not offenders, offenders
    assert len(list(WEB.rglob("*.py"))) > 10  # the walk saw the package
