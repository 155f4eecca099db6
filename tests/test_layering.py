"""The layering of ARCHITECTURE.md is enforced, and the check really fails on a violation."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "metisnet"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

PURE_LAYERS = ("crypto", "mpc", "he", "verify")
IO_MODULES = {"socket", "asyncio", "ssl", "sqlite3", "selectors", "http", "urllib",
              "requests", "httpx", "web3", "subprocess", "multiprocessing"}
INSECURE_RANDOM = {"random"}


def _run_lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(src), "PATH": str(LINT_IMPORTS.parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )


def test_layering_contracts_hold_on_the_tree() -> None:
    result = _run_lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("crypto", "metisnet.node"), ("mpc", "metisnet.algorithms"), ("net", "metisnet.chain")],
)
def test_planted_violation_is_caught(tmp_path: Path, lower: str, upper: str) -> None:
    shutil.copytree(SRC, tmp_path / "src" / "metisnet")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "src" / "metisnet" / lower / "_planted.py"
    planted.write_text(f"import {upper}  # a lower layer importing an upper one\n")
    result = _run_lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert f"metisnet.{lower}._planted" in result.stdout


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _pure_files() -> list[Path]:
    return [p for layer in PURE_LAYERS for p in sorted((SRC / layer).rglob("*.py"))]


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_layers_do_no_io_and_use_no_insecure_randomness(path: Path) -> None:
    names = _imports(path)
    tops = {n.split(".")[0] for n in names}
    assert not (tops & IO_MODULES), f"{path.name} imports I/O modules {tops & IO_MODULES}"
    assert not (tops & INSECURE_RANDOM), f"{path.name} imports the non-crypto 'random'"
    assert not any(n.startswith("numpy.random") for n in names)
    text = path.read_text(encoding="utf-8")
    assert "np.random." not in text and "numpy.random" not in text


def test_no_pickle_and_no_assert_in_src() -> None:
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            assert not isinstance(node, ast.Assert), f"assert used for validation in {path}"
        tops = {n.split(".")[0] for n in _imports(path)}
        assert not (tops & {"pickle", "cPickle", "dill", "cloudpickle"}), f"pickle in {path}"
