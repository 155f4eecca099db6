"""Run one function per party in threads (the in-memory test networks)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_parties(party: Callable[[int], None], parties: int = 3) -> None:
    """Call ``party(i)`` for every party in its own thread and wait for all of them; the
    first exception any of them raised is re-raised here, in the test's thread."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            party(i)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
