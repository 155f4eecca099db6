"""Pure Python reproduction of the contracts' stake-weighted draws and seed commitments.

Anyone can recompute a task's committee from the revealed seeds and the compute nodes'
stakes (in registry order) and check it against the ``CommitteeDrawn`` event:

* ``seed_commitment(seed, voter) = keccak256(abi_encode(bytes32 seed, address voter))``;
* the task seed is the XOR of the revealed seeds;
* round ``k`` of a task hashes ``base = keccak256(abi_encode(seed, task_id, k))``, then
  attempt ``a`` draws ``r = keccak256(abi_encode(base, a)) mod total_stake`` and picks the
  node with the smallest index ``i`` whose prefix sum of stakes exceeds ``r`` (what the
  registry's Fenwick-tree search returns), skipping nodes already drawn or excluded;
  at most ``MAX_DRAW_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from itertools import accumulate

from eth_utils.address import to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak

from metisnet.errors import ValidationError

__all__ = [
    "MAX_DRAW_ATTEMPTS",
    "combine_seeds",
    "draw_committee",
    "seed_commitment",
    "stake_pick",
]

MAX_DRAW_ATTEMPTS = 64


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _check_seed(seed: bytes) -> bytes:
    if len(seed) != 32:
        raise ValidationError("a seed is 32 bytes")
    return bytes(seed)


def seed_commitment(seed: bytes, voter: str) -> bytes:
    """The commitment a vote carries: keccak256(abi_encode(seed, voter))."""
    return keccak(_check_seed(seed) + to_canonical_address(voter).rjust(32, b"\0"))


def combine_seeds(seeds: Iterable[bytes]) -> bytes:
    """XOR of the revealed seeds, as the task manager accumulates them."""
    acc = 0
    for s in seeds:
        acc ^= int.from_bytes(_check_seed(s), "big")
    return _word(acc)


def stake_pick(stakes: Sequence[int], r: int) -> int:
    """0-based index picked by ``r``: smallest i with stakes[0] + ... + stakes[i] > r mod total."""
    prefix = list(accumulate(stakes))
    if not prefix or prefix[-1] == 0:
        raise ValidationError("no staked nodes to draw from")
    return bisect.bisect_right(prefix, r % prefix[-1])


def draw_committee(
    seed: bytes,
    task_id: int,
    nodes: Sequence[tuple[str, int]],
    size: int,
    *,
    round: int = 0,
    exclude: Iterable[str] = (),
) -> list[str]:
    """The ``size`` compute nodes the task manager draws for ``task_id`` in ``round``.

    ``nodes`` lists every registered compute node as (address, active stake) in registry
    index order (index 1 first). Returns checksummed addresses in draw order; fewer than
    ``size`` when the attempts run out (the contract then refuses or fails the task).
    """
    stakes = [int(s) for _, s in nodes]
    addresses = [to_checksum_address(a) for a, _ in nodes]
    excluded = {to_checksum_address(a) for a in exclude}
    base = keccak(_check_seed(seed) + _word(task_id) + _word(round))
    out: list[str] = []
    for attempt in range(MAX_DRAW_ATTEMPTS):
        if len(out) >= size:
            break
        r = int.from_bytes(keccak(base + _word(attempt)), "big")
        picked = addresses[stake_pick(stakes, r)]
        if picked in out or picked in excluded:
            continue
        out.append(picked)
    return out
