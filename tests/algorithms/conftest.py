"""Three committee members for algorithm tests: threads over the in-memory channel, or OS
processes over loopback TCP (a few tests). Data nodes are the test itself: it deals each
plaintext part into three pairs, and member i picks pair i.

Each member's CSPRNG is seeded from the job number, so a test's run (batch orders,
truncation randomness) is reproducible. Most tests run the committee in ``"semi-honest"``
mode for speed (the ``threads`` fixture); ``malicious_threads`` runs the default malicious
mode."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from metisnet.crypto.prg import Csprng
from metisnet.mpc import MpcContext
from metisnet.net.channel import Channel, InMemoryNetwork
from metisnet.net.local_cluster import LocalCluster

_jobs = itertools.count()


def member(channel: Channel, fn: Callable[..., Any], args: tuple[Any, ...], job: int,
           security: str = "semi-honest") -> Any:
    """One committee member's job: its own context, then the program."""
    seed = hashlib.sha256(f"alg-{job}-{channel.party}".encode()).digest()[:16]
    ctx = MpcContext.setup(channel, session=f"alg{job}", security=security, rng=Csprng(seed))
    return fn(ctx, *args)


class Threads:
    """The three members as threads of this process (InMemoryNetwork)."""

    def __init__(self, timeout: float = 120.0, security: str = "semi-honest") -> None:
        self.timeout = timeout
        self.security = security

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        net = InMemoryNetwork(3, timeout=self.timeout)
        out: list[Any] = [None] * 3
        errors: list[BaseException] = []
        job = next(_jobs)

        def go(i: int) -> None:
            try:
                out[i] = member(net.channel(i), fn, args, job, self.security)
            except BaseException as exc:  # re-raised in the test thread
                errors.append(exc)

        ts = [threading.Thread(target=go, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
        return out


class Processes:
    """The three members as OS processes over plain TCP."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        return self.cluster.run(member, fn, args, next(_jobs))


@pytest.fixture
def threads() -> Threads:
    return Threads()


@pytest.fixture
def malicious_threads() -> Threads:
    return Threads(security="malicious")


@pytest.fixture(scope="session")
def processes() -> Iterator[Processes]:
    with LocalCluster(3, timeout=240.0) as cluster:
        yield Processes(cluster)


@pytest.fixture
def cheating_threads() -> Threads:
    """Malicious mode with a short wait: members that do not catch a cheat time out fast."""
    return Threads(timeout=3.0, security="malicious")
