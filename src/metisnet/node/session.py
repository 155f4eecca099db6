"""One task's secure session: data nodes share inputs, the committee computes, receivers open.

A session's members, in party order, are the three committee members, then the data
nodes that contribute inputs, then the result receivers (each node once). Over one
:class:`~metisnet.net.channel.Channel` of all members (TLS between processes, in-memory
in one process):

1. every data node fixed-point encodes each of its input columns, splits it into
   replicated shares (:func:`metisnet.crypto.sharing.share`) and sends committee member
   ``i`` the pair ``(x_i, x_{i+1})``, with a share of its row count; no member learns a
   value;
2. the committee runs the program on a 3-party sub-channel (:class:`SubChannel`); in
   malicious mode every dealt input share is folded into the digest streams its two
   holders compare, and every product is verified before anything leaves the committee
   (:func:`metisnet.mpc.malicious.verify`);
3. each member sends each receiver its report (:func:`metisnet.node.claims.session_report`:
   ``completed``, or why it aborted, with the signed claims of its last steps), then, if
   it completed, its output pair (the channel is encrypted to the receiver's pinned key);
   the receiver checks that the two copies of every share agree (``b_i == a_{i+1}``), so
   a single cheating member cannot change the result unseen, then reconstructs. If any
   member aborted or stayed silent, the receiver gets :class:`SessionAborted` with every
   report it received, to judge (:func:`metisnet.node.claims.judge`).

Message tags: ``in:<k>:a``, ``in:<k>:b``, ``in:<k>:n`` (input ``k`` of a data node; and
``in:<k>:h``, the pairs of its high parts, for a program with ``split_inputs``),
``out:r`` (the member's report), ``out:a``, ``out:b``, ``out:t`` (the member's own
timings). Session ids are derived from the task id and the draw round, so a redraw never
mixes with an earlier committee's messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from eth_hash.auto import keccak
from numpy.typing import NDArray

from metisnet.crypto.fixedpoint import FixedPoint, high_part, split_bits
from metisnet.crypto.prg import Csprng
from metisnet.crypto.sharing import share
from metisnet.errors import (
    CheatingDetected,
    MetisError,
    NetworkError,
    PeerTimeout,
    ProtocolError,
    ValidationError,
)
from metisnet.mpc import arith
from metisnet.mpc.context import MpcContext
from metisnet.mpc.evidence import Evidence, Signer
from metisnet.mpc.malicious import verify
from metisnet.mpc.shares import SharedArray
from metisnet.net.channel import Channel, ChannelStats, InMemoryNetwork
from metisnet.node.claims import COMPLETED, MAX_REPORT_BYTES, session_report
from metisnet.node.programs import Program

__all__ = [
    "COMMITTEE",
    "InMemorySessions",
    "SessionAborted",
    "SessionLayout",
    "SubChannel",
    "collect_output",
    "collect_reports",
    "contribute_inputs",
    "report_abort",
    "run_committee",
    "session_id",
    "session_label",
]

log = logging.getLogger("metisnet.session")

COMMITTEE = 3
MAX_ROWS = 50_000_000


class SessionAborted(PeerTimeout):
    """The committee delivered no result: some member aborted or stayed silent.

    ``reports`` maps committee positions to the report bytes each member sent (a silent
    member is absent); the receiver judges them (:func:`metisnet.node.claims.judge`).
    A :class:`~metisnet.errors.PeerTimeout`, so a caller that only restarts on silence
    keeps working.
    """

    def __init__(self, message: str, reports: dict[int, bytes]) -> None:
        super().__init__(message)
        self.reports = reports


def session_label(task_id: int, round_: int) -> str:
    """The session name inside the MPC engine (and in every signed claim)."""
    return f"t{task_id}r{round_}"


def session_id(task_id: int, round_: int) -> bytes:
    """The 16-byte session id of a task's ``round_``-th committee."""
    return keccak(b"metisnet/task-session" + task_id.to_bytes(32, "big")
                  + round_.to_bytes(4, "big"))[:16]


