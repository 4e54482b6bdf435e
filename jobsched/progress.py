"""``jobsched.progress``: how a running handler reports how far it is.

The pass sets where reports go (``sink``) around each handler it runs, in a context variable,
so a report reaches the right job from any handler thread and from ``async`` handlers (their
tasks copy the context). Outside a pass, a report is dropped at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from jobsched.history import checked_progress
from jobsched.model import Progress

#: Where the reports of the handler running in this context go (the pass sets it around each
#: handler it runs: ``sink.set(...)``, then ``sink.reset(token)``).
sink: ContextVar[Callable[[Progress], None] | None] = ContextVar("jobsched_progress", default=None)


def progress(done: float, total: float | None = None, note: str | None = None) -> None:
    """Report from inside a handler that ``done`` of ``total`` is done (``note``: a word on
    what it is doing). The latest report reaches the jobs table within about a second (with
    the pass's next batch of writes, never a write per call) and shows in ``status`` and
    ``jobsched show`` while the handler runs. Outside a pass it does nothing.
    """
    to = sink.get()
    if to is None:
        return
    to(checked_progress(done, total, note))
