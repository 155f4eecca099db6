"""Run MPC programs as 3 parties: in-memory (3 threads) or 3 OS processes over TCP.

A program is a module-level function ``fn(ctx, *args)``; every party runs it with its own
:class:`MpcContext` and the runner returns the three results. The ``channel`` fixture
yields a runner for each transport, so one test class covers both; the OS processes are
started once per test session.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.mpc.threads import run_parties

from metisnet.mpc import MpcContext
from metisnet.net.channel import Channel, InMemoryNetwork
from metisnet.net.local_cluster import LocalCluster

_jobs = itertools.count()


def run_program(channel: Channel, fn: Callable[..., Any], args: tuple[Any, ...],
                job: int) -> Any:
    """The job every party runs: set up a context (own session tag) and call ``fn``."""
    ctx = MpcContext.setup(channel, session=f"job{job}", security="semi-honest")
    return fn(ctx, *args)


class ThreadRunner:
    """Three parties as threads of this process over an :class:`InMemoryNetwork`."""

    name = "memory"

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        net = InMemoryNetwork(3, timeout=self.timeout)
        results: list[Any] = [None] * 3
        job = next(_jobs)

        def party(i: int) -> None:
            results[i] = run_program(net.channel(i), fn, args, job)

        run_parties(party)
        return results


class ClusterRunner:
    """Three parties as OS processes over the plain TCP channel."""

    name = "tcp"

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        return self.cluster.run(run_program, fn, args, next(_jobs))


@pytest.fixture(scope="session")
def tcp_cluster() -> Iterator[LocalCluster]:
    with LocalCluster(3, timeout=120.0) as cluster:
        yield cluster


@pytest.fixture(scope="class", params=["memory", "tcp"])
def channel(request: pytest.FixtureRequest) -> ThreadRunner | ClusterRunner:
    if request.param == "memory":
        return ThreadRunner()
    return ClusterRunner(request.getfixturevalue("tcp_cluster"))