@dataclass(frozen=True)
class SessionLayout:
    """Who is in a session, in party order, and what each data node contributes."""

    committee: tuple[str, ...]
    data_nodes: tuple[str, ...]
    receivers: tuple[str, ...]
    inputs_per_node: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.committee) != COMMITTEE or len(set(self.committee)) != COMMITTEE:
            raise ValidationError("a session needs a committee of 3 distinct members")
        if len(self.inputs_per_node) != len(self.data_nodes) or not self.data_nodes:
            raise ValidationError("every data node needs an input count")
        if not self.receivers:
            raise ValidationError("a session needs at least one receiver")
        overlap = set(self.committee) & (set(self.data_nodes) | set(self.receivers))
        if overlap:
            raise ValidationError("committee members may not be data nodes or receivers")

    @property
    def members(self) -> tuple[str, ...]:
        """Every member once, in party order."""
        seen: dict[str, None] = {}
        for m in (*self.committee, *self.data_nodes, *self.receivers):
            seen.setdefault(m.lower(), None)
        return tuple(seen)

    def index(self, node: str) -> int:
        try:
            return self.members.index(node.lower())
        except ValueError:
            raise ValidationError(f"{node} is not a member of this session") from None


class SubChannel:
    """The 3-party view (members 0, 1, 2) of a larger session channel."""

    def __init__(self, channel: Channel) -> None:
        if not 0 <= channel.party < COMMITTEE:
            raise ValidationError("only committee members have a committee sub-channel")
        self._ch = channel

    @property
    def party(self) -> int:
        return self._ch.party

    @property
    def parties(self) -> int:
        return COMMITTEE

    @property
    def stats(self) -> ChannelStats:
        return self._ch.stats

    def send(self, peer: int, tag: str, array: NDArray[Any]) -> None:
        self._ch.send(peer, "mpc:" + tag, array)

    def recv(self, peer: int, tag: str, timeout: float | None = None) -> NDArray[Any]:
        return self._ch.recv(peer, "mpc:" + tag, timeout)

    def close(self) -> None:
        self._ch.close()


def contribute_inputs(channel: Channel, layout: SessionLayout,
                      columns: Sequence[NDArray[np.float64]], *,
                      fxp: FixedPoint | None = None, rng: Csprng | None = None,
                      split: bool = False) -> None:
    """As a data node: share each column (and its row count) with the committee; with
    ``split`` (the program's ``split_inputs``), each column's high parts too."""
    fxp = fxp or FixedPoint()
    rng = rng or Csprng()
    for k, col in enumerate(columns):
        values = np.asarray(col, dtype=np.float64).reshape(-1)
        if values.size == 0:
            raise ValidationError(f"input {k} is empty")
        encoded = fxp.encode(values)
        pairs = share(encoded, rng)
        counts = share(np.array([values.size], dtype=np.uint64), rng)
        highs = share(high_part(encoded, fxp.frac_bits), rng) if split else None
        for i in range(COMMITTEE):
            channel.send(i, f"in:{k}:a", pairs[i][0])
            channel.send(i, f"in:{k}:b", pairs[i][1])
            channel.send(i, f"in:{k}:n", np.stack(counts[i]))
            if highs is not None:
                channel.send(i, f"in:{k}:h", np.stack(highs[i]))


def _recv_u64(channel: Channel, peer: int, tag: str) -> NDArray[np.uint64]:
    got = channel.recv(peer, tag)
    if got.dtype != np.uint64:
        raise ProtocolError(f"party {peer} sent {got.dtype} for {tag}, expected uint64")
    return np.asarray(got, dtype=np.uint64)


def report_abort(channel: Channel, layout: SessionLayout, error: BaseException,
                 signer: Signer | None, label: str) -> None:
    """As a committee member that could not finish: tell every receiver why, with the
    signed claims it holds (best effort: a lost link is not reported)."""
    report = np.frombuffer(session_report(channel.party, label, signer, error),
                           dtype=np.uint8)
    for r in layout.receivers:
        try:
            channel.send(layout.index(r), "out:r", report)
        except (MetisError, OSError) as exc:
            log.info("%s: abort report to %s not sent: %s", label, r, exc)


