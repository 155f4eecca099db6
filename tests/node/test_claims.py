"""The receiver's judgement of pooled session reports (metisnet.node.claims)."""

from __future__ import annotations

import random

import pytest
from eth_account import Account
from eth_hash.auto import keccak

from metisnet.errors import CheatingDetected
from metisnet.mpc.evidence import Claim, Evidence, slashable
from metisnet.node.claims import (
    COMPLETED,
    NodeSigner,
    claim_checker,
    judge,
    parse_claim_message,
    session_report,
)

LABEL = "t7r0"
ACCOUNTS = [Account.from_key(bytes([i + 1]) * 32) for i in range(3)]
COMMITTEE = [a.address for a in ACCOUNTS]


def _signer(i: int) -> NodeSigner:
    return NodeSigner(bytes(ACCOUNTS[i].key), COMMITTEE)


def _claim(i: int, step: str, item: str, dig: bytes, session: str = LABEL) -> Claim:
    return Claim(session, step, item, i, dig).signed(_signer(i))


def _report(reporter: int, claims: list[Claim], kind: str = "aborted") -> bytes:
    return Evidence(kind, LABEL, "", reporter, (), tuple(claims)).to_bytes()


def _holders(j: int) -> tuple[int, int]:
    """Replicated sharing: share j is held by parties j and j-1."""
    return j, (j - 1) % 3


def test_signatures_recover_the_members_addresses() -> None:
    s = _signer(1)
    c = Claim(LABEL, "s", "share:x/x1", 1, b"\5" * 32).signed(s)
    check = claim_checker(COMMITTEE)
    assert check(1, c.message(), c.signature)
    assert not check(0, c.message(), c.signature)  # another member's key
    assert not check(1, c.message()[:-1] + b"\0", c.signature)
    assert not check(1, c.message(), b"\0" * 65) and not check(5, c.message(), c.signature)
    assert parse_claim_message(c.message(), c.signature) == c
    assert parse_claim_message(b"nonsense") is None
    assert c in s.transcript()  # a member keeps what it signed


def test_an_equivocation_convicts_its_signer_with_a_self_contained_record() -> None:
    honest1 = [_claim(2, "s", "dealt:key/all", b"\1" * 32)]
    honest2 = [_claim(2, "s", "dealt:key/all", b"\2" * 32)]
    j = judge({0: _report(0, honest1), 1: _report(1, honest2)}, COMMITTEE, LABEL)
    assert j.cheater == 2 and "equivocated" in j.reason
    assert j.evidence_hash == keccak(j.evidence)
    assert slashable(Evidence.from_bytes(j.evidence), claim_checker(COMMITTEE)) == 2


def test_a_single_disagreement_convicts_nobody() -> None:
    a = _claim(0, "s", "share:key/k0", b"\1" * 32)
    b = _claim(2, "s", "share:key/k0", b"\2" * 32)
    j = judge({0: _report(0, [a]), 2: _report(2, [b])}, COMMITTEE, LABEL)
    assert j.cheater is None and j.evidence == b""


def test_two_disagreements_on_dealt_inputs_never_frame_their_common_holder() -> None:
    """A data node that deals member 0 two bad copies makes 0 disagree with both others;
    input shares never convict."""
    claims = [_claim(0, "s", "share:input/x0", b"\1" * 32),
              _claim(2, "s", "share:input/x0", b"\2" * 32),
              _claim(0, "s", "share:input/x1", b"\3" * 32),
              _claim(1, "s", "share:input/x1", b"\4" * 32)]
    assert slashable(Evidence("x", LABEL, "", 0, (), tuple(claims)),
                     claim_checker(COMMITTEE)) == 0  # what the raw rule would do
    j = judge({0: _report(0, claims)}, COMMITTEE, LABEL)
    assert j.cheater is None


def test_two_disagreements_on_committee_shares_convict_nobody_either() -> None:
    """Only an equivocation convicts (see the module docstring)."""
    claims = [_claim(0, "o", "share:open/x0", b"\1" * 32),
              _claim(2, "o", "share:open/x0", b"\2" * 32),
              _claim(0, "o", "share:open/x1", b"\3" * 32),
              _claim(1, "o", "share:open/x1", b"\4" * 32)]
    j = judge({1: _report(1, claims[2:]), 2: _report(2, claims[:2])}, COMMITTEE, LABEL)
    assert j.cheater is None


