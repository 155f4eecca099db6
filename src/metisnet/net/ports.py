"""Free loopback ports for processes started here (the devnet, local clusters, tests).

A port found by binding port 0 comes from the kernel's ephemeral range, the same range
outgoing connections take their source ports from. Between the moment it is found and
the moment a child process binds it, any connection on the machine (a node talking to the
chain, say) may take it, and the child fails with "address already in use". So ports are
drawn at random from just below that range, where no outgoing connection lands; each is
checked by binding it, and a port is not handed out twice by one process. If that window
is unusable, the ephemeral way is the fallback.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

__all__ = ["free_port", "free_ports"]

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DEFAULT_EPHEMERAL = (32768, 60999)
_WINDOW = 16384  # ports below the ephemeral range to draw from
_LOWEST = 1024

_lock = threading.Lock()
_handed: set[int] = set()
_draw = random.SystemRandom()


def _window() -> range:
    """Ports outside the ephemeral range: below it, else above it."""
    try:
        lo, hi = (int(v) for v in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        lo, hi = _DEFAULT_EPHEMERAL
    if lo - _LOWEST >= 1024:
        return range(max(_LOWEST, lo - _WINDOW), lo)
    return range(hi + 1, 65536)


def _bind(host: str, port: int) -> socket.socket | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as socket.create_server does
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        return None
    return s


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports on ``host`` that were free a moment ago and that no outgoing
    connection will take before a child process binds them."""
    window = _window()
    socks: list[socket.socket] = []
    try:
        with _lock:
            if len(_handed) > len(window) // 2:  # long ago: released by now
                _handed.clear()
            for _ in range(64 * n + 64):
                if len(socks) == n or not window:
                    break
                port = _draw.choice(window)
                if port in _handed:
                    continue
                s = _bind(host, port)
                if s is not None:
                    socks.append(s)
                    _handed.add(port)
            while len(socks) < n:  # fallback: the kernel's choice
                s = _bind(host, 0)
                if s is None:
                    raise OSError(f"no free port on {host}")
                socks.append(s)
            return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One port as :func:`free_ports` finds them."""
    return free_ports(1, host)[0]
