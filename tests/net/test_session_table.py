"""The session bookkeeping both TLS endpoints share (:class:`SessionTable`)."""

from __future__ import annotations

import pytest

from metisnet.errors import ValidationError, WireError
from metisnet.net.session_base import CLOSED_MEMORY, SessionTable
from metisnet.types import NodeId

A, B, C, D = (NodeId(x * 40) for x in "abcd")  # ids: 40 hex-like characters


class Box:
    """A stand-in inbox: only its identity matters here."""


def table(limit: int = 2) -> SessionTable[Box]:
    return SessionTable(Box, limit)


def test_join_then_route_gives_the_same_inbox() -> None:
    t = table()
    inbox = t.join(b"s1", (A, B, C))
    assert t.route(b"s1", B) is inbox
    assert t.of_peer(B) == [inbox] and t.of_peer(D) == []


def test_early_frames_keep_their_inbox_for_the_join() -> None:
    t = table()
    early = t.route(b"s1", B)  # a peer sent before this node joined
    assert early is not None
    assert t.join(b"s1", (A, B, C)) is early


def test_a_non_member_is_refused_once_the_members_are_known() -> None:
    t = table()
    t.join(b"s1", (A, B, C))
    with pytest.raises(WireError, match="not a member"):
        t.route(b"s1", D)


def test_pending_sessions_are_bounded_and_joining_frees_a_place() -> None:
    t = table(limit=2)
    t.route(b"p1", B)
    t.route(b"p2", B)
    with pytest.raises(WireError, match="more than 2 sessions"):
        t.route(b"p3", B)
    t.join(b"p1", (A, B))  # no longer pending
    assert t.route(b"p3", B) is not None


def test_closed_ids_drop_late_frames_and_cannot_be_reused() -> None:
    t = table()
    inbox = t.join(b"s1", (A, B))
    assert t.close(b"s1") is inbox
    assert t.route(b"s1", B) is None  # dropped, not a new pending session
    assert b"s1" not in t.inboxes
    with pytest.raises(ValidationError, match="already used"):
        t.join(b"s1", (A, B))
    t.join(b"s2", (A, B))
    with pytest.raises(ValidationError, match="already used"):  # joined twice
        t.join(b"s2", (A, B))
    assert t.close(b"never") is None


def test_closed_memory_is_bounded() -> None:
    t = table()
    for i in range(CLOSED_MEMORY + 1):
        t.close(i.to_bytes(4, "big"))
    # the oldest id was forgotten: a frame for it opens a pending session again
    assert t.route((0).to_bytes(4, "big"), B) is not None
    assert t.route((1).to_bytes(4, "big"), B) is None
