"""The pure Python draw functions (no chain needed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metisnet.chain.backend import DEFAULT_MNEMONIC, derive_accounts
from metisnet.chain.draw import combine_seeds, draw_committee, seed_commitment, stake_pick
from metisnet.errors import ValidationError


def test_stake_pick_boundaries() -> None:
    stakes = [2, 0, 3]
    assert [stake_pick(stakes, r) for r in range(5)] == [0, 0, 2, 2, 2]
    assert stake_pick(stakes, 5) == 0  # r is taken modulo the total
    with pytest.raises(ValidationError):
        stake_pick([0, 0], 1)


@settings(max_examples=50)
@given(st.lists(st.integers(0, 10**20), min_size=1, max_size=20), st.integers(0, 2**256 - 1))
def test_stake_pick_never_picks_zero_stake(stakes: list[int], r: int) -> None:
    if sum(stakes) == 0:
        return
    assert stakes[stake_pick(stakes, r)] > 0


def test_draw_committee_distinct_and_deterministic() -> None:
    nodes = [(a.address, (i + 1) * 10**18) for i, a in
             enumerate(derive_accounts(DEFAULT_MNEMONIC, 6))]
    seed = combine_seeds([b"\x01" * 32, b"\x02" * 32])
    assert seed == b"\x03" * 32
    c1 = draw_committee(seed, 7, nodes, 3)
    assert c1 == draw_committee(seed, 7, nodes, 3)
    assert len(set(c1)) == 3
    assert draw_committee(seed, 7, nodes, 3, round=1, exclude=c1[:1])[0] != c1[0]
    assert len(draw_committee(seed, 7, nodes[:2], 3)) == 2  # attempts run out: short list


def test_seed_commitment_layout() -> None:
    from eth_utils.crypto import keccak

    voter = "0x" + "ab" * 20
    assert seed_commitment(b"\x05" * 32, voter) == keccak(b"\x05" * 32 + b"\0" * 12 + b"\xab" * 20)
    with pytest.raises(ValidationError):
        seed_commitment(b"short", voter)


def test_accounts_follow_the_standard_hd_path() -> None:
    # account 0 of the well-known development mnemonic on m/44'/60'/0'/0/0
    assert derive_accounts(DEFAULT_MNEMONIC, 1)[0].address == (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
