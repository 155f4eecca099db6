"""The explicit context every MPC operation takes: who I am, how I talk, my PRG keys.

Setup follows the replicated-sharing correlated randomness of Araki et al. (CCS 2016, §2.2)
and ABY3 (Mohassel and Rindal, CCS 2018, §3): party ``i`` draws a fresh 128-bit key ``k_i``
and sends it to party ``i-1``, so party ``i`` ends up holding ``k_i`` (shared with ``i-1``)
and ``k_{i+1}`` (shared with ``i+1``). Expanding the keys with AES-CTR (:class:`Prg`) gives,
with no further communication:

* a zero-sharing ``alpha_i = F(k_i) - F(k_{i+1})`` with ``alpha_0 + alpha_1 + alpha_2 = 0``
  (XOR variant for boolean shares), which masks every reshare;
* a random replicated sharing ``r = F(k_0) + F(k_1) + F(k_2)``: party i knows
  ``(F(k_i), F(k_{i+1}))``, exactly its pair;
* randomness known to one pair of parties (``F(k_j)`` is known to parties ``j-1`` and ``j``).

Setup costs 1 round and 16 bytes per party. In production the channel is TLS, so the keys
stay confidential; the keys then never leave the context.

The PRG streams stay in step only if all parties call the same operations in the same
order with the same shapes - the usual SPMD discipline of MPC programs. The step-tag
counter (:meth:`MpcContext.tag`) enforces the same discipline on messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.crypto.prg import KEY_BYTES, Csprng, Prg
from metisnet.errors import ProtocolError, ValidationError
from metisnet.net.channel import Channel, ChannelStats

if TYPE_CHECKING:
    from metisnet.mpc.evidence import Signer
    from metisnet.mpc.malicious import MaliciousVerifier

__all__ = ["PARTIES", "MpcContext"]

#: Replicated 2-out-of-3 sharing is a 3-party protocol.
PARTIES = 3


def _recv_key(channel: Channel, peer: int, tag: str) -> bytes:
    got: NDArray[np.uint8] = channel.recv(peer, tag)
    key = np.ascontiguousarray(got, dtype=np.uint8).tobytes()
    if got.dtype != np.uint8 or len(key) != KEY_BYTES:
        raise ProtocolError(f"party {peer} sent a malformed session key")
    return key


class MpcContext:
    """One party's view of one 3-party session.

    Build it with :meth:`setup` (agrees the pairwise keys over ``channel``). Attributes:

    * ``party``: this party's index 0, 1 or 2; ``next`` / ``prev``: its neighbours' indices.
    * ``channel``: the :class:`~metisnet.net.channel.Channel` that moves the bytes.
    * ``fxp``: the fixed-point encoding (default 16 fractional bits).
    * ``rng``: this party's private CSPRNG (input sharing, local randomness).
    * ``prg_own`` (key ``k_i``, also held by ``prev``) and ``prg_next`` (key ``k_{i+1}``,
      also held by ``next``); ``prg_all`` (key ``k_all``, held by all three: public coins).
    """

    __slots__ = ("_counter", "channel", "fxp", "party", "prg_all", "prg_next", "prg_own",
                 "rng", "session", "verifier")

    def __init__(
        self,
        channel: Channel,
        *,
        key_own: bytes,
        key_next: bytes,
        key_all: bytes,
        fxp: FixedPoint | None = None,
        rng: Csprng | None = None,
        session: str = "s",
        verifier: MaliciousVerifier | None = None,
    ) -> None:
        if channel.parties != PARTIES:
            raise ValidationError("replicated sharing needs a channel of exactly 3 parties")
        if not 0 <= channel.party < PARTIES:
            raise ValidationError(f"invalid party index {channel.party}")
        self.channel = channel
        self.party = channel.party
        self.fxp = fxp if fxp is not None else FixedPoint()
        self.rng = rng if rng is not None else Csprng()
        self.prg_own = Prg(key_own)
        self.prg_next = Prg(key_next)
        self.prg_all = Prg(key_all)
        self.session = session
        self._counter = 0
        #: ``None`` in semi-honest mode; the malicious-security checks otherwise.
        self.verifier = verifier

    @classmethod
    def setup(
        cls,
        channel: Channel,
        *,
        fxp: FixedPoint | None = None,
        rng: Csprng | None = None,
        session: str = "s",
        security: str = "malicious",
        signer: Signer | None = None,
    ) -> MpcContext:
        """Agree the PRG keys (1 round; 16 bytes per party, 48 for party 0) and return the context.

        Besides the pairwise keys, party 0 sends a key ``k_all`` to both others: randomness
        all three know, which is public within the committee (used to re-randomise the
        2-out-of-2 split in truncation and for public coins).

        ``rng`` is this party's CSPRNG; pass ``Csprng(seed)`` for reproducible tests.

        ``security``: ``"malicious"`` (default; security with abort against one cheating
        party, :mod:`metisnet.mpc.malicious`: Beaver products with verified triples made
        ahead by :func:`~metisnet.mpc.malicious.preprocess`, or products checked by
        bucketing before release when none are in stock) or ``"semi-honest"`` (passive
        security only: faster, no checks).
        ``signer`` signs this party's check digests for evidence (the node's key).
        """
        if security not in ("malicious", "semi-honest"):
            raise ValidationError(f"unknown security mode {security!r}")
        rng = rng if rng is not None else Csprng()
        me = channel.party
        key_own = rng.key()
        tag = f"{session}:setup"
        channel.send((me - 1) % PARTIES, tag, np.frombuffer(key_own, dtype=np.uint8))
        if me == 0:
            key_all = rng.key()
            for peer in (1, 2):
                channel.send(peer, tag + ":all", np.frombuffer(key_all, dtype=np.uint8))
        key_next = _recv_key(channel, (me + 1) % PARTIES, tag)
        if me != 0:
            key_all = _recv_key(channel, 0, tag + ":all")
        verifier = None
        if security == "malicious":
            from metisnet.mpc.malicious import MaliciousVerifier

            verifier = MaliciousVerifier(me, session, signer=signer)
            verifier.bind_keys(key_own, key_next, key_all)
        return cls(channel, key_own=key_own, key_next=key_next, key_all=key_all, fxp=fxp,
                   rng=rng, session=session, verifier=verifier)

    def __repr__(self) -> str:
        return f"MpcContext(party={self.party}, session={self.session!r}, {self.fxp})"

    @property
    def next(self) -> int:
        return (self.party + 1) % PARTIES

    @property
    def prev(self) -> int:
        return (self.party - 1) % PARTIES

    @property
    def security(self) -> str:
        """``"malicious"`` or ``"semi-honest"``."""
        return "semi-honest" if self.verifier is None else "malicious"

    @property
    def stats(self) -> ChannelStats:
        """The channel's byte and round counters."""
        return self.channel.stats

    def tag(self, op: str) -> str:
        """A fresh step tag; all parties draw the same sequence of tags."""
        self._counter += 1
        return f"{self.session}:{op}:{self._counter}"

    def prg_of(self, key_index: int) -> Prg:
        """The PRG of key ``k_key_index``; only the two parties holding it may ask."""
        if key_index == self.party:
            return self.prg_own
        if key_index == self.next:
            return self.prg_next
        raise ValidationError(f"party {self.party} does not hold key k_{key_index}")

    # -- correlated randomness, no communication -------------------------------------------
    def zero_share(self, shape: int | tuple[int, ...]) -> NDArray[np.uint64]:
        """This party's share ``F(k_i) - F(k_{i+1})`` of an additive sharing of zero."""
        r = self.prg_own.uint64(shape)
        r -= self.prg_next.uint64(shape)
        return r

    def zero_share_xor(self, shape: int | tuple[int, ...]) -> NDArray[np.uint64]:
        """This party's share ``F(k_i) ^ F(k_{i+1})`` of an XOR sharing of zero."""
        r = self.prg_own.uint64(shape)
        r ^= self.prg_next.uint64(shape)
        return r

    def random_pair(
        self, shape: int | tuple[int, ...]
    ) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
        """This party's pair of a uniformly random replicated sharing (no communication)."""
        return self.prg_own.uint64(shape), self.prg_next.uint64(shape)

    # -- messaging --------------------------------------------------------------------------
    def send(self, peer: int, tag: str, array: NDArray[np.uint64]) -> None:
        """Send a uint64 array (flattened; the receiver states the shape it expects)."""
        self.channel.send(peer, tag, np.ascontiguousarray(array, dtype=np.uint64).reshape(-1))

    def recv(self, peer: int, tag: str, shape: tuple[int, ...]) -> NDArray[np.uint64]:
        """Receive a uint64 array of the expected ``shape``; anything else is refused."""
        got: NDArray[np.uint64] = self.channel.recv(peer, tag)
        size = int(np.prod(shape, dtype=np.int64))
        if got.dtype != np.uint64 or got.size != size:
            raise ProtocolError(
                f"party {self.party}: message {tag!r} from party {peer} has "
                f"{got.size} {got.dtype} elements, expected {size} uint64"
            )
        return got.reshape(shape)
