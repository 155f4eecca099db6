"""One task session in one process: data nodes share, the committee computes, a receiver opens."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from metisnet.crypto.fixedpoint import FixedPoint
from metisnet.errors import CheatingDetected, ProtocolError, ValidationError
from metisnet.net.channel import InMemoryNetwork
from metisnet.node.programs import PROGRAMS, get_program
from metisnet.node.session import (
    SessionLayout,
    collect_output,
    contribute_inputs,
    run_committee,
    session_id,
)

COMMITTEE = ("0x" + "c0" * 20, "0x" + "c1" * 20, "0x" + "c2" * 20)
DATA = ("0x" + "d0" * 20, "0x" + "d1" * 20, "0x" + "d2" * 20)
RECV = ("0x" + "ee" * 20,)


def _run(program: str, datasets: list[np.ndarray], security: str,
         tamper: Any = None) -> tuple[np.ndarray, list[BaseException]]:
    layout = SessionLayout(COMMITTEE, DATA, RECV, (1, 1, 1))
    net = InMemoryNetwork(len(layout.members), timeout=30)
    prog = get_program(program)
    errors: list[BaseException] = []
    result: list[np.ndarray] = []

    def guard(fn: Any, *args: Any, **kw: Any) -> None:
        try:
            fn(*args, **kw)
        except BaseException as exc:  # collected and asserted by the test
            errors.append(exc)

    threads = []
    for i in range(3):
        ch = net.channel(i)
        if tamper is not None and i == 2:
            ch = tamper(ch)
        threads.append(threading.Thread(target=guard, args=(run_committee, ch, layout, prog),
                                        kwargs={"security": security}))
    for j, data in enumerate(datasets):
        threads.append(threading.Thread(
            target=guard, args=(contribute_inputs, net.channel(3 + j), layout, [data]),
            kwargs={"split": prog.split_inputs}))

    def receive() -> None:
        result.append(collect_output(net.channel(6), layout, frac_bits=16,
                                     integer=prog.integer_output))

    threads.append(threading.Thread(target=guard, args=(receive,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return (result[0] if result else np.array([])), errors


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_programs_match_plaintext_within_bound(program: str, security: str) -> None:
    gen = np.random.default_rng(7)
    datasets = [gen.uniform(-50, 90, size=n) for n in (300, 500, 200)]
    got, errors = _run(program, datasets, security)
    assert not errors, errors
    union = np.concatenate(datasets)
    prog = get_program(program)
    want = prog.plain(union)
    assert got.shape == want.shape
    assert abs(got[0] - want[0]) <= prog.error_bound(union, 16) + 1e-9


@pytest.mark.parametrize("program", ["mean", "variance"])
def test_moments_of_many_large_values_stay_within_bound(program: str) -> None:
    """5 x 10^4 values up to 2000 in magnitude: a plain fixed-point square per row fails
    (an error of 2^32) with probability x^2 2^-32, about 15 rows here; the programs never
    truncate a value that large, so the answer stays within the stated bound."""
    gen = np.random.default_rng(11)
    datasets = [gen.uniform(-2000, 2000, size=n) for n in (20_000, 20_000, 10_000)]
    got, errors = _run(program, datasets, "semi-honest")
    assert not errors, errors
    union = np.concatenate(datasets)
    prog = get_program(program)
    assert abs(got[0] - prog.plain(union)[0]) <= prog.error_bound(union, 16) + 1e-9


class _Wrapped:
    """A channel that forwards everything to ``inner``; subclasses change ``send``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FlipOutput(_Wrapped):
    """Committee member that flips a bit of the output share it sends to the receiver."""

    def send(self, peer: int, tag: str, array: np.ndarray) -> None:
        if tag == "out:a":
            array = array ^ np.uint64(1)
        self._inner.send(peer, tag, array)


def test_receiver_catches_a_tampered_output_share() -> None:
    datasets = [np.arange(10.0), np.arange(5.0), np.arange(3.0)]
    got, errors = _run("sum", datasets, "semi-honest", tamper=_FlipOutput)
    assert got.size == 0
    assert any(isinstance(e, CheatingDetected) and 2 in e.suspects for e in errors)


def test_session_ids_and_layout_rules() -> None:
    assert session_id(1, 0) != session_id(1, 1) != session_id(2, 0)
    assert len(session_id(1, 0)) == 16
    with pytest.raises(ValidationError):
        SessionLayout(COMMITTEE[:2], DATA, RECV, (1, 1, 1))
    with pytest.raises(ValidationError):
        SessionLayout(COMMITTEE, DATA, (COMMITTEE[0],), (1, 1, 1))
    with pytest.raises(ValidationError, match="unknown program"):
        get_program("median_of_everything")
    assert FixedPoint().frac_bits == 16


class _FlipMpc(_Wrapped):
    """Committee member that flips a bit of every MPC share it sends (malicious mode)."""

    def send(self, peer: int, tag: str, array: np.ndarray) -> None:
        if tag.startswith("mpc:") and array.dtype == np.uint64 and array.size:
            array = array ^ np.uint64(1)
        self._inner.send(peer, tag, array)