def run_committee(channel: Channel, layout: SessionLayout, program: Program, *,
                  security: str = "malicious", fxp: FixedPoint | None = None,
                  signer: Signer | None = None, rng: Csprng | None = None,
                  label: str = "task") -> ChannelStats:
    """As committee member ``channel.party``: take inputs, compute, release to receivers.

    Whatever ends the session early (a failed check, a lost or silent peer, a malformed
    message) is reported to the receivers (:func:`report_abort`) and raised again."""
    try:
        return _run_committee(channel, layout, program, security=security, fxp=fxp,
                              signer=signer, rng=rng, label=label)
    except Exception as exc:
        report_abort(channel, layout, exc, signer, label)
        raise


def _run_committee(channel: Channel, layout: SessionLayout, program: Program, *,
                   security: str, fxp: FixedPoint | None, signer: Signer | None,
                   rng: Csprng | None, label: str) -> ChannelStats:
    fxp = fxp or FixedPoint()
    t_start = time.perf_counter()
    ctx = MpcContext.setup(SubChannel(channel), fxp=fxp, rng=rng, session=label,
                           security=security, signer=signer)
    columns: list[SharedArray] = []
    counts: list[SharedArray] = []
    highs: list[SharedArray] = []
    for j, node in enumerate(layout.data_nodes):
        peer = layout.index(node)
        for k in range(layout.inputs_per_node[j]):
            a = _recv_u64(channel, peer, f"in:{k}:a")
            b = _recv_u64(channel, peer, f"in:{k}:b")
            n = _recv_u64(channel, peer, f"in:{k}:n")
            if a.ndim != 1 or a.shape != b.shape or n.shape != (2, 1):
                raise ProtocolError(f"data node {node} sent input {k} in a malformed shape")
            if a.size > MAX_ROWS:
                raise ProtocolError(f"data node {node} sent more than {MAX_ROWS} rows")
            dealt = [arith.share_pair(ctx, a, b, frac_bits=fxp.frac_bits),
                     arith.share_pair(ctx, n[0], n[1], frac_bits=0)]
            if program.split_inputs:
                h = _recv_u64(channel, peer, f"in:{k}:h")
                if h.shape != (2, a.size):
                    raise ProtocolError(f"data node {node} sent the high parts of input {k} "
                                        "in a malformed shape")
                dealt.append(arith.share_pair(
                    ctx, h[0], h[1], frac_bits=fxp.frac_bits - split_bits(fxp.frac_bits)))
                highs.append(dealt[2])
            if ctx.verifier is not None:  # both holders of every dealt share compare it
                for owner in range(COMMITTEE):
                    for x in dealt:
                        ctx.verifier.on_input(x, owner)
            columns.append(dealt[0])
            counts.append(dealt[1])
    rows = int(sum(c.shape[0] for c in columns))
    t_inputs = time.perf_counter()
    out = program.secure(ctx, columns, counts, rows, highs)
    verify(ctx)  # nothing leaves the committee before every check has passed
    t_done = time.perf_counter()
    times = np.array([t_inputs - t_start, t_done - t_inputs], dtype=np.float64)
    report = np.frombuffer(session_report(channel.party, label, signer), dtype=np.uint8)
    for r in layout.receivers:
        peer = layout.index(r)
        channel.send(peer, "out:r", report)
        channel.send(peer, "out:a", out.a)
        channel.send(peer, "out:b", out.b)
        channel.send(peer, "out:t", times)
    return ctx.stats.snapshot()


def collect_reports(channel: Channel, *, patience: float | None = None
                    ) -> dict[int, bytes | None]:
    """As a receiver: each committee member's report (``None``: silent or lost).

    A first pass waits up to the channel's timeout for each member in turn; if any member
    aborted or was silent, a second pass waits up to ``patience`` seconds (default: the
    channel's timeout) more for the silent ones, since a member blocked on an aborted
    peer reports only when its own wait times out. Within a pass, once one wait has run
    out, the others only pick up what has arrived: at most two full waits in all.
    """
    got: dict[int, bytes | None] = dict.fromkeys(range(COMMITTEE))

    def one_pass(members: list[int], timeout: float | None) -> None:
        expired = False
        for i in members:
            try:
                raw = channel.recv(i, "out:r", _GLANCE if expired else timeout)
            except NetworkError:  # PeerTimeout or a lost link
                expired = True
                continue
            if raw.dtype == np.uint8 and raw.ndim == 1 and raw.size <= MAX_REPORT_BYTES:
                got[i] = raw.tobytes()
            else:
                got[i] = b"malformed"

    one_pass(list(range(COMMITTEE)), None)
    if not all(_completed(v) for v in got.values()):
        one_pass([i for i, v in got.items() if v is None], patience)
    return got


