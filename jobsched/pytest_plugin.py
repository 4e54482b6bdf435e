"""pytest plugin for jobsched (registered through the ``pytest11`` entry point).

pytest imports this module at start-up in every project that installs jobsched, so it imports
nothing heavy: jobsched itself is imported inside the fixture, when a test asks for it.

- fixture ``jobsched_sim``: a ``jobsched.testing.Simulator`` over a scheduler on a ``FakeClock``
  that starts at ``DEFAULT_START``, on the in-memory backend, installed as the current scheduler
  for the test (so app code calling ``jobsched.schedule_job(...)`` is captured) and restored
  after, whether the test passed or not.
- marker ``@pytest.mark.jobsched(url=..., start=..., tick=...)``: run the fixture on another
  database (SQLite, MariaDB), from another start, or with another tick.
- option ``--jobsched-url URL``: the database for every ``jobsched_sim`` without a marker url.

On a SQL database the fixture migrates the schema and empties the jobs table first: point it at
a database of the tests' own, never at one whose jobs matter.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from jobsched.testing import Simulator

__all__ = ["DEFAULT_START", "jobsched_sim"]

#: Where the ``jobsched_sim`` clock starts unless the marker says otherwise: a fixed time, so
#: tests are repeatable (Tuesday 1 January 2030, 00:00 UTC).
DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)
MEMORY_URL = "memory://"
MARKER = "jobsched"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jobsched")
    group.addoption(
        "--jobsched-url",
        dest="jobsched_url",
        default=None,
        metavar="URL",
        help=(
            "database for the jobsched_sim fixture (default memory://); a SQL database is "
            "migrated and its jobs table emptied before each test"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(url=None, start=None, tick=None): run the jobsched_sim fixture on this "
        "database URL (default memory:// or --jobsched-url), from this aware start time "
        f"(default {DEFAULT_START.isoformat()}), with this tick (default one minute)",
    )


@pytest.fixture
def jobsched_sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """A Simulator over a fresh scheduler on a FakeClock at ``DEFAULT_START``, installed as the
    current scheduler for the test (restored after, even if the test fails)."""
    from jobsched import FakeClock, Scheduler, set_scheduler
    from jobsched.testing import DEFAULT_TICK, Simulator

    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        options.setdefault("url", marker.args[0])
    unknown = set(options) - {"url", "start", "tick"}
    if unknown:
        pytest.fail(f"@pytest.mark.{MARKER} takes url, start and tick; got {sorted(unknown)}")
    url = options.get("url") or request.config.getoption("jobsched_url") or MEMORY_URL
    start = options.get("start") or DEFAULT_START
    tick = options.get("tick") or DEFAULT_TICK
    if not isinstance(tick, timedelta):
        tick = timedelta(seconds=tick)

    scheduler = Scheduler(url, clock=FakeClock(start))
    try:
        scheduler.migrate()
        scheduler.clear()
        sim = Simulator(scheduler, tick=tick)
    except BaseException:
        scheduler.close()
        raise
    previous = set_scheduler(scheduler)
    try:
        yield sim
    finally:
        set_scheduler(previous)
        scheduler.close()
