"""Typed client of the NodeRegistry contract: registration, stake, unbonding, draws."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from web3.types import TxReceipt

from metisnet.chain._base import ContractClient, bytes32
from metisnet.chain.draw import stake_pick
from metisnet.errors import ChainError
from metisnet.types import Address, NodeId, Wei

__all__ = ["NodeInfo", "NodeRegistry", "Role"]


class Role(IntEnum):
    """A node's role on the registry."""

    DATA = 1
    COMPUTE = 2


@dataclass(frozen=True)
class NodeInfo:
    """A registered node as the registry holds it."""

    node_id: NodeId
    role: Role
    cert_hash: bytes
    endpoint: str
    capacity: int
    stake: Wei
    unbonding: Wei
    unbond_at: int
    index: int


class NodeRegistry(ContractClient):
    """Client of ``NodeRegistry.vy``. A node's id is the address of its signing account."""

    ARTIFACT = "NodeRegistry"

    # ---------------------------------------------------------------- transactions
    def register(
        self, role: Role, cert_hash: bytes, endpoint: str, capacity: int, stake: Wei
    ) -> TxReceipt:
        """Register the bound account as a ``role`` node with ``stake`` wei."""
        return self._send(
            "register", int(role), bytes32(cert_hash, "cert_hash"), endpoint, capacity,
            value=stake,
        )

    def update_node(self, cert_hash: bytes, endpoint: str, capacity: int) -> TxReceipt:
        return self._send("update_node", bytes32(cert_hash, "cert_hash"), endpoint, capacity)

    def top_up(self, amount: Wei) -> TxReceipt:
        return self._send("top_up", value=amount)

    def unbond(self, amount: Wei) -> TxReceipt:
        """Start unbonding ``amount``; withdrawable after ``unbond_delay()`` seconds."""
        return self._send("unbond", amount)

    def withdraw(self) -> TxReceipt:
        """Collect all unbonded stake once its delay has passed."""
        return self._send("withdraw")

    def slash(self, node: str, amount: Wei) -> TxReceipt:
        """The registry's slashing entry point: only the task manager contract may call it,
        so from any account this reverts ("only the task manager may slash")."""
        return self._send("slash", node, amount)

    def set_task_manager(self, task_manager: str) -> TxReceipt:
        """Admin only, once: the contract allowed to slash."""
        return self._send("set_task_manager", task_manager)

    # ---------------------------------------------------------------- views
    def get_node(self, node: str) -> NodeInfo | None:
        """The node registered under ``node``, or None."""
        raw = self._call("get_node", node)
        if raw[0] == 0:
            return None
        role, cert, endpoint, capacity, stake, unbonding, unbond_at, index = raw
        return NodeInfo(
            NodeId(node), Role(role), bytes(cert), endpoint, capacity, Wei(stake),
            Wei(unbonding), unbond_at, index,
        )

    def stake_of(self, node: str) -> Wei:
        return Wei(self._call("stake_of", node))

    def is_active(self, node: str, role: Role) -> bool:
        return bool(self._call("is_active", node, int(role)))

    def node_count(self, role: Role) -> int:
        return int(self._call("node_count", int(role)))

    def total_stake(self, role: Role) -> Wei:
        return Wei(self._call("total_stake", int(role)))

    def total_bonded(self) -> Wei:
        """Active plus unbonding stake of every node: the contract's balance."""
        return Wei(self._call("total_bonded"))

    def min_stake(self) -> Wei:
        return Wei(self._call("min_stake"))

    def unbond_delay(self) -> int:
        return int(self._call("unbond_delay"))

    def task_manager(self) -> Address:
        return Address(self._call("task_manager"))

    def nodes(self, role: Role) -> list[tuple[Address, Wei]]:
        """Every node of ``role`` with its active stake, in registry index order.

        Reads one entry per node: meant for explorers and for checking a draw off chain.
        """
        out = []
        for i in range(1, self.node_count(role) + 1):
            addr = Address(self._call("node_at", int(role), i))
            out.append((addr, self.stake_of(addr)))
        return out

    def draw(self, role: Role, r: int) -> Address:
        """The node the contract's stake-weighted draw picks for the random number ``r``."""
        return Address(self._call("draw", int(role), r))

    def draw_offchain(self, role: Role, r: int) -> Address:
        """Same as :meth:`draw`, computed in Python from :meth:`nodes`."""
        nodes = self.nodes(role)
        if not nodes:
            raise ChainError("no nodes of this role")
        return nodes[stake_pick([s for _, s in nodes], r)][0]
