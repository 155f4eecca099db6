"""The requester's acknowledgement wait does not count a stalled chain against members.

Found by ``metis chaos --devnet``: anvil stopped for 6 s while a committee acknowledged,
with a 2 s wait, made the requester redraw and the contract slash three honest members.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from metisnet.chain.tasks import TaskState
from metisnet.node import requester as requester_mod
from metisnet.node.requester import Requester


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(requester_mod.time, "monotonic", c)
    return c


DRAWN = SimpleNamespace(state=TaskState.COMMITTEE_DRAWN)


def test_the_wait_ends_after_its_time_while_the_chain_answers(clock: _Clock) -> None:
    check = Requester._acked_or_late(clock.t + 2.0)
    for _ in range(20):  # polls 0.1 s apart: 2 s of members' time
        clock.t += 0.1
        late = check(DRAWN)  # type: ignore[arg-type]
    assert not late
    clock.t += 0.2
    assert check(DRAWN)  # type: ignore[arg-type]


def test_a_stalled_chain_read_does_not_eat_the_members_time(clock: _Clock) -> None:
    check = Requester._acked_or_late(clock.t + 2.0)
    clock.t += 0.1
    assert not check(DRAWN)  # type: ignore[arg-type]
    clock.t += 6.0  # one read blocked: the chain node was stopped
    assert not check(DRAWN)  # type: ignore[arg-type]
    for _ in range(3):  # the members get the rest of their 2 s after the chain is back
        clock.t += 0.5
        assert not check(DRAWN)  # type: ignore[arg-type]
    clock.t += 0.5
    assert check(DRAWN)  # type: ignore[arg-type]


def test_acknowledged_ends_the_wait_at_once(clock: _Clock) -> None:
    check = Requester._acked_or_late(clock.t + 2.0)
    assert check(SimpleNamespace(state=TaskState.RUNNING))  # type: ignore[arg-type]