def test_forged_and_foreign_claims_count_for_nothing() -> None:
    # member 0 signs "member 1's" claims with its own key: they do not verify
    fake = [Claim(LABEL, "s", "dealt:key/all", 1, bytes([d]) * 32).signed(_signer(0))
            for d in (1, 2)]
    # member 1's real, contradictory claims, but from another session
    other = [_claim(1, "s", "dealt:key/all", bytes([d]) * 32, session="t7r1") for d in (1, 2)]
    j = judge({0: _report(0, fake + other), 2: b"not json"}, COMMITTEE, LABEL)
    assert j.cheater is None and j.kinds == {0: "aborted", 2: "malformed"}


def test_a_members_report_carries_its_transcript_and_the_engines_evidence() -> None:
    s = _signer(1)
    mine = Claim(LABEL, "s", "share:key/k1", 1, b"\1" * 32).signed(s)
    theirs = _claim(2, "s", "share:key/k2", b"\2" * 32)
    assert s.verify(2, theirs.message(), theirs.signature)
    engine = Evidence("disagreement", LABEL, "s", 1, (2,), (mine, theirs), "disagrees")
    err = CheatingDetected("aborted", suspects=(2,), evidence=engine.to_bytes())
    rep = Evidence.from_bytes(session_report(1, LABEL, s, err))
    assert rep.kind == "disagreement" and rep.suspects == (2,)
    assert set(rep.claims) == {mine, theirs}
    done = Evidence.from_bytes(session_report(1, LABEL, s))
    assert done.kind == COMPLETED and set(done.claims) == {mine, theirs}


def test_the_transcript_keeps_the_last_steps_only() -> None:
    s = NodeSigner(bytes(ACCOUNTS[0].key), COMMITTEE, keep_steps=2)
    for k in range(5):
        Claim(LABEL, f"step{k}", "share:x/x0", 0, b"\1" * 32).signed(s)
    assert [c.step for c in s.transcript()] == ["step3", "step4"]


@pytest.mark.parametrize("seed", range(6))
def test_random_reports_never_convict_an_honest_member(seed: int) -> None:
    """Honest members sign each item once, with the digest its other honest holder signs
    too (committee shares); a data node may deal inconsistent input shares; the cheater
    signs anything, forges, replays and drops. Whatever the mix, only the cheater is ever
    convicted, and an equivocation the honest reports carry always is."""
    rng = random.Random(seed)
    signers = [_signer(i) for i in range(3)]
    for _ in range(12):
        cheater = rng.randrange(3)
        honest = [i for i in range(3) if i != cheater]
        pools: dict[int, list[Claim]] = {i: [] for i in range(3)}
        equivocated = False
        for step in range(rng.randrange(1, 4)):
            st = f"{LABEL}:op:{step}"
            for j in range(3):
                for kind in ("share:open", "share:input"):
                    item = f"{kind}/x{j}"
                    truth = rng.randbytes(32)
                    dealt = {h: truth for h in _holders(j)}
                    if kind == "share:input" and rng.random() < 0.5:
                        dealt[rng.choice(_holders(j))] = rng.randbytes(32)  # a bad dealer
                    for h in _holders(j):
                        if h == cheater:
                            continue
                        c = Claim(LABEL, st, item, h, dealt[h]).signed(signers[h])
                        for r in honest:
                            pools[r].append(c)
                    if cheater in _holders(j) or rng.random() < 0.3:
                        digs = [truth if rng.random() < 0.5 else rng.randbytes(32)
                                for _ in honest]
                        for r, d in zip(honest, digs, strict=True):
                            pools[r].append(Claim(LABEL, st, item, cheater, d)
                                            .signed(signers[cheater]))
                        equivocated |= digs[0] != digs[1]
            # forgeries: claims "by" honest members, signed by the cheater
            victim = rng.choice(honest)
            pools[cheater] += [Claim(LABEL, st, "share:open/x0", victim, rng.randbytes(32))
                               .signed(signers[cheater]) for _ in range(2)]
        reports = {i: _report(i, pools[i]) for i in range(3) if rng.random() < 0.9
                   or i != cheater}
        j = judge(reports, COMMITTEE, LABEL)
        assert j.cheater == (cheater if equivocated else None), (seed, cheater, j.reason)
