"""Simulate cron in virtual time: run a scheduler's passes as they would run, in milliseconds.

    from datetime import UTC, datetime, timedelta
    from jobsched import FakeClock, Scheduler
    from jobsched.testing import Simulator

    sim = Simulator(Scheduler("memory://", clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC))))
    sim.scheduler.schedule_job("reminder-1", timedelta(hours=2), "send_reminder", {"user": 1})
    log = sim.advance(timedelta(hours=3))
    assert [entry.outcome for entry in log] == [Outcome.SUCCEEDED]

The simulator runs one pass of ``run_due_jobs`` at every tick (by default every minute, at :00 as
cron does), but skips straight over ticks at which nothing is due, so a simulated year costs what
its passes cost, not what its 525,600 empty minutes would. See docs/testing.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import SupportsIndex, overload

from jobsched.clock import FakeClock
from jobsched.current import use_scheduler
from jobsched.errors import UsageError
from jobsched.handlers import Registry
from jobsched.model import JobResult, Outcome
from jobsched.scheduler import Scheduler

__all__ = ["DEFAULT_IDLE_LIMIT", "DEFAULT_TICK", "SimulationLog", "Simulator"]

log = logging.getLogger("jobsched")

#: Cron's granularity: one pass a minute.
DEFAULT_TICK = timedelta(minutes=1)
#: How far ``run_until_idle`` goes before it gives up, unless told otherwise.
DEFAULT_IDLE_LIMIT = timedelta(days=365)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SimulationLog(list[JobResult]):
    """What a simulation did: one ``JobResult`` per job a pass took, in order.

    Each entry has ``at`` (the virtual time of the pass), ``job_id``, ``handler``, ``attempt``
    (attempts spent so far, this one included if its handler started), ``outcome`` and
    ``error``. Two logs are equal when their entries are.
    """

    def __init__(self, entries: Iterable[JobResult] = ()) -> None:
        super().__init__(entries)
        #: ``run_until_idle`` only: True if no job was left, False if the time bound came first.
        self.idle: bool | None = None
        #: Passes of ``run_due_jobs`` that ran (ticks at which nothing was due are not run).
        self.passes = 0

    def for_job(self, job_id: str) -> SimulationLog:
        """The entries of one job."""
        return SimulationLog(entry for entry in self if entry.job_id == job_id)

    def outcomes(self, job_id: str | None = None) -> list[Outcome]:
        """The outcomes in order (of one job, if given)."""
        return [entry.outcome for entry in self if job_id is None or entry.job_id == job_id]

    def format(self) -> str:
        """One line per entry, for reading a simulation (and for assertion messages)."""
        return "\n".join(
            f"{e.at.isoformat()} {e.job_id} ({e.handler}) attempt {e.attempt}: {e.outcome.value}"
            + (f" ({e.error})" if e.error else "")
            for e in self
        )

    @overload
    def __getitem__(self, index: SupportsIndex) -> JobResult: ...

    @overload
    def __getitem__(self, index: slice) -> SimulationLog: ...

    def __getitem__(self, index: SupportsIndex | slice) -> JobResult | SimulationLog:
        if isinstance(index, slice):
            return SimulationLog(super().__getitem__(index))
        return super().__getitem__(index)


class Simulator:
    """Drives a scheduler on a ``FakeClock`` the way cron drives ``jobsched run-due``.

    One pass of ``scheduler.run_due_jobs()`` runs at every tick, ticks falling on whole multiples
    of ``tick`` counted from the Unix epoch (one-minute ticks at :00 of each minute). Ticks at
    which no job is due are skipped without running them, which changes nothing in the log:
    it is exactly what stepping every tick would give. While a simulation runs, the scheduler is
    the current one, so ``jobsched.now()`` in handler code returns virtual time.
    """

    def __init__(self, scheduler: Scheduler, *, tick: timedelta = DEFAULT_TICK) -> None:
        if not isinstance(scheduler.clock, FakeClock):
            raise UsageError(
                f"the Simulator needs a scheduler on a FakeClock, got {scheduler.clock!r}: create "
                "it with Scheduler(url, clock=jobsched.FakeClock(start))"
            )
        if not isinstance(tick, timedelta) or tick < _MICROSECOND or tick % _MICROSECOND:
            raise UsageError(f"tick must be a positive timedelta of whole microseconds: {tick!r}")
        self.scheduler = scheduler
        self.clock: FakeClock = scheduler.clock
        self.tick = tick
        self._tick_us = tick // _MICROSECOND
        #: Passes run by this simulator so far.
        self.passes = 0

    @classmethod
    def in_memory(
        cls,
        start: datetime,
        *,
        tick: timedelta = DEFAULT_TICK,
        registry: Registry | None = None,
    ) -> Simulator:
        """A simulator over a fresh in-memory scheduler whose clock starts at ``start``."""
        return cls(Scheduler("memory://", clock=FakeClock(start), registry=registry), tick=tick)

    def __repr__(self) -> str:
        return f"Simulator({self.scheduler!r}, tick={self.tick!r})"

    # -- time -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The virtual time."""
        return self.clock.now()

    def tick_after(self, when: datetime) -> datetime:
        """The first tick strictly after ``when``."""
        return _from_us((_to_us(when) // self._tick_us + 1) * self._tick_us)

    def tick_at_or_after(self, when: datetime) -> datetime:
        """The first tick at or after ``when``."""
        return _from_us(-(-_to_us(when) // self._tick_us) * self._tick_us)

    # -- running --------------------------------------------------------------------------------

    def advance(self, delta: timedelta | float) -> SimulationLog:
        """Run every pass cron would run in (now, now + delta] and leave the clock at the end."""
        if not isinstance(delta, timedelta):
            if isinstance(delta, bool) or not isinstance(delta, int | float):
                raise UsageError(f"delta must be a timedelta or seconds, got {delta!r}")
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise UsageError(f"a simulation only moves forward; got delta {delta}")
        return self.run_until(self.now() + delta)

    def run_until(self, when: datetime) -> SimulationLog:
        """Run every pass cron would run in (now, when] and leave the clock at ``when``."""
        end = self._check_end(when)
        result = SimulationLog()
        last = self.now()
        with use_scheduler(self.scheduler):
            while (at := self._next_pass(last, end)) is not None:
                self._run_pass(at, result)
                last = at
        self.clock.set(end)
        return result

    def run_until_idle(self, max_time: timedelta | datetime = DEFAULT_IDLE_LIMIT) -> SimulationLog:
        """Run passes until no job is left, but not past ``max_time`` (a bound in virtual time,
        or a timedelta from now).

        When idle, the clock is left at the last pass. If the bound comes first, the clock is
        left at the bound, ``log.idle`` is False and a warning is logged.
        """
        bound = max_time if isinstance(max_time, datetime) else self._relative(max_time)
        end = self._check_end(bound)
        result = SimulationLog()
        scheduler = self.scheduler
        last = self.now()
        with use_scheduler(self.scheduler):
            while scheduler.count_jobs():
                at = self._next_pass(last, end)
                if at is None:
                    break
                self._run_pass(at, result)
                last = at
            else:
                result.idle = True
                return result
        self.clock.set(end)
        result.idle = False
        log.warning(
            "the simulation reached its bound %s with %d job(s) left (next due %s)",
            end.isoformat(),
            scheduler.count_jobs(),
            _iso(scheduler.next_due()),
        )
        return result

    def _relative(self, delta: object) -> datetime:
        if not isinstance(delta, timedelta):
            raise UsageError(f"max_time must be a timedelta or an aware datetime, got {delta!r}")
        return self.now() + delta

    def _check_end(self, when: object) -> datetime:
        if not isinstance(when, datetime):
            raise UsageError(f"expected an aware datetime, got {type(when).__name__}")
        if when.tzinfo is None or when.tzinfo.utcoffset(when) is None:
            raise UsageError(f"{when.isoformat()} has no time zone; pass an aware datetime")
        when = when.astimezone(UTC)
        if when < self.now():
            raise UsageError(
                f"a simulation only moves forward: {when.isoformat()} is before the clock's "
                f"{self.now().isoformat()}"
            )
        return when

    def _next_pass(self, last: datetime, end: datetime) -> datetime | None:
        """The first tick after ``last``, at most ``end``, at which a pass could take a job."""
        due = self.scheduler.next_due()
        if due is None:
            return None
        # ``due`` is never later than the truth, so no tick before this one could take a job,
        # and a pass at a tick where nothing is due does nothing: skipping it changes nothing.
        at = max(self.tick_after(last), self.tick_at_or_after(due))
        return at if at <= end else None

    def _run_pass(self, at: datetime, result: SimulationLog) -> None:
        self.clock.set(at)
        report = self.scheduler.run_due_jobs()
        self.passes += 1
        result.passes += 1
        result.extend(report.results)


def _to_us(when: datetime) -> int:
    return (when - _EPOCH) // _MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _iso(when: datetime | None) -> str:
    return "never" if when is None else when.isoformat()
