"""The layering contract (pyproject.toml [tool.importlinter]) holds, and would catch an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "transforms", "expectations", "synthetic", "stages", "flows", "kr_reports")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess:
    # grimp finds the packages on sys.path: the tree's own copy, not the installed one.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def _copy_of_the_code(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.java"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def test_the_code_keeps_its_layers():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    tree = _copy_of_the_code(tmp_path)
    assert _lint_imports(tree).returncode == 0  # the copy alone is clean
    config = tree / "core" / "config" / "reports.py"
    config.write_text(config.read_text() + "\nfrom stages import catalog  # noqa\n")
    result = _lint_imports(tree)
    assert result.returncode == 1
    assert "core is not allowed to import stages" in result.stdout
    assert "core.config.reports -> stages.catalog" in result.stdout


def test_spark_in_the_core_breaks_the_contract(tmp_path):
    tree = _copy_of_the_code(tmp_path)
    ledger = tree / "core" / "ledger" / "__init__.py"
    ledger.write_text(ledger.read_text() + "\nimport pyspark  # noqa\n")
    result = _lint_imports(tree)
    assert result.returncode == 1
    assert "core.ledger -> pyspark" in result.stdout