def test_an_aborted_session_reaches_the_receiver_as_the_members_reports() -> None:
    """Every member that stops tells the receiver why (no output share is released)."""
    from metisnet.mpc.evidence import Evidence
    from metisnet.node.session import SessionAborted

    layout = SessionLayout(COMMITTEE, DATA, RECV, (1, 1, 1))
    net = InMemoryNetwork(len(layout.members), timeout=2)
    prog = get_program("variance")
    threads = []
    failed: list[BaseException] = []
    for i in range(3):
        ch = net.channel(i) if i != 2 else _FlipMpc(net.channel(i))
        threads.append(threading.Thread(target=lambda ch=ch: _collect(
            failed, run_committee, ch, layout, prog, label="t1r0")))
    for j in range(3):
        threads.append(threading.Thread(target=contribute_inputs, args=(
            net.channel(3 + j), layout, [np.arange(20.0) + j]), kwargs={"split": True}))
    for t in threads:
        t.start()
    receiver = net.channel(6)
    with pytest.raises(SessionAborted) as info:
        collect_output(receiver, layout, frac_bits=16)
    for t in threads:
        t.join(30)
    reports = info.value.reports
    assert set(reports) == {0, 1, 2}  # the flipper aborts too, once its peers stop
    kinds = {i: Evidence.from_bytes(r).kind for i, r in reports.items()}
    assert "completed" not in kinds.values()
    assert all(Evidence.from_bytes(r).session == "t1r0" for r in reports.values())
    assert receiver.stats.messages_received == 3  # the reports only, no output share
    assert len(failed) == 3  # and every member raised


def _collect(errors: list[BaseException], fn: Any, *args: Any, **kw: Any) -> None:
    try:
        fn(*args, **kw)
    except Exception as exc:  # each member's own failure, asserted by the test
        errors.append(exc)


def _committee_run(prog: Any, datasets: list[np.ndarray], split: bool
                   ) -> tuple[np.ndarray, int]:
    """One malicious-mode session; the result and the most bytes a member sent."""
    layout = SessionLayout(COMMITTEE, DATA, RECV, (1, 1, 1))
    net = InMemoryNetwork(len(layout.members), timeout=60)
    sent: list[int] = []
    result: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda i=i: sent.append(run_committee(
        net.channel(i), layout, prog, security="malicious").bytes_sent)) for i in range(3)]
    threads += [threading.Thread(target=contribute_inputs, args=(
        net.channel(3 + j), layout, [data]), kwargs={"split": split})
        for j, data in enumerate(datasets)]
    threads.append(threading.Thread(target=lambda: result.append(collect_output(
        net.channel(6), layout, frac_bits=16))))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(sent) == 3 and result, "the session did not finish"
    return result[0], max(sent)


def test_variance_truncates_no_row_when_the_data_nodes_deal_high_parts() -> None:
    """In malicious mode each truncation costs a checked product and a carry circuit. With
    the high parts dealt, a member's traffic hardly grows with the rows; with the split
    made by truncation inside the committee (the same program without ``split_inputs``),
    it grows by tens of bytes per row."""
    import dataclasses

    prog = get_program("variance")
    assert prog.split_inputs
    gen = np.random.default_rng(3)
    small = [gen.uniform(-50, 90, size=n) for n in (1000, 1000, 1000)]
    large = [gen.uniform(-50, 90, size=n) for n in (10_000, 10_000, 10_000)]
    per_row = {}
    for split in (True, False):
        p = prog if split else dataclasses.replace(prog, split_inputs=False)
        got_s, bytes_s = _committee_run(p, small, split)
        got_l, bytes_l = _committee_run(p, large, split)
        for got, data in ((got_s, small), (got_l, large)):
            union = np.concatenate(data)
            assert abs(got[0] - prog.plain(union)[0]) <= prog.error_bound(union, 16) + 1e-9
        per_row[split] = (bytes_l - bytes_s) / 27_000
    assert per_row[True] < 4, per_row
    assert per_row[False] > 40, per_row


def test_malformed_high_parts_are_refused() -> None:
    """A data node whose high parts do not match its column's shape: every member stops
    with a protocol error naming it (nothing is computed)."""
    layout = SessionLayout(COMMITTEE, DATA, RECV, (1, 1, 1))
    net = InMemoryNetwork(len(layout.members), timeout=5)
    prog = get_program("variance")
    failed: list[BaseException] = []
    threads = [threading.Thread(target=lambda i=i: _collect(
        failed, run_committee, net.channel(i), layout, prog)) for i in range(3)]

    class _ShortHighs(_Wrapped):
        def send(self, peer: int, tag: str, array: np.ndarray) -> None:
            if tag.endswith(":h"):
                array = array[:, :-1]
            self._inner.send(peer, tag, array)

    for j in range(3):
        ch = net.channel(3 + j) if j else _ShortHighs(net.channel(3))
        threads.append(threading.Thread(target=contribute_inputs, args=(
            ch, layout, [np.arange(20.0)]), kwargs={"split": True}))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(failed) == 3
    assert all(isinstance(e, ProtocolError) and "high parts" in str(e) for e in failed), failed
