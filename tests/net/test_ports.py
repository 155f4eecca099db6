"""Free ports for child processes: outside the ephemeral range, distinct, bindable."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from metisnet.net import ports


def _ephemeral() -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
                  .split())
    except OSError:
        return 32768, 60999
    return lo, hi


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    lo, hi = _ephemeral()
    got = ports.free_ports(40)
    assert len(set(got)) == 40
    assert all(not lo <= p <= hi for p in got)
    for p in got[:5]:
        with socket.create_server(("127.0.0.1", p)):
            pass


def test_a_port_is_not_handed_out_twice() -> None:
    first = set(ports.free_ports(30))
    second = set(ports.free_ports(30))
    assert not first & second


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a one-port window that is taken, the kernel's choice is the fallback."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_window", lambda: range(taken, taken + 1))
        monkeypatch.setattr(ports, "_handed", set())
        got = ports.free_port()
        assert got != taken
        with socket.create_server(("127.0.0.1", got)):
            pass
