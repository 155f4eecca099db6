"""Backend selection by URL, account derivation and error reporting on both backends."""

from __future__ import annotations

import pytest

from metisnet.chain import connect, deploy_contracts
from metisnet.chain.backend import GENESIS_BALANCE
from metisnet.errors import ChainError, ConfigError, TransactionReverted


def test_bad_url_refused() -> None:
    with pytest.raises(ConfigError, match="embedded"):
        connect("ws://127.0.0.1:1")
    with pytest.raises(ChainError, match="cannot reach"):
        connect("http://127.0.0.1:9")


def test_same_accounts_on_every_backend(chain) -> None:
    accounts = chain.accounts(20)
    assert accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    for a in accounts[:3]:
        assert chain.balance(a.address) > GENESIS_BALANCE // 2


def test_fund_and_time(chain) -> None:
    extra = chain.account(25)
    before = chain.balance(extra.address)
    chain.fund(extra.address, 10**18)
    assert chain.balance(extra.address) == before + 10**18
    t = chain.timestamp()
    chain.advance_time(500)
    assert chain.timestamp() >= t + 500


def test_revert_carries_reason_and_hash(chain) -> None:
    deployment = deploy_contracts(chain, chain.account(0))
    from metisnet.chain import NodeRegistry, Role

    reg = NodeRegistry(chain, deployment.registry, chain.account(3))
    with pytest.raises(TransactionReverted) as exc:
        reg.register(Role.DATA, b"\x01" * 32, "tls://x:1", 1, 5)
    assert exc.value.reason == "stake below minimum"
    assert exc.value.tx_hash.startswith("0x") and len(exc.value.tx_hash) == 66
    assert "register reverted: stake below minimum" in str(exc.value)
    with pytest.raises(ChainError, match="no staked nodes"):
        reg.draw(Role.COMPUTE, 1)
    with pytest.raises(ChainError, match="needs an account"):
        NodeRegistry(chain, deployment.registry).top_up(1)


def test_missing_anvil_binary_is_a_clear_error(monkeypatch, tmp_path) -> None:
    from metisnet.chain import anvil

    monkeypatch.delenv("METIS_ANVIL", raising=False)
    monkeypatch.setattr(anvil, "_RELATIVE", tmp_path / "no-such-anvil")
    with pytest.raises(ChainError, match=r"scripts/install-anvil\.sh"):
        anvil.find_anvil()


def test_public_surface() -> None:
    import metisnet.chain as chain_pkg

    assert set(chain_pkg.__all__) == {
        "DEFAULT_MNEMONIC", "HD_PATH", "Chain", "ChainParams", "Contracts", "DatasetInfo",
        "DatasetRegistry", "Deployment", "NodeInfo", "NodeRegistry", "Role", "TaskInfo",
        "TaskManager", "TaskState", "combine_seeds", "connect", "deploy_contracts",
        "derive_accounts", "draw_committee", "seed_commitment",
    }
    for name in chain_pkg.__all__:
        assert getattr(chain_pkg, name) is not None


def test_deployment_round_trips_through_json(chain) -> None:
    from metisnet.chain import Contracts, Deployment

    deployment = deploy_contracts(chain, chain.account(0))
    again = Deployment.from_json(deployment.to_json())
    assert again == deployment
    contracts = Contracts.attach(chain, again)
    assert contracts.registry.task_manager() == deployment.tasks
    assert contracts.deployment == deployment
