"""The outbox: a pass's finishing writes, sent in batches but promptly.

A finished job's write waits here until the next write the pass makes anyway (the start of the
next attempt, a claim, the end of the pass), and at most ``MAX_DELAY`` seconds: so a finish and
the next start share one transaction, and a crash loses at most the outcomes of that interval
(their attempts then count as lost and run again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from jobsched.store.base import Op, Store

#: The longest a finishing write waits before it is sent, in seconds (checked every
#: ``MAX_DELAY``, so each outcome is written well within 50 ms of its handler's return).
MAX_DELAY = 0.02


@dataclass(frozen=True, slots=True)
class _Letter:
    op: Op
    on_sent: Callable[[bool], None]


class Outbox:
    """Fenced writes waiting to be sent. Thread-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._letters: list[_Letter] = []
        self._since: float | None = None
        self._lock = threading.Lock()

    def put(self, op: Op, on_sent: Callable[[bool], None]) -> None:
        """Queue ``op``; ``on_sent(applied)`` is called once it is written."""
        with self._lock:
            self._letters.append(_Letter(op, on_sent))
            if self._since is None:
                self._since = time.monotonic()

    def stale(self) -> bool:
        """True when a write has waited ``MAX_DELAY`` or more."""
        since = self._since
        return since is not None and time.monotonic() - since >= MAX_DELAY

    def send(self, now: datetime, ops: Sequence[Op] = ()) -> list[bool]:
        """Write what waits together with ``ops``, in one transaction; returns ``ops``' results.

        If the write fails, the waiting writes are put back (a later send retries them).
        """
        with self._lock:
            letters, self._letters = self._letters, []
            self._since = None
        if not letters and not ops:
            return []
        try:
            results = self.store.apply(now, [letter.op for letter in letters] + list(ops))
        except BaseException:
            with self._lock:
                self._letters[:0] = letters
                if self._since is None:
                    self._since = time.monotonic()
            raise
        for letter, applied in zip(letters, results, strict=False):
            letter.on_sent(applied)
        return results[len(letters) :]

    def __len__(self) -> int:
        return len(self._letters)
