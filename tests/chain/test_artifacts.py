"""The checked-in artifacts are what the sources compile to with the pinned compiler."""

from __future__ import annotations

import json

import pytest

from metisnet.chain.artifacts import ARTIFACT_DIR, CONTRACTS, compile_contract


@pytest.mark.parametrize("name", CONTRACTS)
def test_artifact_is_up_to_date(name: str) -> None:
    import vyper  # noqa: F401  (dev extra; the suite needs it to compile the contracts)
    fresh, compiler = compile_contract(name)
    checked_in = (ARTIFACT_DIR / f"{name}.json").read_text()
    assert json.loads(checked_in) == json.loads(fresh), (
        f"{name}.json is stale: run .venv/bin/python scripts/compile_contracts.py"
    )
    doc = json.loads(checked_in)
    assert doc["evm_version"] == "shanghai" and doc["compiler"] == compiler


def test_runtime_code_fits_the_contract_size_limit() -> None:
    from metisnet.chain.artifacts import load_artifact

    for name in CONTRACTS:
        # deployment bytecode bounds the runtime code from above; EIP-170 limit 24576 bytes
        assert len(bytes.fromhex(load_artifact(name).bytecode.removeprefix("0x"))) < 24_576