#: Seconds a receiver still waits for a report once a wait of the same pass ran out.
_GLANCE = 0.05


def _completed(report: bytes | None) -> bool:
    if report is None:
        return False
    try:
        return Evidence.from_bytes(report).kind == COMPLETED
    except MetisError:
        return False


def collect_output(channel: Channel, layout: SessionLayout, *, frac_bits: int,
                   integer: bool = False, timings: dict[str, float] | None = None,
                   patience: float | None = None) -> NDArray[np.float64]:
    """As a receiver: gather the reports and the three output pairs, check the pairs'
    copies agree, open. Raises :class:`SessionAborted` (with the reports) if a member
    did not complete.

    With ``timings``, also records the committee's own report of how long it waited for
    the data nodes' shares (``sharing``) and computed and checked (``computing``): the
    slowest member's figures. They are informational and never affect the result.
    """
    status = collect_reports(channel, patience=patience)
    if not all(_completed(r) for r in status.values()):
        sent = {i: r for i, r in status.items() if r is not None}
        silent = [i for i, r in status.items() if r is None]
        raise SessionAborted(
            f"the committee delivered no result: members {sorted(sent)} reported"
            f"{', ' + str(silent) + ' silent' if silent else ''}", sent)
    pairs = []
    reports = []
    for i in range(COMMITTEE):
        pairs.append((_recv_u64(channel, i, "out:a"), _recv_u64(channel, i, "out:b")))
        t = channel.recv(i, "out:t")
        if t.dtype == np.float64 and t.shape == (2,) and bool(np.all(np.isfinite(t))):
            reports.append(np.clip(t, 0.0, 1e6))
    if timings is not None and reports:
        worst = np.max(np.stack(reports), axis=0)
        timings["sharing"], timings["computing"] = float(worst[0]), float(worst[1])
    shapes = {p[0].shape for p in pairs} | {p[1].shape for p in pairs}
    if len(shapes) != 1:
        raise CheatingDetected("committee members sent output shares of different shapes",
                               suspects=tuple(range(COMMITTEE)))
    for i in range(COMMITTEE):
        j = (i + 1) % COMMITTEE
        if not np.array_equal(pairs[i][1], pairs[j][0]):
            raise CheatingDetected(
                f"members {i} and {j} disagree on an output share; result withheld",
                suspects=(i, j))
    raw = pairs[0][0] + pairs[1][0] + pairs[2][0]
    signed = raw.view(np.int64)
    if integer or frac_bits == 0:
        return signed.astype(np.float64)
    return signed.astype(np.float64) / float(1 << frac_bits)


class InMemorySessions:
    """Sessions among nodes of one process: one in-memory network per session id.

    ``hub.opener(node)`` is that node's :class:`~metisnet.node.agents.SessionOpener`; every
    member opening the same session id must name the same members.
    """

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._nets: dict[bytes, tuple[tuple[str, ...], InMemoryNetwork]] = {}

    def open(self, node: str, sid: bytes, members: Sequence[str]) -> Channel:
        names = tuple(m.lower() for m in members)
        with self._lock:
            entry = self._nets.get(sid)
            if entry is None:
                entry = self._nets[sid] = (names, InMemoryNetwork(len(names),
                                                                  timeout=self.timeout))
        if entry[0] != names:
            raise ValidationError("members disagree on a session's membership")
        if node.lower() not in names:
            raise ValidationError(f"{node} is not a member of this session")
        return entry[1].channel(names.index(node.lower()))

    def opener(self, node: str) -> Callable[[bytes, Sequence[str]], Channel]:
        def open_session(sid: bytes, members: Sequence[str]) -> Channel:
            return self.open(node, sid, members)
        return open_session
