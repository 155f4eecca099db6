"""Chain backends chosen by one URL, and the one place transactions are signed and sent.

``connect("embedded")`` runs py-evm in process (eth-tester behind web3's
EthereumTesterProvider); ``connect("http://127.0.0.1:8545")`` talks JSON-RPC to any Ethereum
node (anvil for the local devnet). Either way the local accounts are derived from one
mnemonic on the HD path ``m/44'/60'/0'/0/i``, the path anvil and most wallets use, so the
same mnemonic names the same accounts on every backend.

Every transaction is signed locally, sent with an explicit gas limit (estimation costs about
three executions on the embedded chain), and its receipt's ``status`` is checked: a mined
revert raises :class:`~metisnet.errors.TransactionReverted` carrying the revert reason,
recovered by replaying the call on the parent block.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from metisnet.errors import ChainError, ConfigError, TransactionReverted
from metisnet.types import Address, Wei

__all__ = [
    "DEFAULT_GAS",
    "DEFAULT_MNEMONIC",
    "HD_PATH",
    "Chain",
    "connect",
    "derive_accounts",
]

#: anvil's and hardhat's well-known development mnemonic: for local networks only.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
HD_PATH = "m/44'/60'/0'/0"
#: Gas limit sent with every transaction unless a call passes its own.
DEFAULT_GAS = 3_000_000
#: Balance of every genesis account of the embedded chain (anvil's default too).
GENESIS_BALANCE = Wei(10_000 * 10**18)

_REASON = re.compile(r"execution reverted:?\s*(.*)", re.DOTALL)


def derive_accounts(mnemonic: str, count: int, start: int = 0) -> list[LocalAccount]:
    """The accounts ``m/44'/60'/0'/0/i`` for ``i`` in ``[start, start + count)``."""
    seed = seed_from_mnemonic(mnemonic, "")
    return [
        Account.from_key(key_from_seed(seed, f"{HD_PATH}/{i}")) for i in range(start, start + count)
    ]


def _revert_reason(exc: BaseException) -> str:
    """The revert reason inside an exception raised by a reverting call, best effort."""
    for arg in (getattr(exc, "message", None), *getattr(exc, "args", ()), str(exc)):
        if isinstance(arg, str):
            m = _REASON.search(arg)
            if m:
                return m.group(1).strip().strip("'\"") or "reverted without a reason"
    return str(exc) or type(exc).__name__


