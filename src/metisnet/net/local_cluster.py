"""Run a function as ``n`` parties in separate OS processes connected by channels.

:class:`LocalCluster` starts the processes once and then runs any number of jobs on them
(tests and benchmarks pay the start-up once, not per job); :func:`run_local` is the
one-shot form. Each job is ``fn(channel, *args)``, called in every party's process with
that party's :class:`~metisnet.net.channel.Channel`; the cluster returns the list of the
parties' return values, or raises :class:`~metisnet.errors.NetworkError` with the failing
parties' tracebacks.

How parties connect is a ``channel_factory(party, addresses) -> Channel``: the default
is the plain loopback TCP mesh of :mod:`metisnet.net.plain_tcp`; a TLS factory with the
same signature drops in unchanged.

Jobs and results travel between the parent and its children over ``multiprocessing``
pipes, so ``fn`` must be importable (a module-level function) and the arguments and
results must be plain data (numpy arrays, numbers, tuples). This is local process
control, not the network wire: party-to-party traffic goes only through the channel.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from metisnet.errors import NetworkError, PeerTimeout, ValidationError
from metisnet.net import ports
from metisnet.net.channel import Channel
from metisnet.net.plain_tcp import connect_mesh

__all__ = ["ChannelFactory", "LocalCluster", "free_ports", "plain_tcp_factory", "run_local"]

ChannelFactory = Callable[[int, Sequence[tuple[str, int]]], Channel]


def plain_tcp_factory(party: int, addresses: Sequence[tuple[str, int]]) -> Channel:
    """The default factory: a plain TCP mesh on the given loopback addresses."""
    return connect_mesh(party, addresses, timeout=120.0)


def free_ports(n: int, host: str = "127.0.0.1") -> list[tuple[str, int]]:
    """``n`` loopback addresses whose ports were free a moment ago
    (:func:`metisnet.net.ports.free_ports`: outside the ephemeral range)."""
    return [(host, p) for p in ports.free_ports(n, host)]


def _worker(party: int, addresses: list[tuple[str, int]], factory: ChannelFactory,
            conn: mpc.Connection) -> None:
    try:
        channel = factory(party, addresses)
    except BaseException:
        conn.send((False, traceback.format_exc()))
        return
    conn.send((True, None))
    try:
        while True:
            try:
                job = conn.recv()
            except EOFError:
                break
            if job is None:
                break
            fn, args = job
            try:
                conn.send((True, fn(channel, *args)))
            except BaseException:
                conn.send((False, traceback.format_exc()))
    finally:
        channel.close()


class LocalCluster:
    """``parties`` worker processes, connected by ``channel_factory``, running jobs."""

    def __init__(
        self,
        parties: int = 3,
        *,
        channel_factory: ChannelFactory = plain_tcp_factory,
        start_method: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        if parties < 2:
            raise ValidationError("a cluster needs at least 2 parties")
        self.parties = parties
        self.timeout = timeout
        self._factory = channel_factory
        method = start_method or ("fork" if sys.platform.startswith("linux") else "spawn")
        self._mp: Any = mp.get_context(method)
        self._procs: list[Any] = []
        self._conns: list[mpc.Connection] = []

    def start(self) -> LocalCluster:
        addresses = free_ports(self.parties)
        for i in range(self.parties):
            parent, child = self._mp.Pipe()
            p = self._mp.Process(target=_worker, args=(i, addresses, self._factory, child),
                                 name=f"metis-party-{i}", daemon=True)
            p.start()
            child.close()
            self._procs.append(p)
            self._conns.append(parent)
        self._collect("start-up")
        return self

    def _collect(self, what: str) -> list[Any]:
        results: list[Any] = [None] * self.parties
        errors: list[str] = []
        for i, conn in enumerate(self._conns):
            if not conn.poll(self.timeout):
                errors.append(f"party {i}: no answer within {self.timeout:g} s")
                continue
            try:
                ok, value = conn.recv()
            except EOFError:
                errors.append(f"party {i}: process died")
                continue
            if ok:
                results[i] = value
            else:
                errors.append(f"party {i}:\n{value}")
        if errors:
            msg = f"{what} failed:\n" + "\n".join(errors)
            if any("no answer" in e for e in errors):
                self.close()
                raise PeerTimeout(msg)
            raise NetworkError(msg)
        return results

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """Run ``fn(channel, *args)`` in every party; the list of their results."""
        if not self._procs:
            raise NetworkError("the cluster is not running; call start()")
        for conn in self._conns:
            conn.send((fn, args))
        return self._collect(getattr(fn, "__name__", "job"))

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        for p in self._procs:
            p.join(timeout=5.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5.0)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_local(fn: Callable[..., Any], *args: Any, parties: int = 3,
              channel_factory: ChannelFactory = plain_tcp_factory) -> list[Any]:
    """Start a cluster, run one job, stop it."""
    with LocalCluster(parties, channel_factory=channel_factory) as cluster:
        return cluster.run(fn, *args)
