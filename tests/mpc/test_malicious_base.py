"""The base suite of the arithmetic and comparison operations, rerun in malicious mode.

Same programs and properties as ``test_arith.py`` and ``test_compare.py`` (subclassed, one
base suite per protocol), with the context in its default ``"malicious"`` mode on the
in-memory channel: every product is checked before each reveal, and the results must be
unchanged. The communication tests are the semi-honest protocol's and are left out here
(malicious costs: ``test_malicious.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from tests.mpc.test_arith import TestArithmetic as _ArithmeticSuite
from tests.mpc.test_compare import TestComparisons as _ComparisonSuite
from tests.mpc.threads import run_parties

from metisnet.mpc import MpcContext
from metisnet.net.channel import InMemoryNetwork

_jobs = itertools.count()


class MaliciousThreadRunner:
    """Three parties as threads, each context in malicious mode (the default)."""

    name = "memory-malicious"

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        net = InMemoryNetwork(3, timeout=60.0)
        results: list[Any] = [None] * 3
        job = next(_jobs)

        def party(i: int) -> None:
            ctx = MpcContext.setup(net.channel(i), session=f"mjob{job}")
            if ctx.security != "malicious":
                raise AssertionError("the default mode must be malicious")
            results[i] = fn(ctx, *args)

        run_parties(party)
        return results


@pytest.fixture(scope="module")
def channel() -> MaliciousThreadRunner:
    """Overrides the conftest's memory/tcp runners for this module."""
    return MaliciousThreadRunner()


class TestArithmeticMalicious(_ArithmeticSuite):
    # the semi-honest cost assertions do not apply; malicious costs: test_malicious.py
    test_communication_costs = None  # type: ignore[assignment]


class TestComparisonsMalicious(_ComparisonSuite):
    # the semi-honest cost assertions do not apply; malicious costs: test_malicious.py
    test_communication_costs = None  # type: ignore[assignment]