@dataclass
class Chain:
    """A web3 connection plus the local accounts derived from one mnemonic.

    Build it with :func:`connect`. ``account(i)`` is the i-th derived account; ``transact``
    sends a contract call signed by an account and returns the successful receipt.
    """

    w3: Web3
    url: str
    mnemonic: str
    chain_id: int
    _seed: bytes = field(repr=False, default=b"")
    _accounts: dict[int, LocalAccount] = field(default_factory=dict, repr=False)
    _tester: Any = field(default=None, repr=False)
    # one transaction at a time per Chain: the nonce is read, then used; py-evm is not
    # thread-safe either. Threads of one process may share a Chain.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # ------------------------------------------------------------------ accounts
    @property
    def lock(self) -> threading.RLock:
        """The lock every call on this chain connection takes (re-entrant): hold it to
        make several reads in a row from one thread without another thread's transaction
        landing in between."""
        return self._lock

    @property
    def embedded(self) -> bool:
        return self._tester is not None

    def account(self, index: int) -> LocalAccount:
        """The derived account ``m/44'/60'/0'/0/index``."""
        if index < 0:
            raise ValueError("account index must be non-negative")
        acct = self._accounts.get(index)
        if acct is None:
            acct = Account.from_key(key_from_seed(self._seed, f"{HD_PATH}/{index}"))
            self._accounts[index] = acct
        return acct

    def accounts(self, count: int, start: int = 0) -> list[LocalAccount]:
        return [self.account(i) for i in range(start, start + count)]

    def balance(self, address: str) -> Wei:
        with self._lock:
            return Wei(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def fund(self, address: str, amount: Wei) -> None:
        """Send ``amount`` wei to ``address`` from account 0 (the devnet faucet)."""
        faucet = self.account(0)
        with self._lock:
            self._fund(faucet, address, amount)

    def _fund(self, faucet: LocalAccount, address: str, amount: Wei) -> None:
        tx = {
            "to": Web3.to_checksum_address(address),
            "value": amount,
            "gas": 21_000,
            **self._fee_fields(),
            "nonce": self.w3.eth.get_transaction_count(faucet.address, "pending"),
            "chainId": self.chain_id,
        }
        self._send_signed(faucet, tx, "fund")

    def ensure_funded(self, addresses: list[str], minimum: Wei) -> None:
        """Top up every address below ``minimum`` to ``minimum`` from the faucet."""
        for a in addresses:
            have = self.balance(a)
            if have < minimum:
                self.fund(a, Wei(minimum - have))

    # ------------------------------------------------------------------ time
    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        with self._lock:
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance_time(self, seconds: int) -> None:
        """Mine a block ``seconds`` later than the latest one (devnets only)."""
        with self._lock:
            self._advance_time(seconds)

    def _advance_time(self, seconds: int) -> None:
        if self._tester is not None:
            # time_travel stamps the block it mines one second early; the next one is on time
            self._tester.time_travel(self.timestamp() + seconds)
            self._tester.mine_blocks(1)
            return
        self._rpc("evm_increaseTime", [seconds])
        self._rpc("evm_mine", [])

    def _rpc(self, method: str, params: list[Any]) -> Any:
        resp = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in resp:
            raise ChainError(f"{method} failed on {self.url}: {resp['error']}")
        return resp.get("result")

    # ------------------------------------------------------------------ transactions
    def _fee_fields(self) -> dict[str, int]:
        """EIP-1559 fees: a 1 gwei tip and room for the base fee to double.

        (Paying a multiple of ``eth_gasPrice`` instead feeds back into nodes whose price
        oracle follows recent tips, such as anvil, and the price grows without bound.)
        """
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tip = 10**9
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def deploy(
        self, abi: list[dict[str, Any]], bytecode: str, sender: LocalAccount, *args: Any,
        gas: int = 6_000_000,
    ) -> tuple[Address, TxReceipt]:
        """Deploy a contract; returns its address and the receipt."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        with self._lock:
            tx: Any = factory.constructor(*args).build_transaction(
                self._tx_fields(sender, 0, gas))
            receipt = self._send_signed(sender, dict(tx), "deploy")
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError("deployment receipt has no contract address")
        return Address(address), receipt

    def transact(
        self, fn: ContractFunction, sender: LocalAccount, *, value: int = 0,
        gas: int = DEFAULT_GAS,
    ) -> TxReceipt:
        """Sign and send ``fn`` from ``sender``; the receipt of a successful transaction.

        Raises :class:`TransactionReverted` (with the contract's reason) when the
        transaction was mined with status 0, :class:`ChainError` when the node refused it.
        """
        with self._lock:
            tx: Any = fn.build_transaction(self._tx_fields(sender, value, gas))
            return self._send_signed(sender, dict(tx), fn.fn_name)

    def call(self, fn: ContractFunction) -> Any:
        """Evaluate a view function; a revert raises :class:`ChainError` with the reason."""
        try:
            # an explicit sender spares the embedded provider from listing its accounts
            with self._lock:
                return fn.call({"from": self.account(0).address})
        except Exception as exc:
            raise ChainError(f"{fn.fn_name} failed: {_revert_reason(exc)}") from None

    def _tx_fields(self, sender: LocalAccount, value: int, gas: int) -> Any:
        return {
            "from": sender.address,
            "value": value,
            "gas": gas,
            **self._fee_fields(),
            "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": self.chain_id,
        }

    def _send_signed(self, sender: LocalAccount, tx: dict[str, Any], label: str) -> TxReceipt:
        signed = sender.sign_transaction(tx)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=60, poll_latency=0.01
            )
        except Exception as exc:
            raise ChainError(f"{label}: the node refused the transaction: {exc}") from None
        if receipt["status"] != 1:
            reason = self._replay(tx, int(receipt["blockNumber"]))
            raise TransactionReverted(
                f"{label} reverted: {reason}", reason=reason, tx_hash=tx_hash.to_0x_hex()
            )
        return receipt

    def _replay(self, tx: dict[str, Any], block_number: int) -> str:
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        try:
            self.w3.eth.call(call, block_number - 1)  # type: ignore[arg-type]
        except Exception as exc:
            return _revert_reason(exc)
        return "reverted (reason not recovered)"

    def close(self) -> None:
        """Release the connection (nothing to do for JSON-RPC; drops the embedded chain)."""
        self._tester = None


def connect(url: str, *, mnemonic: str = DEFAULT_MNEMONIC, accounts: int = 20) -> Chain:
    """Connect to the chain named by ``url``.

    ``"embedded"`` starts an in-process py-evm chain whose genesis funds the first
    ``accounts`` derived accounts; ``http://`` / ``https://`` URLs reach a JSON-RPC node,
    where those accounts are expected to be funded already (anvil funds 20 by default).
    """
    seed = seed_from_mnemonic(mnemonic, "")
    if url == "embedded":
        try:
            from eth_tester import EthereumTester, PyEVMBackend
            from web3 import EthereumTesterProvider
        except ImportError as exc:  # pragma: no cover - part of the base dependencies
            raise ChainError(f"the embedded chain needs eth-tester and py-evm: {exc}") from None
        backend = PyEVMBackend.from_mnemonic(
            mnemonic,
            num_accounts=accounts,
            hd_path=HD_PATH,
            genesis_state_overrides={"balance": GENESIS_BALANCE},
        )
        tester = EthereumTester(backend)
        w3 = Web3(EthereumTesterProvider(tester))
        chain = Chain(w3, url, mnemonic, int(w3.eth.chain_id), _seed=seed, _tester=tester)
        return chain
    if url.startswith(("http://", "https://")):
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        try:
            chain_id = int(w3.eth.chain_id)
        except Exception as exc:
            raise ChainError(f"cannot reach the chain at {url}: {exc}") from None
        return Chain(w3, url, mnemonic, chain_id, _seed=seed)
    raise ConfigError(f"chain URL must be 'embedded' or an http(s):// JSON-RPC URL, not {url!r}")
