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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from jobsched.errors import JobExistsError, UsageError
from jobsched.model import (
    Job,
    JobRecord,
    MigrateResult,
    Mode,
    NewJob,
    OpKind,
    parse_payload,
    with_attempts,
    with_data,
)
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
        #: Sequence number of this row's live heap entry.
        self.entry = 0

    def clear_claim(self, *, attempt_ended: bool) -> None:
        """Drop the claim; ``attempt_ended`` also drops the started mark (see ``OpKind``)."""
        self.claim_token = None
        self.claimed_by = None
        self.claimed_until = None
        if attempt_ended:
            self.started_at = None

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
            results = [self._apply_one(op) for op in ops]
            # Claims that ran out make their jobs claimable again, in start order.
            while (entry := self._top(self._held)) is not None and entry[0] <= now:
                heapq.heappop(self._held)
                row = self._rows[entry[1]]
                seq = next(self._seq)
                row.entry = seq
                heapq.heappush(self._waiting, (row.job.start, row.job.job_id, seq))
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
                    ):
                        passed.append(entry)
                        continue
                    claims.append(self._take(row, now, token, request))
            finally:
                for entry in passed:
                    heapq.heappush(self._waiting, entry)
        return claims, results

    def _take(self, row: _Row, now: datetime, token: str, request: ClaimRequest) -> Claim:
        job = _job(row)
        lease = request.lease_for(job.handler)
        taken_from = None
        if row.claim_token is not None:
            taken_from = row.claimed_by or "an unknown runner"
        lost = row.started_at is not None
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
        return Claim(job, row.version, token, lease, now + lease, taken_from=taken_from, lost=lost)

    def apply(self, ops: Sequence[Op]) -> list[bool]:
        with self._lock:
            return [self._apply_one(op) for op in ops]

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
            # not while its handler runs (a start mark that lost): it must not start twice.
            if op.kind is not OpKind.START:
                self._release(row, attempt_ended=False)
            return False
        if op.kind is OpKind.REMOVE:
            del self._rows[job_id]
        elif op.kind is OpKind.START:
            assert op.at is not None and op.attempts is not None
            row.job = with_attempts(row.job, op.attempts)
            row.started_at = op.at.astimezone(UTC)
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

    def clear(self) -> int:
        with self._lock:
            count = len(self._rows)
            self._rows.clear()
            self._waiting.clear()
            self._held.clear()
            return count


def _job(row: _Row) -> Job:
    """The stored job with a fresh copy of its data (the caller may change it freely)."""
    return with_data(row.job, parse_payload(row.payload))


def _record(row: _Row) -> JobRecord:
    return JobRecord(_job(row), row.claimed_by, row.claimed_until, row.started_at)


def _refuse_conn(conn: object) -> None:
    if conn is not None:
        raise UsageError(
            "conn= is not supported by the in-memory store (memory://): there is no database "
            "transaction to join; schedule the job without conn, or use a SQL database URL"
        )
