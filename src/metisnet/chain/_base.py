"""The shared part of the typed contract clients: binding, sending, decoding events."""

from __future__ import annotations

from typing import Any, Self

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from metisnet.chain.artifacts import load_artifact
from metisnet.chain.backend import DEFAULT_GAS, Chain
from metisnet.errors import ChainError
from metisnet.types import Address

__all__ = ["ContractClient", "bytes32"]


def bytes32(value: bytes, what: str) -> bytes:
    """``value`` checked to be exactly 32 bytes."""
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ChainError(f"{what} must be 32 bytes")
    return bytes(value)


class ContractClient:
    """A deployed contract bound to the account that signs its transactions."""

    ARTIFACT: str = ""

    def __init__(self, chain: Chain, address: str, account: LocalAccount | None = None) -> None:
        self.chain = chain
        checksummed = Web3.to_checksum_address(address)
        self.address = Address(checksummed)
        self.account = account
        #: receipt of the last transaction this client sent (for gas and events)
        self.last_receipt: TxReceipt | None = None
        artifact = load_artifact(self.ARTIFACT)
        self._contract: Contract = chain.w3.eth.contract(address=checksummed, abi=artifact.abi)

    def using(self, account: LocalAccount) -> Self:
        """The same contract, with transactions signed by ``account``."""
        return type(self)(self.chain, self.address, account)

    @property
    def sender(self) -> Address:
        if self.account is None:
            raise ChainError(f"{type(self).__name__} has no account; bind one with using()")
        return Address(self.account.address)

    def _send(self, name: str, *args: Any, value: int = 0, gas: int = DEFAULT_GAS) -> TxReceipt:
        if self.account is None:
            raise ChainError(f"{type(self).__name__}.{name} needs an account; use using()")
        fn = getattr(self._contract.functions, name)(*args)
        self.last_receipt = None
        self.last_receipt = self.chain.transact(fn, self.account, value=value, gas=gas)
        return self.last_receipt

    def _call(self, name: str, *args: Any) -> Any:
        return self.chain.call(getattr(self._contract.functions, name)(*args))

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        """The ``name`` events this contract emitted in ``receipt`` (arguments only)."""
        event = getattr(self._contract.events, name)()
        return [dict(log["args"]) for log in event.process_receipt(receipt, errors=DISCARD)]
