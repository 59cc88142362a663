"""The arrows of the layout hold: the domain stays pure and the library never needs Prefect.

import-linter ([tool.importlinter] in pyproject.toml) checks the whole graph statically; these
tests also check what really gets loaded, and that the distribution installs only the library.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import techtouch.domain

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "techtouch"
# Libraries of the adapters and entry points; loading one of them from the domain is a leak.
NOT_IN_THE_DOMAIN = ("sqlalchemy", "rich", "fastapi", "prefect", "typer", "jinja2")
# The Prefect side of the project: it imports the library, never the other way round.
ORCHESTRATION = ("prefect", "flows", "tasks")


def domain_modules() -> list[str]:
    found = [
        info.name
        for info in pkgutil.walk_packages(techtouch.domain.__path__, prefix="techtouch.domain.")
        if not info.name.split(".")[-1].startswith("_")
    ]
    assert len(found) > 5, found
    return sorted(found)


def test_importing_the_whole_domain_loads_no_adapter_or_entry_point_library() -> None:
    """A fresh interpreter: what this test process already imported must not hide a leak."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {domain_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    leaked = sorted(set(loaded) & set(NOT_IN_THE_DOMAIN))
    assert leaked == [], f"importing techtouch.domain loads {leaked}"


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` names, anywhere in the file (lazy ones too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_library_module_imports_prefect_flows_or_tasks() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in ORCHESTRATION
        )
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert offenders == {}, f"the library must run without Prefect: {offenders}"


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), f"{lint_imports} missing: pip install -e '.[dev]'"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_distribution_installs_only_the_library() -> None:
    """flows/ and tasks/ would otherwise become top-level packages of every environment that
    installs techtouch, shadowing any other `tasks` or `flows` there."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    assert find.get("include") == ["techtouch*"], find
    assert not set(find.get("where", ["."])) - {"."}, find
