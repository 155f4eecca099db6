"""Signed claims of a committee, the members' session reports, and the receiver's judgement.

The malicious-mode checks (:mod:`metisnet.mpc.malicious`) exchange signed digests,
:class:`~metisnet.mpc.evidence.Claim`. Here the node layer signs them with the member's
secp256k1 node key (its address is its node id, registered on chain) and checks a peer's
against the address the chain lists at that committee position (:class:`NodeSigner`).
Each member keeps the claims of the last few steps it signed or checked (its
*transcript*), so that after an abort it can hand them on.

When a session ends, every member sends each result receiver a **report** (tag
``out:r``, before any output share): an :class:`~metisnet.mpc.evidence.Evidence` record
whose ``kind`` is ``"completed"`` or, if the member aborted, why (the engine's evidence
kind, or ``"aborted"`` for a timeout or a lost peer), with the claims of its transcript.
A receiver that gets anything but three completed reports pools them and judges
(:func:`judge`):

* **equivocation**: one member signed two different digests for one item of one step
  (told its two peers different things). Honest members sign each item once, so this
  pins the signer: it is slashed, with ``keccak(evidence)`` on chain, where ``evidence`` is
  the record of the two conflicting claims (:func:`~metisnet.mpc.evidence.slashable`
  checks it; anyone holding the bytes can recheck the hash and the signatures).
* nothing else convicts. A **disagreement** (two holders of one replicated share signed
  different digests) names a pair, never slashed. Two disagreements sharing one member
  are not used either, although :func:`~metisnet.mpc.evidence.proven_suspects` would
  convict that member: it holds only while two honest holders of a share always agree,
  and they do not when a data node deals them inconsistent input shares (dealing one
  member two bad copies frames it) or when a wrong Beaver opening reached one of them
  (:mod:`metisnet.mpc.beaver`). Failed multiplication checks, malformed messages and
  silence convict nobody either. The task is restarted with a fresh committee
  (``TaskManager.restart``; nobody slashed).

Privacy: a report carries digests (SHA-256) of replicated shares, never a share; each
share alone is uniform in Z_2^64, so its digest tells a receiver nothing it could use.

Only signed claims whose session is the judged session and whose signature recovers the
committee member's address count; a member can forge nobody's claims but its own, so a
cheater's report can convict only the cheater.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError as KeyValidationError

from metisnet.errors import CheatingDetected, MetisError, ValidationError
from metisnet.mpc.evidence import Claim, Evidence, Signer, slashable

__all__ = [
    "COMPLETED",
    "MAX_REPORT_BYTES",
    "MAX_REPORT_CLAIMS",
    "Judgement",
    "NodeSigner",
    "claim_checker",
    "judge",
    "parse_claim_message",
    "session_report",
]

#: The ``kind`` of a report from a member that finished its part.
COMPLETED = "completed"
#: Claims a receiver reads from one report (more are ignored).
MAX_REPORT_CLAIMS = 4096
#: Bytes of one report a receiver reads (a longer report counts as malformed).
MAX_REPORT_BYTES = 4 << 20
_PREFIX = b"metisnet/mpc/claim/v1|"
_DIGEST = 32


def _address(addr: str) -> bytes:
    text = addr[2:] if addr.lower().startswith("0x") else addr
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValidationError(f"not an address: {addr!r}") from None
    if len(raw) != 20:
        raise ValidationError(f"not an address: {addr!r}")
    return raw


def claim_checker(committee: Sequence[str]) -> Callable[[int, bytes, bytes], bool]:
    """``check(party, message, signature)``: whether ``signature`` on ``message`` recovers
    the address of committee member ``party`` (its registered node id)."""
    addrs = [_address(a) for a in committee]

    def check(party: int, message: bytes, signature: bytes) -> bool:
        if not 0 <= party < len(addrs) or len(signature) != 65:
            return False
        try:
            pub = Signature(signature).recover_public_key_from_msg_hash(keccak(message))
        except (BadSignature, KeyValidationError, ValueError):
            return False
        return bool(pub.to_canonical_address() == addrs[party])

    return check


def parse_claim_message(message: bytes, signature: bytes = b"") -> Claim | None:
    """The :class:`Claim` whose :meth:`~Claim.message` is ``message``, or ``None``."""
    if not message.startswith(_PREFIX) or len(message) < len(_PREFIX) + _DIGEST + 3:
        return None
    head, dig = message[len(_PREFIX):-_DIGEST - 1], message[-_DIGEST:]
    if message[-_DIGEST - 1:-_DIGEST] != b"|":
        return None
    try:
        session, step, item, party = json.loads(head.decode())
        claim = Claim(str(session), str(step), str(item), int(party), dig, signature)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return claim if claim.message() == message else None


class NodeSigner:
    """A member's :class:`~metisnet.mpc.evidence.Signer`: signs with its node key, checks
    peers against the committee's addresses, and keeps a transcript of the claims of the
    last ``keep_steps`` steps (its own and every peer claim whose signature held)."""

    def __init__(self, private_key: bytes, committee: Sequence[str], *,
                 keep_steps: int = 16) -> None:
        if len(private_key) != 32:
            raise ValidationError("a node key is 32 bytes")
        self._key = PrivateKey(bytes(private_key))
        self.check = claim_checker(committee)
        self.keep_steps = keep_steps
        self._steps: OrderedDict[tuple[str, str], list[Claim]] = OrderedDict()

    def sign(self, message: bytes) -> bytes:
        signature = bytes(self._key.sign_msg_hash(keccak(message)).to_bytes())
        self._record(message, signature)
        return signature

    def verify(self, party: int, message: bytes, signature: bytes) -> bool:
        ok = self.check(party, message, signature)
        if ok:
            self._record(message, signature)
        return ok

    def _record(self, message: bytes, signature: bytes) -> None:
        claim = parse_claim_message(message, signature)
        if claim is None:
            return
        key = (claim.session, claim.step)
        group = self._steps.setdefault(key, [])
        self._steps.move_to_end(key)
        if claim not in group:
            group.append(claim)
        while len(self._steps) > self.keep_steps:
            self._steps.popitem(last=False)

    def transcript(self) -> tuple[Claim, ...]:
        """The kept claims, oldest step first."""
        return tuple(c for group in self._steps.values() for c in group)


def session_report(party: int, label: str, signer: Signer | None,
                   error: BaseException | None = None) -> bytes:
    """A member's report to the receivers: ``completed``, or why it aborted; with its
    transcript's claims (and those of the engine's evidence, if it raised one)."""
    claims: list[Claim] = []
    kind, step, note = COMPLETED, "", ""
    suspects: tuple[int, ...] = ()
    if error is not None:
        kind, note = "aborted", type(error).__name__
        raw = error.evidence if isinstance(error, CheatingDetected) else b""
        if raw:
            try:
                ev = Evidence.from_bytes(raw)
                kind, step, suspects, note = ev.kind, ev.step, ev.suspects, ev.note
                claims.extend(ev.claims)
            except MetisError:
                pass
    if isinstance(signer, NodeSigner):
        claims.extend(c for c in signer.transcript() if c not in claims)
    return Evidence(kind, label, step, party, tuple(suspects), tuple(claims),
                    note[:200]).to_bytes()


@dataclass(frozen=True)
class Judgement:
    """What a receiver concludes from the reports of an unfinished session."""

    #: committee position of the member the evidence convicts, or None
    cheater: int | None = None
    #: the conviction's evidence (its keccak goes on chain); empty without a conviction
    evidence: bytes = b""
    #: why (equivocation, two disagreements, or what prevented a conviction)
    reason: str = ""
    #: reports by member: their kinds (``completed``, ``aborted``, ``disagreement``, ...)
    kinds: dict[int, str] = field(default_factory=dict)

    @property
    def evidence_hash(self) -> bytes:
        return keccak(self.evidence) if self.evidence else b""


def judge(reports: Mapping[int, bytes], committee: Sequence[str], label: str) -> Judgement:
    """Pool the members' reports of session ``label`` and name a cheater only if the signed
    claims prove one (see the module docstring); ``reports`` maps committee positions to
    the report bytes each sent (a silent member is simply absent)."""
    check = claim_checker(committee)
    kinds: dict[int, str] = {}
    pooled: dict[tuple[str, str, int, bytes], Claim] = {}
    for member, raw in reports.items():
        try:
            ev = Evidence.from_bytes(raw)
        except MetisError:
            kinds[member] = "malformed"
            continue
        kinds[member] = ev.kind
        for c in ev.claims[:MAX_REPORT_CLAIMS]:
            if c.session != label or not 0 <= c.party < len(committee):
                continue
            key = (c.step, c.item, c.party, c.digest)
            if key not in pooled and c.signature and check(c.party, c.message(),
                                                           c.signature):
                pooled[key] = c
    by_item: dict[tuple[str, str, int], list[Claim]] = {}
    for c in pooled.values():
        by_item.setdefault((c.step, c.item, c.party), []).append(c)
    twice = {p: group[:2] for (_, _, p), group in sorted(by_item.items()) if len(group) > 1}
    if len(twice) == 1:  # honest members never sign two digests for one item
        party, pair = next(iter(twice.items()))
        return _convict(party, Evidence("equivocation", label, pair[0].step, -1, (party,),
                                        tuple(pair), "signed two digests for one item"),
                        check, kinds, f"member {party} equivocated on {pair[0].item}")
    if twice:
        return Judgement(reason="several members equivocated: not judged", kinds=kinds)
    return Judgement(reason="no single member proven (a pair at most): nobody slashed",
                     kinds=kinds)


def _convict(party: int, ev: Evidence, check: Callable[[int, bytes, bytes], bool],
             kinds: dict[int, str], reason: str) -> Judgement:
    if slashable(ev, check) != party:  # the record alone must prove it to anyone
        return Judgement(reason=f"{reason}, but the record does not prove it", kinds=kinds)
    return Judgement(party, ev.to_bytes(), reason, kinds)
