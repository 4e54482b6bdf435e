"""``jobsched.progress``: how a running handler reports how far it is.

The pass sets where reports go (``reporting``) around each handler it runs, in a context
variable, so a report reaches the right job from any handler thread and from ``async``
handlers (their tasks copy the context). Outside a pass, a report is dropped at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from jobsched.history import checked_progress
from jobsched.model import Progress

_sink: ContextVar[Callable[[Progress], None] | None] = ContextVar("jobsched_progress", default=None)


def progress(done: float, total: float | None = None, note: str | None = None) -> None:
    """Report from inside a handler that ``done`` of ``total`` is done (``note``: a word on
    what it is doing). The latest report reaches the jobs table within about a second (with
    the pass's next batch of writes, never a write per call) and shows in ``status`` and
    ``jobsched show`` while the handler runs. Outside a pass it does nothing.
    """
    sink = _sink.get()
    if sink is None:
        return
    sink(checked_progress(done, total, note))


@contextmanager
def reporting(sink: Callable[[Progress], None]) -> Iterator[None]:
    """Send the reports made in this context (a handler's) to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
