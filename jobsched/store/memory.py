"""The in-memory store: jobs in a Python dict, for fast tests and simulations. No database.

It keeps exactly the contract of the SQL store (modes, versions, fenced writes, leased claims,
lost attempts), so a test that passes in memory passes on SQLite and MariaDB. It is private to
one process: ``run-due`` processes cannot share it (``shared`` is False).

Finding due jobs does not scan every job: two heaps index the jobs, unclaimed ones by
``(start, job_id)`` and claimed ones by ``(claimed_until, job_id)``. Entries are invalidated
lazily: each job remembers the sequence number of its one live entry, and an entry whose number
no longer matches is dropped when it reaches the top of its heap.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from jobsched.errors import JobExistsError, UsageError
from jobsched.history import PRUNE_BATCH, HistoryQuery, JobCounts, JobRun, NewRun
from jobsched.model import (
    Job,
    JobRecord,
    MigrateResult,
    Mode,
    NewJob,
    OpKind,
    Outcome,
    Progress,
    parse_payload,
    with_attempts,
    with_data,
)
from jobsched.presence import Runner, RunningJob
from jobsched.rules import DEFERRED_PREFIX
from jobsched.store.base import (
    Claim,
    ClaimRequest,
    Op,
    Store,
    new_version,
)

T = TypeVar("T")

#: A heap entry: (time, job_id, sequence number of the entry).
_Entry = tuple[datetime, str, int]


class _Row:
    """One job as stored: the job without its data, the data as JSON text, and the claim."""

    __slots__ = (
        "claim_token",
        "claimed_by",
        "claimed_until",
        "entry",
        "job",
        "payload",
        "progress",
        "started_at",
        "version",
    )

    def __init__(self, job: Job, payload: str, version: int) -> None:
        self.job = job  # its ``data`` is None: the payload text is the stored data
        self.payload = payload
        self.version = version
        self.claim_token: str | None = None
        self.claimed_by: str | None = None
        self.claimed_until: datetime | None = None
        self.started_at: datetime | None = None
        self.progress: Progress | None = None
        #: Sequence number of this row's live heap entry.
        self.entry = 0

    def clear_claim(self, *, attempt_ended: bool) -> None:
        """Drop the claim; ``attempt_ended`` also drops the started mark (see ``OpKind``)."""
        self.claim_token = None
        self.claimed_by = None
        self.claimed_until = None
        if attempt_ended:
            self.started_at = None
            self.progress = None

    def load(self, new: NewJob) -> None:
        """Take every field of ``new`` (the claim and version are the caller's business)."""
        self.job = with_data(new.job, None)
        self.payload = new.payload


class MemoryStore(Store):
    """Jobs in memory, guarded by one lock. Thread-safe; private to this process."""

    shared = False

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        #: Unclaimed jobs (and jobs whose claim ran out) by (start, job_id).
        self._waiting: list[_Entry] = []
        #: Claimed jobs by (claimed_until, job_id).
        self._held: list[_Entry] = []
        #: The history by run id (ids grow with each row), and the run ids in the order
        #: written, failed runs apart (they are kept longer): what pruning pops. (No index by
        #: job: a test's history is small, and a pass writes a row for every job it takes.)
        self._runs: dict[int, _StoredRun] = {}
        self._run_ids = itertools.count(1)
        self._written: deque[int] = deque()
        self._written_failed: deque[int] = deque()
        self._pruned_at: datetime | None = None

    def describe(self) -> str:
        return "memory://"

    @property
    def persistent(self) -> bool:
        return False

    def migrate(self) -> MigrateResult:
        """Nothing to create: the in-memory store has no schema, so it is always current."""
        return MigrateResult.CURRENT

    # -- the index ------------------------------------------------------------------------------

    def _index(self, row: _Row) -> None:
        """Give ``row`` a fresh heap entry for its current state (its old one goes stale)."""
        seq = next(self._seq)
        row.entry = seq
        if row.claimed_until is None:
            heap, at = self._waiting, row.job.start
        else:
            heap, at = self._held, row.claimed_until
        heapq.heappush(heap, (at, row.job.job_id, seq))
        if len(heap) > 2 * len(self._rows) + 1024:
            # Mostly stale entries (say, one job rescheduled far ahead many times): compact.
            heap[:] = [entry for entry in heap if self._live(entry) is not None]
            heapq.heapify(heap)

    def _live(self, entry: _Entry) -> _Row | None:
        row = self._rows.get(entry[1])
        return row if row is not None and row.entry == entry[2] else None

    def _top(self, heap: list[_Entry]) -> _Entry | None:
        """The first live entry of ``heap``, dropping stale ones on the way."""
        while heap:
            if self._live(heap[0]) is not None:
                return heap[0]
            heapq.heappop(heap)
        return None

    def _add(self, new: NewJob, version: int) -> _Row:
        row = _Row(with_data(new.job, None), new.payload, version)
        self._rows[new.job.job_id] = row
        self._index(row)
        return row

    # -- scheduling -----------------------------------------------------------------------------

    def schedule(
        self, jobs: Sequence[NewJob], mode: Mode, *, conn: object = None
    ) -> list[tuple[Job, bool]]:
        _refuse_conn(conn)
        results: list[tuple[Job, bool]] = []
        with self._lock:
            if mode is Mode.NEW:
                for nj in jobs:
                    if nj.job.job_id in self._rows:
                        raise JobExistsError(nj.job.job_id)
                for nj in jobs:
                    self._add(nj, new_version())
                    results.append((nj.job, True))
            elif mode is Mode.IGNORE_IF_EXISTS:
                for nj in jobs:
                    row = self._rows.get(nj.job.job_id)
                    if row is None:
                        self._add(nj, new_version())
                        results.append((nj.job, True))
                    else:
                        results.append((_job(row), False))
            else:
                for nj in jobs:
                    row = self._rows.get(nj.job.job_id)
                    if row is None:
                        self._add(nj, new_version())
                    else:
                        self._replace(row, nj)
                    results.append((nj.job, True))
        return results

    def _replace(self, row: _Row, new: NewJob) -> None:
        """Every field replaced; the claim stays (a running attempt keeps its job until it
        ends, so it cannot start twice), but the attempt it guards is no longer this job's."""
        row.load(new)
        row.version += 1
        row.started_at = None
        row.progress = None
        self._index(row)

    def get(self, job_id: str, *, conn: object = None) -> Job | None:
        _refuse_conn(conn)
        with self._lock:
            row = self._rows.get(job_id)
            return None if row is None else _job(row)

    def remove(self, job_id: str, *, conn: object = None) -> bool:
        _refuse_conn(conn)
        with self._lock:
            return self._rows.pop(job_id, None) is not None

    def update(
        self,
        job_id: str,
        fn: Callable[[Job | None], tuple[NewJob | None, T]],
        *,
        conn: object = None,
    ) -> T:
        _refuse_conn(conn)
        return super().update(job_id, fn)

    def read_versioned(self, job_id: str) -> tuple[Job, int] | None:
        with self._lock:
            row = self._rows.get(job_id)
            return None if row is None else (_job(row), row.version)

    def write_versioned(self, job_id: str, version: int | None, new: NewJob | None) -> bool:
        with self._lock:
            row = self._rows.get(job_id)
            if version is None:
                if row is not None:
                    return False
                assert new is not None
                self._add(new, new_version())
                return True
            if row is None or row.version != version:
                return False
            if new is None:
                del self._rows[job_id]
            else:
                self._replace(row, new)
            return True

    # -- running --------------------------------------------------------------------------------

    #: Writes cost nothing here: the runner makes each one at once.
    batches_writes = False

    def claim(
        self, request: ClaimRequest, ops: Sequence[Op] = ()
    ) -> tuple[list[Claim], list[bool]]:
        now = request.now if request.now.tzinfo is UTC else request.now.astimezone(UTC)
        due_by = now if request.due_by is None else min(now, request.due_by.astimezone(UTC))
        after = request.after
        served = None if request.handlers is None else frozenset(request.handlers)
        claims: list[Claim] = []
        with self._lock:
            # Unique within this store, the only place the token means anything.
            token = f"m{next(self._seq)}"
            results = self._apply_all(ops)
            # Claims that ran out make their jobs claimable again, in start order.
            while (entry := self._top(self._held)) is not None and entry[0] <= now:
                heapq.heappop(self._held)
                row = self._rows[entry[1]]
                seq = next(self._seq)
                row.entry = seq
                heapq.heappush(self._waiting, (row.job.start, row.job.job_id, seq))
            # Free slots of the handlers with ``max_running`` this claim may take: their
            # limits less their jobs claimed now (every held entry is live by now).
            free = self._free_slots(request, served, now)
            passed: list[_Entry] = []  # live entries to put back: before the cursor or held
            try:
                while len(claims) < request.limit:
                    entry = self._top(self._waiting)
                    if entry is None or entry[0] > due_by:
                        break
                    heapq.heappop(self._waiting)
                    row = self._rows[entry[1]]
                    if (
                        (after is not None and (entry[0], entry[1]) <= after)
                        or (row.claimed_until is not None and row.claimed_until > now)
                        or (served is not None and row.job.handler not in served)
                        or free.get(row.job.handler, 1) <= 0
                    ):
                        passed.append(entry)
                        continue
                    if row.job.handler in free:
                        free[row.job.handler] -= 1
                    claims.append(self._take(row, now, token, request))
            finally:
                for entry in passed:
                    heapq.heappush(self._waiting, entry)
        return claims, results

    def _free_slots(
        self, request: ClaimRequest, served: frozenset[str] | None, now: datetime
    ) -> dict[str, int]:
        """``max_running`` less the jobs claimed now, of each limited handler in ``served``
        (the caller holds the lock, and has moved the claims that ran out to ``_waiting``)."""
        if not request.limits:
            return {}
        free = {
            name: most for name, most in request.limits.items() if served is None or name in served
        }
        if free:
            for entry in self._held:
                row = self._live(entry)
                if row is not None and row.job.handler in free and entry[0] > now:
                    free[row.job.handler] -= 1
        return free

    def _take(self, row: _Row, now: datetime, token: str, request: ClaimRequest) -> Claim:
        job = _job(row)
        lease = request.lease_for(job.handler)
        taken_from = None
        if row.claim_token is not None:
            taken_from = row.claimed_by or "an unknown runner"
        lost = row.started_at is not None
        lost_start = row.started_at
        if lost:
            error = request.lost_error(
                row.job.last_error, job.attempts, row.claimed_by, row.claimed_until
            )
            row.job = replace(row.job, last_error=error)
            job = replace(job, last_error=error)
        row.claim_token = token
        row.claimed_by = request.runner
        row.claimed_until = now + lease
        row.version += 1
        self._index(row)
        return Claim(
            job,
            row.version,
            token,
            lease,
            now + lease,
            taken_from=taken_from,
            lost=lost,
            payload=row.payload,
            started_at=lost_start,
        )

    def apply(self, ops: Sequence[Op]) -> list[bool]:
        with self._lock:
            return self._apply_all(ops)

    def _apply_all(self, ops: Sequence[Op]) -> list[bool]:
        """Apply ``ops`` and write the history rows they carry (the caller holds the lock)."""
        results = []
        for op in ops:
            applied = self._apply_one(op)
            for run in op.runs:
                self._add_run(run, superseded=not applied)
            results.append(applied)
        return results

    def _apply_one(self, op: Op) -> bool:
        job_id = op.claim.job.job_id
        row = self._rows.get(job_id)
        if row is None or row.claim_token != op.claim.token:
            return False
        if op.kind is OpKind.RELEASE:
            self._release(row, attempt_ended=False)
            return True
        if row.version != op.claim.version:
            # A newer state won (the job was rescheduled or updated meanwhile): let it go, but
            # not while its handler runs (a start mark or progress that lost): it must not start
            # twice.
            if op.kind not in (OpKind.START, OpKind.PROGRESS):
                self._release(row, attempt_ended=False)
            return False
        if op.kind is OpKind.REMOVE:
            del self._rows[job_id]
        elif op.kind is OpKind.PROGRESS:
            row.progress = op.progress
        elif op.kind is OpKind.START:
            assert op.at is not None and op.attempts is not None
            row.job = with_attempts(row.job, op.attempts)
            row.started_at = op.at.astimezone(UTC)
            row.progress = None
            if op.until is not None:
                row.claimed_until = op.until.astimezone(UTC)
                self._index(row)
        elif op.kind is OpKind.RETRY:
            assert op.at is not None and op.attempts is not None
            row.job = replace(
                row.job, start=op.at.astimezone(UTC), last_error=op.error, attempts=op.attempts
            )
            row.version += 1
            self._release(row, attempt_ended=True)
        else:  # KEEP
            assert op.attempts is not None
            row.job = with_attempts(row.job, op.attempts)
            row.version += 1
            self._release(row, attempt_ended=True)
        return True

    def _release(self, row: _Row, *, attempt_ended: bool) -> None:
        row.clear_claim(attempt_ended=attempt_ended)
        self._index(row)

    def heartbeat(self, leases: Sequence[tuple[Claim, datetime]]) -> set[str]:
        extended: set[str] = set()
        with self._lock:
            for claim, until in leases:
                row = self._rows.get(claim.job.job_id)
                if row is not None and row.claim_token == claim.token:
                    row.claimed_until = until.astimezone(UTC)
                    self._index(row)
                    extended.add(claim.job.job_id)
        return extended

    # -- reading --------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        # A job's due time is its claim's end while claimed, else its start (as the SQL store
        # has it). A waiting row whose claim ran out is indexed by its start: it cannot be taken
        # before its start anyway, so that is still never later than the truth.
        with self._lock:
            times = [e[0] for e in (self._top(self._waiting), self._top(self._held)) if e]
        return min(times, default=None)

    def get_record(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._rows.get(job_id)
            return None if row is None else _record(row)

    def list_jobs(
        self,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Job]:
        with self._lock:
            rows = self._listed(due_at, handler, limit)
            jobs = [_job(row) for row in rows]
        return iter(jobs)

    def list_records(
        self,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        with self._lock:
            records = [_record(row) for row in self._listed(due_at, handler, limit)]
        return iter(records)

    def _listed(
        self, due_at: datetime | None, handler: str | None, limit: int | None
    ) -> list[_Row]:
        """Rows by start then id (the caller holds the lock)."""
        rows = [
            row
            for row in self._rows.values()
            if (due_at is None or row.job.start <= due_at)
            and (handler is None or row.job.handler == handler)
        ]
        rows.sort(key=lambda row: (row.job.start, row.job.job_id))
        return rows if limit is None else rows[:limit]

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    # -- history ----------------------------------------------------------------------------------

    def _add_run(self, new: NewRun, *, superseded: bool) -> None:
        run_id = next(self._run_ids)
        self._runs[run_id] = (new, superseded, None)
        (self._written_failed if new.outcome == _FAILED else self._written).append(run_id)

    def history(self, query: HistoryQuery) -> list[JobRun]:
        with self._lock:
            ids: Sequence[int] = self._written_failed if query.open_failures else list(self._runs)
            found = [
                (run_id, stored)
                for run_id in ids
                if (stored := self._runs.get(run_id)) is not None
                and (query.job_id is None or stored[0].job_id == query.job_id)
                and (query.handler is None or stored[0].handler == query.handler)
                and (query.outcome is None or stored[0].outcome == query.outcome.value)
                and (query.since is None or stored[0].finished_at >= query.since)
                and (not query.open_failures or _open_failure(stored))
            ]
        found.sort(key=lambda item: (item[1][0].finished_at, item[0]), reverse=True)
        if query.limit is not None:
            found = found[: query.limit]
        return [_job_run(run_id, stored) for run_id, stored in found]

    def retry(self, new: NewJob, now: datetime) -> None:
        with self._lock:
            if new.job.job_id in self._rows:
                raise JobExistsError(new.job.job_id)
            self._add(new, new_version())
            for run_id in list(self._written_failed):
                stored = self._runs[run_id]
                if stored[0].job_id == new.job.job_id and _open_failure(stored):
                    self._runs[run_id] = (stored[0], stored[1], now.astimezone(UTC))

    def prune_history(self, cutoff: datetime, failed_cutoff: datetime) -> int:
        pruned = 0
        while True:  # a batch a turn of the lock, as the SQL store's transactions
            with self._lock:
                batch = 0
                for written, before in (
                    (self._written, cutoff),
                    (self._written_failed, failed_cutoff),
                ):
                    while batch < PRUNE_BATCH and self._older(written, before):
                        del self._runs[written.popleft()]
                        batch += 1
            pruned += batch
            if batch < PRUNE_BATCH:
                return pruned

    def prune_if_due(
        self, now: datetime, every: timedelta, cutoff: datetime, failed_cutoff: datetime
    ) -> int:
        with self._lock:  # one turn of the lock when nothing is due or old (a simulation's
            # passes do this at every tick that runs a pass)
            if self._pruned_at is not None and now - self._pruned_at < every:
                return 0
            self._pruned_at = now
            if not self._older(self._written, cutoff) and not self._older(
                self._written_failed, failed_cutoff
            ):
                return 0
        return self.prune_history(cutoff, failed_cutoff)

    def _older(self, written: deque[int], before: datetime) -> bool:
        """Whether the oldest row of ``written`` finished before ``before`` (lock held)."""
        return bool(written) and self._runs[written[0]][0].finished_at < before

    def due_for_pruning(self, now: datetime, every: timedelta) -> bool:
        with self._lock:
            if self._pruned_at is not None and now - self._pruned_at < every:
                return False
            self._pruned_at = now
            return True

    def job_counts(self, now: datetime) -> dict[str, JobCounts]:
        counts: dict[str, dict[str, int]] = {}
        oldest: dict[str, datetime] = {}
        with self._lock:
            for row in self._rows.values():
                job = row.job
                held = row.claimed_until is not None and row.claimed_until > now
                where = counts.setdefault(job.handler, dict.fromkeys(_COUNTED, 0))
                if held and row.started_at is not None:
                    where["running"] += 1
                elif held or row.started_at is not None or job.start <= now:
                    if (
                        not held
                        and row.started_at is None
                        and job.last_error is not None
                        and job.last_error.startswith(DEFERRED_PREFIX)
                    ):
                        where["deferred"] += 1
                    else:
                        where["due"] += 1
                    if not held and job.start <= now:
                        first = oldest.get(job.handler)
                        if first is None or job.start < first:
                            oldest[job.handler] = job.start
                elif job.last_error is not None and job.last_error.startswith(DEFERRED_PREFIX):
                    where["deferred"] += 1
                else:
                    where["scheduled"] += 1
        return {
            handler: JobCounts(**values, oldest_due=oldest.get(handler))
            for handler, values in counts.items()
        }

    def outcome_counts(self, since: datetime) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        with self._lock:
            for run, _, _ in self._runs.values():
                if run.finished_at >= since:
                    key = (run.handler, run.outcome)
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def run_seconds(self, since: datetime) -> dict[str, list[float]]:
        seconds: dict[str, list[float]] = {}
        with self._lock:
            for run, _, _ in self._runs.values():
                if run.finished_at >= since and run.started_at is not None and run.outcome != _LOST:
                    elapsed = (run.finished_at - run.started_at).total_seconds()
                    seconds.setdefault(run.handler, []).append(elapsed)
        return seconds

    def backlog(self, now: datetime) -> tuple[int, datetime | None]:
        count, oldest = 0, None
        with self._lock:
            for row in self._rows.values():
                held = row.claimed_until is not None and row.claimed_until > now
                if not held and row.job.start <= now:
                    count += 1
                    if oldest is None or row.job.start < oldest:
                        oldest = row.job.start
        return count, oldest

    def clear(self, *, history: bool = False) -> int:
        with self._lock:
            count = len(self._rows)
            self._rows.clear()
            self._waiting.clear()
            self._held.clear()
            if history:
                self._runs.clear()
                self._written.clear()
                self._written_failed.clear()
                self._pruned_at = None
            return count

    # -- runners --------------------------------------------------------------------------------

    def _runner_rows(self) -> dict[str, Runner]:
        """The runners table by name, made on first use (the caller holds the lock)."""
        try:
            return self._runners
        except AttributeError:
            self._runners: dict[str, Runner] = {}
            return self._runners

    def register_runner(self, runner: Runner) -> None:
        runner = replace(
            runner,
            started_at=runner.started_at.astimezone(UTC),
            heartbeat_at=runner.heartbeat_at.astimezone(UTC),
        )
        with self._lock:
            self._runner_rows()[runner.name] = runner

    def beat_runner(self, name: str, now: datetime) -> bool:
        with self._lock:
            table = self._runner_rows()
            runner = table.get(name)
            if runner is None:
                return False
            table[name] = replace(runner, heartbeat_at=now.astimezone(UTC))
            return True

    def remove_runner(self, name: str) -> bool:
        with self._lock:
            return self._runner_rows().pop(name, None) is not None

    def forget_runners(self, before: datetime) -> int:
        with self._lock:
            table = self._runner_rows()
            old = [name for name, runner in table.items() if runner.heartbeat_at < before]
            for name in old:
                del table[name]
            return len(old)

    def list_runners(self, live_since: datetime) -> list[tuple[Runner, tuple[RunningJob, ...]]]:
        with self._lock:
            found = sorted(self._runner_rows().values(), key=lambda runner: runner.name)
            live = {runner.name for runner in found if runner.heartbeat_at >= live_since}
            running: dict[str, list[RunningJob]] = {}
            if live:
                for row in self._rows.values():
                    if row.claimed_by in live and row.started_at is not None:
                        job = row.job
                        running.setdefault(row.claimed_by, []).append(
                            RunningJob(
                                job.job_id, job.handler, job.start, row.started_at, row.progress
                            )
                        )
        for jobs in running.values():
            jobs.sort(key=lambda job: (job.started_at, job.job_id))
        return [(runner, tuple(running.get(runner.name, ()))) for runner in found]


_COUNTED = ("scheduled", "due", "running", "deferred")
_FAILED = Outcome.FAILED.value
_LOST = Outcome.LOST.value


#: A history row as kept here: the row as written, whether it was superseded, when it was
#: retried (a ``JobRun`` is made only when the history is read).
_StoredRun = tuple[NewRun, bool, datetime | None]


def _open_failure(stored: _StoredRun) -> bool:
    """A failed run not yet retried, whose outcome was written (not superseded)."""
    run, superseded, retried_at = stored
    return run.outcome == _FAILED and retried_at is None and not superseded


def _job_run(run_id: int, stored: _StoredRun) -> JobRun:
    new, superseded, retried_at = stored
    return JobRun(
        run_id,
        new.job_id,
        new.handler,
        new.attempt,
        new.max_attempts,
        Outcome(new.outcome),
        new.runner,
        new.scheduled_start.astimezone(UTC),
        None if new.started_at is None else new.started_at.astimezone(UTC),
        new.finished_at.astimezone(UTC),
        new.error,
        new.payload,
        superseded,
        retried_at,
    )


def _job(row: _Row) -> Job:
    """The stored job with a fresh copy of its data (the caller may change it freely)."""
    return with_data(row.job, parse_payload(row.payload))


def _record(row: _Row) -> JobRecord:
    return JobRecord(_job(row), row.claimed_by, row.claimed_until, row.started_at, row.progress)


def _refuse_conn(conn: object) -> None:
    if conn is not None:
        raise UsageError(
            "conn= is not supported by the in-memory store (memory://): there is no database "
            "transaction to join; schedule the job without conn, or use a SQL database URL"
        )
