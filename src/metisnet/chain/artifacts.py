"""Compiled contract artifacts: loading the checked-in JSON, and regenerating it from source.

The Vyper sources live in ``contracts/``; ``scripts/compile_contracts.py`` compiles them with
the pinned compiler (a ``dev`` extra) into ``artifacts/<Name>.json`` holding the ABI, the
deployment bytecode and the SHA-256 of the source. Run time needs only the JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from metisnet.errors import ChainError, DependencyMissing

__all__ = [
    "ARTIFACT_DIR",
    "CONTRACTS",
    "CONTRACT_DIR",
    "EVM_VERSION",
    "Artifact",
    "compile_contract",
    "load_artifact",
    "write_artifacts",
]

CONTRACT_DIR = Path(__file__).parent / "contracts"
ARTIFACT_DIR = Path(__file__).parent / "artifacts"
CONTRACTS = ("NodeRegistry", "DatasetRegistry", "TaskManager")
EVM_VERSION = "shanghai"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: its ABI and deployment bytecode."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str

    def to_json(self, source_sha256: str, compiler: str) -> str:
        doc = {
            "contract_name": self.name,
            "compiler": compiler,
            "evm_version": EVM_VERSION,
            "source_sha256": source_sha256,
            "abi": self.abi,
            "bytecode": self.bytecode,
        }
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"


@cache
def load_artifact(name: str) -> Artifact:
    """Read the checked-in artifact of contract ``name``."""
    path = ARTIFACT_DIR / f"{name}.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ChainError(
            f"contract artifact {path} is missing; run scripts/compile_contracts.py"
        ) from None
    return Artifact(name=doc["contract_name"], abi=doc["abi"], bytecode=doc["bytecode"])


def _source(name: str) -> str:
    return (CONTRACT_DIR / f"{name}.vy").read_text()


def compile_contract(name: str) -> tuple[str, str]:
    """Compile ``contracts/<name>.vy``; returns (artifact JSON text, compiler version).

    Needs the ``vyper`` compiler from the ``dev`` extra.
    """
    try:
        import vyper
    except ImportError:
        raise DependencyMissing("vyper", "dev") from None
    source = _source(name)
    out = vyper.compile_code(
        source, output_formats=["abi", "bytecode"], contract_path=f"{name}.vy"
    )
    compiler = f"vyper {vyper.__version__}"
    artifact = Artifact(name=name, abi=out["abi"], bytecode=out["bytecode"])
    digest = hashlib.sha256(source.encode()).hexdigest()
    return artifact.to_json(digest, compiler), compiler


def write_artifacts(directory: Path = ARTIFACT_DIR) -> list[Path]:
    """Compile every contract and write its artifact into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CONTRACTS:
        text, _ = compile_contract(name)
        path = directory / f"{name}.json"
        path.write_text(text)
        written.append(path)
    load_artifact.cache_clear()
    return written
