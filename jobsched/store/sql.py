"""The SQL store: every statement jobsched sends to SQLite or MySQL/MariaDB is built here."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from jobsched.errors import DatabaseError, JobExistsError, SchemaError, UsageError, cut_text
from jobsched.history import PRUNE_BATCH, HistoryQuery, JobCounts, JobRun
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
)
from jobsched.presence import Runner, RunningJob
from jobsched.rules import DEFERRED_PREFIX
from jobsched.schema import (
    PRUNED_AT,
    SCHEMA_REVISION,
    VERSION_TABLE,
    job_runs,
    jobs,
    meta,
    runners,
)
from jobsched.store.base import (
    Claim,
    ClaimRequest,
    Cursor,
    Op,
    Store,
    new_token,
    new_version,
)
from jobsched.store.dialect import (
    BUMP,
    BUSY,
    DISCONNECTED,
    DUPLICATE,
    UNREACHABLE,
    NewRow,
    OnConflict,
    checked_url,
    chunks,
    dialect_for,
    family,
)

log = logging.getLogger("jobsched")
T = TypeVar("T")
K = TypeVar("K")

c = jobs.c
r = job_runs.c
_CLAIM_CLEARED = {"claim_token": None, "claimed_by": None, "claimed_until": None}
_NO_PROGRESS = {"progress_done": None, "progress_total": None, "progress_note": None}
#: An attempt that ended (kept, retried, deferred): its claim, started mark and progress go.
_ATTEMPT_ENDED = {**_CLAIM_CLEARED, "started_at": None, **_NO_PROGRESS}
#: What each kind of write sets in every row it writes (beyond ``_written``).
_COMMON: dict[OpKind, dict[str, Any]] = {
    OpKind.START: _NO_PROGRESS,
    OpKind.RETRY: {**_ATTEMPT_ENDED, "version": BUMP},
    OpKind.KEEP: {**_ATTEMPT_ENDED, "version": BUMP},
    OpKind.PROGRESS: {},
}
#: Seconds API calls keep retrying a busy database (deadlock, lock wait, SQLite busy).
API_PATIENCE = 10.0
#: Seconds a runner keeps retrying its bookkeeping writes, reconnecting as needed.
BOOKKEEPING_PATIENCE = 60.0


def create_engine(url: sa.URL) -> sa.Engine:
    """An engine set up the way jobsched needs it for ``url`` (``UsageError`` for a database or
    driver jobsched does not support)."""
    url = checked_url(url)
    return dialect_for(url.get_backend_name()).create_engine(url)


class SqlStore(Store):
    """Jobs in a SQL database through SQLAlchemy Core."""

    def __init__(self, engine: sa.Engine, *, owned: bool) -> None:
        self.dialect = dialect_for(engine.dialect.name)
        #: The engine as given (a caller's own, before ``adopt_engine``).
        self._given = engine
        if not owned:
            engine = self.dialect.adopt_engine(engine)
        self.engine = engine
        #: For writes of one statement (None: they run in a transaction on ``engine``).
        self.autocommit = self.dialect.autocommit_engine(engine, owned=owned)
        self.owned = owned
        #: True from the warning that the database is unavailable until a transaction commits.
        self._outage = False
        #: Whether every use of the database holds ``_writer``: an in-memory database is one
        #: connection shared by the store's threads, whose transactions must not interleave.
        self._serial = self.dialect.in_memory(engine.url)
        #: Held by this store's write transactions where the database has one writer at a time
        #: (and by every use of a ``_serial`` one).
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.dialect.one_writer or self._serial else _NO_GATE
        )
        self._ready = False
        self._ready_lock = threading.Lock()

    def _queued(self, write_transaction: bool) -> contextlib.AbstractContextManager[Any]:
        """What a use of the database holds: ``_writer`` for a write transaction where the
        database has one writer at a time, and for any use of a ``_serial`` one."""
        return self._writer if write_transaction or self._serial else _NO_GATE

    # -- set-up ---------------------------------------------------------------------------------

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def persistent(self) -> bool:
        return not self.dialect.in_memory(self.engine.url)

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()
        if self.autocommit is not None and self.autocommit.pool is not self.engine.pool:
            self.autocommit.dispose()  # jobsched's own, beside a caller's engine too

    def _check_directory(self) -> None:
        """A database file's directory must exist: SQLite creates the file, never the
        directory."""
        path = self.dialect.local_file(self.engine.url)
        if path is None or path.exists():
            return
        directory = path.resolve().parent
        if not directory.is_dir():
            problem = "is not a directory" if directory.exists() else "does not exist"
            raise DatabaseError(
                f"the directory {directory} of the SQLite database {self.describe()} {problem}: "
                "check the database URL, or create the directory first"
            )

    def _revision(self, conn: sa.Connection) -> str | None:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        revision = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        return None if revision is None else str(revision)

    def migrate(self) -> MigrateResult:
        from jobsched.store.migrations import result_of, upgrade

        self._check_directory()
        try:
            with self.engine.connect() as conn:
                self.dialect.check_server(conn)
                self.dialect.prepare(conn)
                before = self._revision(conn)
                conn.commit()
            upgrade(self.engine)
        except sa.exc.DBAPIError as e:
            raise self._translate(e) from e
        self._ready = False
        self.ensure_ready()
        return result_of(before)

    def ensure_ready(self) -> None:
        """Check once that the schema exists and is current (``SchemaError`` otherwise)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            self._check_directory()
            path = self.dialect.local_file(self.engine.url)
            if path is not None and not path.exists():
                raise SchemaError(
                    f"no jobsched database at {path.resolve()}: run `jobsched migrate` to create "
                    "it (or check the database URL)"
                )
            try:
                with self.engine.connect() as conn:
                    self.dialect.check_server(conn)
                    revision = self._revision(conn)
            except sa.exc.DBAPIError as e:
                raise self._translate(e) from e
            where = self.describe()
            if revision is None:
                raise SchemaError(
                    f"the database {where} has no jobsched schema: run `jobsched migrate`"
                )
            if revision != SCHEMA_REVISION:
                raise SchemaError(
                    f"the database {where} has jobsched schema revision {revision}, this version "
                    f"needs {SCHEMA_REVISION}: run `jobsched migrate` (or upgrade jobsched if the "
                    "database is newer)"
                )
            self._ready = True

    # -- transactions and errors ----------------------------------------------------------------

    def transaction(
        self,
        work: Callable[[sa.Connection], T],
        *,
        write: bool,
        conn: sa.Connection | None = None,
        patience: float = API_PATIENCE,
        reconnect: bool = False,
    ) -> T:
        """Run ``work`` in one short transaction, retrying it while the database is busy.

        With ``conn`` (a caller's connection) it runs inside the caller's transaction, once.
        ``reconnect`` also retries a database that cannot be reached (runner bookkeeping).
        """
        if conn is not None:
            self.check_connection(conn)
        self.ensure_ready()
        if conn is not None:
            try:
                return work(conn)
            except sa.exc.DBAPIError as e:
                raise self._translate(e) from e
        deadline = time.monotonic() + patience
        delay = 0.01
        while True:
            try:
                with self._queued(write), self.engine.connect() as connection:
                    self.dialect.begin(connection, write=write)
                    result = work(connection)
                    connection.commit()
                    if self._outage:
                        self._outage = False
                        log.warning("database reachable again: %s", self.describe())
                    return result
            except sa.exc.DBAPIError as e:
                kind = self.dialect.classify(e)
                again = kind in (BUSY, DISCONNECTED) or (reconnect and kind == UNREACHABLE)
                if not again or time.monotonic() + delay > deadline:
                    raise self._translate(e) from e
                self.retries += 1
                if kind != BUSY and patience > API_PATIENCE and not self._outage:
                    # Runner bookkeeping waits for the database a long while: say so once.
                    self._outage = True
                    log.warning(
                        "database unavailable (%s); retrying for up to %gs", e.orig, patience
                    )
                log.debug("retrying a %s transaction after %s: %s", kind, type(e).__name__, e.orig)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def check_connection(self, conn: sa.Connection) -> None:
        """Refuse a caller's connection to another database than this store's (``UsageError``):
        jobs written there would be lost to this scheduler, and its errors would name the wrong
        database. What identifies a database is compared (backend, host, port and database;
        SQLite's file), so the caller's own Engine on the same database is welcome."""
        other = conn.engine
        if other is self.engine or other is self._given:
            return
        if family(other.dialect.name) == self.dialect.name and self.dialect.database_of(
            other
        ) == self.dialect.database_of(self.engine):
            return
        theirs = other.url.render_as_string(hide_password=True)
        raise UsageError(
            f"conn is a connection to {theirs}, not to this scheduler's database "
            f"{self.describe()}; nothing was done. Pass a connection to the scheduler's "
            "database, or use a scheduler on the connection's one (Scheduler(engine))"
        )

    def _translate(self, e: sa.exc.DBAPIError) -> DatabaseError:
        kind = self.dialect.classify(e)
        cause = " ".join(str(e.orig).split()) or type(e.orig).__name__
        what = {
            BUSY: "is busy",
            DISCONNECTED: "dropped the connection",
            UNREACHABLE: "cannot be reached",
        }.get(kind, "failed")
        return DatabaseError(
            f"the database {self.describe()} {what}: {cut_text(cause, 500)}",
            retryable=kind in (BUSY, DISCONNECTED, UNREACHABLE),
        )

    # -- scheduling -----------------------------------------------------------------------------
    #
    # Outside a caller's transaction one job is one statement on the autocommit engine (one
    # round trip: NEW a plain INSERT, IGNORE_IF_EXISTS an INSERT and, if the id exists, one
    # read; RESCHEDULE an upsert); many jobs are multi-row statements in one transaction. No
    # named locks: a statement that collides with another writer's is retried. Inside a
    # caller's transaction (``conn``) a named lock per id keeps concurrent callers from
    # deadlocking, since their transactions cannot be retried.

    def schedule(
        self, jobs_: Sequence[NewJob], mode: Mode, *, conn: object = None
    ) -> list[tuple[Job, bool]]:
        caller = _as_connection(conn)
        rows = _new_rows(jobs_)
        if caller is not None:
            return self.transaction(
                lambda c: self._schedule_in(c, jobs_, rows, mode), write=True, conn=caller
            )
        if mode is Mode.IGNORE_IF_EXISTS and len(rows) == 1:
            single = self._alone(rows, mode)
            return [self._write(lambda c, e: self._ignore_one(c, jobs_[0], rows[0]), alone=single)]
        created = self._insert_outside(rows, mode)
        results = [(nj.job, written) for nj, written in zip(jobs_, created, strict=True)]
        if all(created):
            return results
        # IGNORE_IF_EXISTS: the jobs that were there before, as they are now.
        existing = {
            row.job_id: _job(row)
            for row in self._rows_of([job.job_id for job, written in results if not written])
        }
        return [(existing.get(job.job_id, job), written) for job, written in results]

    def schedule_many(self, jobs_: Sequence[NewJob], mode: Mode, *, conn: object = None) -> int:
        if conn is not None:
            return super().schedule_many(jobs_, mode, conn=conn)
        return sum(self._insert_outside(_new_rows(jobs_), mode))

    def _insert_outside(self, rows: Sequence[NewRow], mode: Mode) -> list[bool]:
        """Write ``rows`` in ``mode`` outside any caller's transaction (alone where one
        statement will do); for each, whether it was created (or replaced)."""
        return self._write(
            lambda c, earlier: self._insert(c, rows, mode, earlier), alone=self._alone(rows, mode)
        )

    def _alone(self, rows: Sequence[NewRow], mode: Mode) -> bool:
        """Whether writing ``rows`` is one statement that needs no transaction: one row, or
        (NEW, RESCHEDULE) rows that fit one multi-row statement. IGNORE_IF_EXISTS reads the
        versions after its statement: in a transaction, the rows it wrote are still ours."""
        if self.autocommit is None:
            return False
        if len(rows) == 1:
            return True
        return (
            mode is not Mode.IGNORE_IF_EXISTS
            and self.dialect.multi_row_inserts
            and len(rows) <= self.dialect.batch_rows
            and next(self._batches(rows)) is rows
        )

    def _write(self, work: Callable[[sa.Connection | None, bool], T], *, alone: bool) -> T:
        """Run ``work(connection, earlier)`` outside any caller's transaction: with no
        connection (each statement alone, on the autocommit engine) if ``alone``, else in one
        transaction.

        Retried while the database is busy, and once after a dropped connection, with
        ``earlier`` True: the dropped attempt may have been committed all the same (its rows,
        found by the versions it wrote, are then ours).
        """
        self.ensure_ready()
        deadline = time.monotonic() + API_PATIENCE
        delay = 0.01
        earlier = False
        while True:
            try:
                if alone:
                    with self._queued(False):
                        return work(None, earlier)
                with self._queued(True), self.engine.connect() as connection:
                    self.dialect.begin(connection, write=True)
                    result = work(connection, earlier)
                    connection.commit()
                    return result
            except _Vanished:
                pass  # the row we collided with is gone: write again
            except sa.exc.DBAPIError as e:
                kind = self.dialect.classify(e)
                if kind == DISCONNECTED and not earlier:
                    earlier = True
                    log.debug("writing again after a dropped connection: %s", e.orig)
                    continue
                if kind != BUSY or time.monotonic() + delay > deadline:
                    raise self._translate(e) from e
                log.debug("retrying a busy write after %s: %s", type(e).__name__, e.orig)
            if time.monotonic() + delay > deadline:
                raise DatabaseError(
                    f"the database {self.describe()} is busy: jobs being scheduled kept "
                    "colliding with other writers",
                    retryable=True,
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _put(
        self, conn: sa.Connection | None, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> None:
        """Insert ``rows`` (one statement's worth) in ``conn``'s transaction, or alone."""
        if conn is None:
            assert self.autocommit is not None
            self.dialect.insert_alone(self.autocommit, rows, on_conflict)
        else:
            self.dialect.insert_jobs(conn, rows, on_conflict)

    def _read(self, conn: sa.Connection | None, read: Callable[[sa.Connection, K], T], key: K) -> T:
        """``read(connection, key)`` in ``conn``, or alone on the autocommit engine."""
        if conn is not None:
            return read(conn, key)
        assert self.autocommit is not None
        with self._queued(False), self.autocommit.connect() as connection:
            return read(connection, key)

    def _insert(
        self, conn: sa.Connection | None, rows: Sequence[NewRow], mode: Mode, earlier: bool
    ) -> list[bool]:
        """Write ``rows`` in ``mode``; for each, whether it was created (or replaced)."""
        on_conflict = _ON_CONFLICT[mode]
        created: list[bool] = []
        for batch in self._batches(rows):
            try:
                self._put(conn, batch, on_conflict)
            except sa.exc.IntegrityError as e:
                if on_conflict is not OnConflict.FAIL or self.dialect.classify(e) != DUPLICATE:
                    raise
                if len(batch) == 1 and not earlier:
                    raise JobExistsError(batch[0][0]) from None  # it existed as we wrote
                found = self._read(conn, self._versions, [row[0] for row in batch])
                _refuse_existing(batch, found, earlier=earlier)
                return [True] * len(rows)  # an earlier attempt wrote them all after all
            if on_conflict is OnConflict.KEEP:
                found = self._read(conn, self._versions, [row[0] for row in batch])
                created.extend(found.get(row[0]) == row[-1] for row in batch)
            else:
                created.extend([True] * len(batch))
        return created

    def _versions(self, conn: sa.Connection, ids: list[str]) -> dict[str, int]:
        """The version of each of these jobs that exists."""
        query = sa.select(c.job_id, c.version).where(c.job_id.in_(ids))
        return {job_id: version for job_id, version in conn.execute(query)}

    def _ignore_one(self, conn: sa.Connection | None, nj: NewJob, row: NewRow) -> tuple[Job, bool]:
        """IGNORE_IF_EXISTS for one job on its own: a plain INSERT, and only if the id exists
        a read of the job that is there."""
        try:
            self._put(conn, [row], OnConflict.FAIL)
        except sa.exc.IntegrityError as e:
            if self.dialect.classify(e) != DUPLICATE:
                raise
            found = self._read(conn, self._row, nj.job.job_id)
            if found is None:
                raise _Vanished from None
            if found.version == row[-1]:  # ours: written by an attempt whose commit we missed
                return nj.job, True
            return _job(found), False
        return nj.job, True

    def _rows_of(self, ids: list[str]) -> list[sa.Row[Any]]:
        def work(conn: sa.Connection) -> list[sa.Row[Any]]:
            found: list[sa.Row[Any]] = []
            for chunk in chunks(ids):
                found.extend(conn.execute(sa.select(jobs).where(c.job_id.in_(chunk))))
            return found

        return self.transaction(work, write=False)

    def _schedule_in(
        self, conn: sa.Connection, jobs_: Sequence[NewJob], rows: Sequence[NewRow], mode: Mode
    ) -> list[tuple[Job, bool]]:
        """``schedule`` inside a caller's transaction: each batch under named locks of its ids
        (MySQL), an IGNORE_IF_EXISTS job read back with a lock."""
        on_conflict = _ON_CONFLICT[mode]
        results: list[tuple[Job, bool]] = []
        start = 0
        for batch in self._batches(rows):
            news = jobs_[start : start + len(batch)]
            start += len(batch)
            try:
                self.dialect.insert_locked(conn, batch, on_conflict)
            except sa.exc.IntegrityError as e:
                if on_conflict is not OnConflict.FAIL or self.dialect.classify(e) != DUPLICATE:
                    raise
                try:
                    _refuse_existing(
                        batch, self._versions(conn, [r[0] for r in batch]), earlier=False
                    )
                except _Vanished:
                    # Committed after the caller's snapshot, so a plain read misses it.
                    raise JobExistsError(batch[0][0]) from None
            if on_conflict is not OnConflict.KEEP:
                results.extend((nj.job, True) for nj in news)
                continue
            # The row is locked by our statement: a locking read sees its newest state.
            for nj, row in zip(news, batch, strict=True):
                query = self.dialect.lock_rows(sa.select(jobs).where(c.job_id == row[0]))
                current = conn.execute(query).one()
                created = current.version == row[-1]
                results.append((nj.job if created else _job(current), created))
        return results

    def _batches(self, rows: Sequence[NewRow]) -> Iterator[Sequence[NewRow]]:
        """``rows`` cut into statements of at most ``batch_rows`` rows and about
        ``batch_bytes``."""
        most_rows, most_bytes = self.dialect.batch_rows, self.dialect.batch_bytes
        start, size = 0, 0
        for i, row in enumerate(rows):
            data: str = row[2]
            length = (len(data) if data.isascii() else len(data.encode("utf-8"))) + 512
            if i > start and (i - start >= most_rows or size + length > most_bytes):
                yield rows[start:i]
                start, size = i, 0
            size += length
        if start == 0:
            yield rows
        elif start < len(rows):
            yield rows[start:]

    def get(self, job_id: str, *, conn: object = None) -> Job | None:
        caller = _as_connection(conn)
        row = self.transaction(lambda conn: self._row(conn, job_id), write=False, conn=caller)
        return None if row is None else _job(row)

    def _row(self, conn: sa.Connection, job_id: str) -> sa.Row[Any] | None:
        return conn.execute(sa.select(jobs).where(c.job_id == job_id)).first()

    def remove(self, job_id: str, *, conn: object = None) -> bool:
        caller = _as_connection(conn)

        def work(conn: sa.Connection) -> bool:
            return conn.execute(jobs.delete().where(c.job_id == job_id)).rowcount > 0

        return self.transaction(work, write=True, conn=caller)

    def update(
        self,
        job_id: str,
        fn: Callable[[Job | None], tuple[NewJob | None, T]],
        *,
        conn: object = None,
    ) -> T:
        caller = _as_connection(conn)
        if caller is None:
            return super().update(job_id, fn)

        # Inside the caller's transaction, once: no retry of the transaction (it is theirs). The
        # job is read with a lock (MySQL: a locking read, which sees the newest commit even in a
        # REPEATABLE READ snapshot; SQLite: the write lock, taken first), so the write cannot be
        # outdated. A missing job is first looked for with a plain read: a locking read of a
        # missing row would lock the gap under REPEATABLE READ, holding up others' inserts until
        # the caller commits. A job created by another writer between that read and our insert
        # is then read (locked) and ``fn`` called again with it.
        plain = sa.select(jobs).where(c.job_id == job_id)
        locked = self.dialect.lock_rows(plain)

        def work(connection: sa.Connection) -> T:
            self.dialect.hold_for_update(connection)
            row = connection.execute(plain).first()
            if row is not None:
                row = connection.execute(locked).first()
            for _ in range(2):
                new, value = fn(None if row is None else _job(row))
                if row is None:
                    if new is None:
                        return value
                    written = _row(new, new_version())
                    # As schedule does: a named lock around the insert, and an insert that
                    # locks an existing row exclusively (a plain INSERT's duplicate-key error
                    # leaves a shared lock, and two such upgrading at once deadlock).
                    with self.dialect.id_locks(connection, [job_id]):
                        connection.execute(self.dialect.insert_keep([written]))
                    row = connection.execute(locked).one()
                    if row.version == written["version"]:
                        return value
                elif self._write_versioned(connection, job_id, row.version, new):
                    return value
                else:
                    row = connection.execute(locked).first()
            raise DatabaseError(
                f"update_job({job_id!r}) inside the caller's transaction: the job kept changing "
                "under it; roll back and try again",
                retryable=True,
            )

        return self.transaction(work, write=True, conn=caller)

    def read_versioned(self, job_id: str) -> tuple[Job, int] | None:
        row = self.transaction(lambda conn: self._row(conn, job_id), write=False)
        return None if row is None else (_job(row), row.version)

    def write_versioned(self, job_id: str, version: int | None, new: NewJob | None) -> bool:
        return self.transaction(
            lambda conn: self._write_versioned(conn, job_id, version, new), write=True
        )

    def _write_versioned(
        self, conn: sa.Connection, job_id: str, version: int | None, new: NewJob | None
    ) -> bool:
        if version is None:
            assert new is not None
            try:
                conn.execute(jobs.insert().values(_row(new, new_version())))
            except sa.exc.IntegrityError as e:
                if self.dialect.classify(e) == DUPLICATE:
                    return False
                raise
            return True
        fence = (c.job_id == job_id) & (c.version == version)
        if new is None:
            return conn.execute(jobs.delete().where(fence)).rowcount > 0
        values = _row(new, 0)
        for name in ("job_id", "version", "claim_token", "claimed_by", "claimed_until"):
            del values[name]
        values.update(version=c.version + 1, started_at=None)
        return conn.execute(jobs.update().where(fence).values(values)).rowcount > 0

    # -- running --------------------------------------------------------------------------------

    def claim(
        self, request: ClaimRequest, ops: Sequence[Op] = ()
    ) -> tuple[list[Claim], list[bool]]:
        query: sa.Select[Any] = sa.select(*_CLAIMED).where(
            c.start_time <= (request.now if request.due_by is None else request.due_by),
            sa.or_(c.claimed_until.is_(None), c.claimed_until <= request.now),
        )
        limits = _limits_served(request)
        if limits:
            return self._claim_limited(request, ops, query, limits)
        if request.handlers is not None:
            query = query.where(c.handler.in_(request.handlers))
        if request.after is not None:
            query = query.where(_after(request.after))
        query = self.dialect.lock_for_claim(
            query.order_by(c.start_time, c.job_id).limit(request.limit)
        )

        def work(conn: sa.Connection) -> tuple[list[Claim], list[bool]]:
            results = self._apply(conn, ops)
            return self._take(conn, request, conn.execute(query).all()), results

        return self.transaction(work, write=True, patience=BOOKKEEPING_PATIENCE)

    def _claim_limited(
        self,
        request: ClaimRequest,
        ops: Sequence[Op],
        due: sa.Select[Any],
        limits: dict[str, int],
    ) -> tuple[list[Claim], list[bool]]:
        """``claim`` where some handlers it may take have ``max_running``: under a lock every
        such claim takes (``Dialect.lock_limits``), count their jobs claimed now (by any
        runner, started or not), and take at most the free slots of each, its oldest due jobs,
        beside the other handlers' jobs (a handler at its limit never fills the batch).

        Cost, with a backlog of one limited handler (100,000 due jobs older than 20,000 others,
        measured on MariaDB 10.11 and SQLite, a claim of 100): the count reads every job of the
        handler (MariaDB scans the table, SQLite ``ix_jobs_handler`` and the rows), 20-40 ms;
        the other handlers' jobs are read through the start-time index past the whole backlog
        (the handler is not in that index), 140 ms on MariaDB; a claim without limits, 5 ms.
        Only claims whose runner registers a limited handler pay any of it."""
        if request.after is not None:
            due = due.where(_after(request.after))
        order = (c.start_time, c.job_id)
        # Every job whose claim is live, started or not, whatever its start: a job rescheduled
        # or updated while its attempt runs keeps its claim, with a start that may be later.
        running = (
            sa.select(c.handler, sa.func.count())
            .where(
                c.handler.in_(list(limits)),
                c.claimed_until.is_not(None),
                c.claimed_until > request.now,
            )
            .group_by(c.handler)
        )
        others: sa.Select[Any] | None
        if request.handlers is None:
            others = due.where(c.handler.not_in(list(limits)))
        else:
            rest = [name for name in request.handlers if name not in limits]
            others = due.where(c.handler.in_(rest)) if rest else None
        if others is not None:
            others = self.dialect.lock_for_claim(others.order_by(*order).limit(request.limit))

        def work(conn: sa.Connection) -> tuple[list[Claim], list[bool]]:
            results = self._apply(conn, ops)
            # The other handlers' jobs first: they need no count, and so the lock is not held
            # while this query reads past a limited handler's backlog. (No deadlock: a claim
            # holding the lock waits for no job row, its reads skip locked ones.)
            rows = [] if others is None else list(conn.execute(others))
            self.dialect.lock_limits(conn)
            claimed = {handler: int(n) for handler, n in conn.execute(running)}
            merged = False
            for handler, most in limits.items():
                free = min(most - claimed.get(handler, 0), request.limit)
                if free <= 0:
                    continue
                theirs = due.where(c.handler == handler).order_by(*order).limit(free)
                found = conn.execute(self.dialect.lock_for_claim(theirs, "ix_jobs_handler"))
                before = len(rows)
                rows.extend(found)
                merged = merged or (before > 0 and len(rows) > before)
            if merged or len(rows) > request.limit:
                # The first ``limit`` of the lot in (start, id) order; the rest stay free (their
                # row locks go at commit). Python compares ids as the databases do (code points).
                rows.sort(key=lambda row: (row.start_time, row.job_id))
                del rows[request.limit :]
            return self._take(conn, request, rows), results

        return self.transaction(work, write=True, patience=BOOKKEEPING_PATIENCE)

    def _take(self, conn: sa.Connection, request: ClaimRequest, rows: Sequence[Any]) -> list[Claim]:
        """Claim ``rows`` (locked by the claim query, columns ``_CLAIMED``) for
        ``request.runner``."""
        token = new_token()
        claims: list[Claim] = []
        leases: dict[str, tuple[timedelta, datetime]] = {}  # handler: (lease, claim's end)
        free: dict[datetime, list[str]] = {}  # the claim's end: ids
        lost: list[dict[str, Any]] = []
        for (
            job_id,
            handler,
            data,
            start,
            expiry,
            attempts,
            max_attempts,
            created_at,
            last_error,
            version,
            claimed_by,
            claimed_until,
            started_at,
        ) in rows:
            if handler not in leases:
                lease = request.lease_for(handler)
                leases[handler] = (lease, request.now + lease)
            lease, until = leases[handler]
            taken_from = None
            if claimed_until is not None:  # a claim that ran out (the query takes no other)
                taken_from = claimed_by or "an unknown runner"
            if started_at is not None:
                last_error = request.lost_error(last_error, attempts, claimed_by, claimed_until)
                lost.append({"job_id": job_id, "last_error": last_error, "claimed_until": until})
            else:
                free.setdefault(until, []).append(job_id)
            job = Job(
                job_id,
                handler,
                parse_payload(data),
                start,
                expiry,
                attempts,
                max_attempts,
                created_at,
                last_error,
            )
            claims.append(
                Claim(
                    job,
                    version + 1,
                    token,
                    lease,
                    until,
                    taken_from,
                    started_at is not None,
                    data,
                    started_at,
                )
            )
        held = {"claim_token": token, "claimed_by": request.runner, "version": BUMP}
        for until, ids in free.items():
            self.dialect.update_ids(conn, ids, held | {"claimed_until": until})
        self.dialect.update_each(conn, lost, held)
        return claims

    def apply(self, ops: Sequence[Op]) -> list[bool]:
        if not ops:
            return []
        return self.transaction(
            lambda conn: self._apply(conn, ops),
            write=True,
            patience=BOOKKEEPING_PATIENCE,
            reconnect=True,
        )

    def _apply(self, conn: sa.Connection, ops: Sequence[Op]) -> list[bool]:
        """Apply ``ops`` in this transaction, a few statements for the lot.

        Most of the time every write holds: a fenced statement per kind of write, whose row
        counts say so, is all it takes. If one falls short (a newer state won somewhere), they
        are rolled back and each op is decided against its row, read under lock.
        """
        if not ops:
            return []
        results = self._apply_ops(conn, ops)
        runs = [
            (run, not applied) for op, applied in zip(ops, results, strict=True) for run in op.runs
        ]
        if runs:
            self.dialect.insert_runs(conn, runs)
        return results

    def _apply_ops(self, conn: sa.Connection, ops: Sequence[Op]) -> list[bool]:
        if len({op.claim.job.job_id for op in ops}) == len(ops):
            self.dialect.savepoint(conn)
            if self._apply_if_all_hold(conn, ops):
                return [True] * len(ops)
            self.dialect.roll_back_to_savepoint(conn)
        results: list[bool] = []
        for batch in _rounds(ops):
            results.extend(self._apply_round(conn, batch))
        return results

    def _apply_if_all_hold(self, conn: sa.Connection, ops: Sequence[Op]) -> bool:
        """Write ``ops`` (on distinct jobs), each fenced by its row's claim; False as soon as
        one did not hold (the caller rolls back)."""
        by_kind: dict[tuple[OpKind, bool], list[Op]] = {}
        for op in ops:
            by_kind.setdefault((op.kind, op.until is None), []).append(op)
        d = self.dialect
        for (kind, _), group in by_kind.items():
            if kind is OpKind.RELEASE:
                rows = [_held_by(op) for op in group]
                done = d.update_each(conn, rows, _CLAIM_CLEARED, match=_HELD)
            elif kind is OpKind.REMOVE:
                done = d.delete_each(conn, [_fence(op) for op in group])
            else:
                rows = [_fence(op) | _written(op) for op in group]
                done = d.update_each(conn, rows, _COMMON[kind], match=_FENCE)
            if done != len(group):
                return False
        return True

    def _apply_round(self, conn: sa.Connection, ops: Sequence[Op]) -> list[bool]:
        """Apply ops on distinct jobs: read and lock their rows, decide in Python which ops
        still hold (token, and version where fenced), then write each kind in one go."""
        ids = [op.claim.job.job_id for op in ops]
        held: dict[str, tuple[str | None, int]] = {}
        for chunk in chunks(ids):
            query = self.dialect.lock_ids(
                sa.select(c.job_id, c.claim_token, c.version).where(c.job_id.in_(chunk))
            )
            held.update((r.job_id, (r.claim_token, r.version)) for r in conn.execute(query))
        results: list[bool] = []
        writes: dict[tuple[OpKind, bool], list[Op]] = {}
        cleared: list[str] = []  # claims to give up: released, or outrun by a newer state
        for op in ops:
            row = held.get(op.claim.job.job_id)
            holds = row is not None and row[0] == op.claim.token
            if op.kind is OpKind.RELEASE:
                applied = holds
            else:
                applied = holds and row is not None and row[1] == op.claim.version
                if applied:
                    writes.setdefault((op.kind, op.until is None), []).append(op)
            running = op.kind in (OpKind.START, OpKind.PROGRESS)
            if holds and (op.kind is OpKind.RELEASE or not (applied or running)):
                # Given back, or outrun by a newer state: the claim goes. A start mark (or
                # progress) that lost leaves it: the handler is running, and the job must not
                # start twice.
                cleared.append(op.claim.job.job_id)
            results.append(applied)
        d = self.dialect
        d.update_ids(conn, cleared, _CLAIM_CLEARED)
        for (kind, _), group in writes.items():
            if kind is OpKind.REMOVE:
                d.delete_ids(conn, [op.claim.job.job_id for op in group])
            else:
                rows = [{"job_id": op.claim.job.job_id} | _written(op) for op in group]
                d.update_each(conn, rows, _COMMON[kind])
        return results

    def heartbeat(self, leases: Sequence[tuple[Claim, datetime]]) -> set[str]:
        groups: dict[tuple[str, datetime], list[str]] = {}
        for claim, until in leases:
            groups.setdefault((claim.token, until), []).append(claim.job.job_id)

        def work(conn: sa.Connection) -> set[str]:
            extended: set[str] = set()
            for (token, until), ids in groups.items():
                values = {"claimed_until": until}
                if self.dialect.update_ids(conn, ids, values, token=token) == len(ids):
                    extended.update(ids)
                    continue
                for chunk in chunks(ids):
                    query = sa.select(c.job_id).where(
                        c.job_id.in_(chunk), c.claim_token == token, c.claimed_until == until
                    )
                    extended.update(conn.execute(query).scalars())
            return extended

        return self.transaction(work, write=True, patience=BOOKKEEPING_PATIENCE, reconnect=True)

    # -- reading --------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        due = sa.case((c.claimed_until.is_(None), c.start_time), else_=c.claimed_until)
        query = sa.select(sa.func.min(due, type_=jobs.c.start_time.type))
        return self.transaction(lambda conn: conn.execute(query).scalar(), write=False)

    def get_record(self, job_id: str) -> JobRecord | None:
        row = self.transaction(lambda conn: self._row(conn, job_id), write=False)
        return None if row is None else _record(row)

    def list_jobs(
        self,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Job]:
        return (_job(row) for row in self._rows(due_at=due_at, handler=handler, limit=limit))

    def list_records(
        self,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        rows = self._rows(due_at=due_at, handler=handler, limit=limit)
        return (_record(row) for row in rows)

    def _rows(
        self, *, due_at: datetime | None, handler: str | None, limit: int | None
    ) -> Iterator[sa.Row[Any]]:
        """Rows by start then id, a page per short transaction."""
        page = 500
        after: Cursor | None = None
        left = limit
        while left is None or left > 0:
            query = sa.select(jobs)
            if due_at is not None:
                query = query.where(c.start_time <= due_at)
            if handler is not None:
                query = query.where(c.handler == handler)
            if after is not None:
                query = query.where(_after(after))
            size = page if left is None else min(page, left)
            query = query.order_by(c.start_time, c.job_id).limit(size)

            def work(conn: sa.Connection, query: sa.Select[Any] = query) -> list[sa.Row[Any]]:
                return list(conn.execute(query).all())

            rows = self.transaction(work, write=False)
            yield from rows
            if len(rows) < size:
                return
            after = (rows[-1].start_time, rows[-1].job_id)
            if left is not None:
                left -= len(rows)

    def count(self) -> int:
        query = sa.select(sa.func.count()).select_from(jobs)

        def work(conn: sa.Connection) -> int:
            return int(conn.execute(query).scalar_one())

        return self.transaction(work, write=False)

    def clear(self, *, history: bool = False) -> int:
        def work(conn: sa.Connection) -> int:
            if history:
                conn.execute(job_runs.delete())
                conn.execute(meta.update().where(meta.c.name == PRUNED_AT).values(at=None))
            return int(conn.execute(jobs.delete()).rowcount)

        return self.transaction(work, write=True)

    # -- history ----------------------------------------------------------------------------------

    def history(self, query: HistoryQuery) -> list[JobRun]:
        select = sa.select(job_runs)
        if query.job_id is not None:
            select = select.where(r.job_id == query.job_id)
        if query.open_failures:
            select = select.where(_OPEN_FAILURE)
        elif query.outcome is not None:
            select = select.where(r.outcome == query.outcome.value)
        if query.handler is not None:
            select = select.where(r.handler == query.handler)
        if query.since is not None:
            select = select.where(r.finished_at >= query.since)
        # By finish time alone, which the indexes give in order (one starting with job_id for a
        # job's runs, finished_at for the rest): adding run_id would make MySQL sort the whole
        # table. Rows that finished in the same microsecond are then put in id order here.
        select = select.order_by(r.finished_at.desc())
        if query.limit is not None:
            select = select.limit(query.limit)
        rows = self.transaction(lambda conn: conn.execute(select).all(), write=False)
        runs = [_run(row) for row in rows]
        runs.sort(key=lambda run: (run.finished_at, run.run_id), reverse=True)
        return runs

    def retry(self, new: NewJob, now: datetime) -> None:
        [row] = _new_rows([new])

        def work(conn: sa.Connection) -> None:
            try:
                self.dialect.insert_jobs(conn, [row], OnConflict.FAIL)
            except sa.exc.IntegrityError as e:
                if self.dialect.classify(e) == DUPLICATE:
                    raise JobExistsError(new.job.job_id) from None
                raise
            conn.execute(
                job_runs.update()
                .where(r.job_id == new.job.job_id, _OPEN_FAILURE)
                .values(retried_at=now)
            )

        self.transaction(work, write=True)

    def prune_history(self, cutoff: datetime, failed_cutoff: datetime) -> int:
        # Old rows by finish time (an index), a batch a short transaction: the ids first, then
        # a delete of exactly those rows, which locks nothing else (new rows go in at the end).
        pruned = 0
        for outcome, before in (
            (r.outcome != Outcome.FAILED.value, cutoff),
            (r.outcome == Outcome.FAILED.value, failed_cutoff),
        ):
            query = (
                sa.select(r.run_id)
                .where(r.finished_at < before, outcome)
                .order_by(r.finished_at)
                .limit(PRUNE_BATCH)
            )

            def work(conn: sa.Connection, query: sa.Select[Any] = query) -> int:
                ids = list(conn.execute(query).scalars())
                if ids:
                    conn.execute(job_runs.delete().where(r.run_id.in_(ids)))
                return len(ids)

            while True:
                deleted = self.transaction(work, write=True, patience=BOOKKEEPING_PATIENCE)
                pruned += deleted
                if deleted < PRUNE_BATCH:
                    break
        return pruned

    def due_for_pruning(self, now: datetime, every: timedelta) -> bool:
        # Mostly it is not: a read says so (no write lock, no commit to wait for). When it is,
        # one conditional UPDATE decides which of the passes that read it takes the turn.
        m = meta.c
        read = sa.select(m.at).where(m.name == PRUNED_AT)
        last = self.transaction(lambda conn: conn.execute(read).scalar(), write=False)
        if last is not None and now - last < every:
            return False
        statement = (
            meta.update()
            .where(m.name == PRUNED_AT, sa.or_(m.at.is_(None), m.at <= now - every))
            .values(at=now)
        )
        return bool(self.transaction(lambda conn: conn.execute(statement).rowcount, write=True) > 0)

    def job_counts(self, now: datetime) -> dict[str, JobCounts]:
        # Every job of a handler, split at ``now`` by start: the (handler, start_time) index
        # alone. Then the jobs whose start has come (the start index: the due ones, running
        # ones and lost ones are among them), read row by row to say where each stands; and
        # the deferred ones waiting for their next try, found through the history (a pass
        # defers a job for an hour, and writes a history row when it does).
        started = sa.case((c.start_time <= now, 1), else_=0)
        by_start = (
            sa.select(c.handler, sa.func.count(), sa.func.sum(started))
            .select_from(jobs)
            .group_by(c.handler)
        )
        held = sa.and_(c.claimed_until.is_not(None), c.claimed_until > now)
        deferred = sa.and_(
            sa.not_(held),
            c.started_at.is_(None),
            c.last_error.is_not(None),
            self.dialect.starts_with(c.last_error, DEFERRED_PREFIX),
        )
        come = (
            sa.select(
                c.handler,
                _count_if(sa.and_(held, c.started_at.is_not(None))),
                _count_if(deferred),
                sa.func.min(sa.case((sa.not_(held), c.start_time), else_=None)),
            )
            .where(c.start_time <= now)
            .group_by(c.handler)
        )
        recently = (
            sa.select(r.job_id)
            .where(r.outcome == Outcome.DEFERRED.value, r.finished_at >= now - _DEFER_WINDOW)
            .distinct()
        )

        def waiting(conn: sa.Connection) -> dict[str, int]:
            # The ids first, then their rows by primary key: as one statement with IN (SELECT
            # ...), MySQL would read the whole jobs table.
            ids = list(conn.execute(recently).scalars())
            later: dict[str, int] = {}
            for chunk in chunks(ids):
                query = (
                    sa.select(c.handler, sa.func.count())
                    .where(c.job_id.in_(chunk), c.start_time > now, deferred)
                    .group_by(c.handler)
                )
                for handler, n in conn.execute(query):
                    later[handler] = later.get(handler, 0) + int(n)
            return later

        def work(conn: sa.Connection) -> dict[str, JobCounts]:
            totals = {h: (int(n), int(s or 0)) for h, n, s in conn.execute(by_start)}
            now_due = {h: (int(run or 0), int(d or 0), o) for h, run, d, o in conn.execute(come)}
            later = waiting(conn)
            counts = {}
            for handler, (total, come_count) in totals.items():
                running, deferred_now, oldest = now_due.get(handler, (0, 0, None))
                deferred_later = later.get(handler, 0)
                counts[handler] = JobCounts(
                    scheduled=total - come_count - deferred_later,
                    due=come_count - running - deferred_now,
                    running=running,
                    deferred=deferred_now + deferred_later,
                    oldest_due=_aware(oldest),
                )
            return counts

        return self.transaction(work, write=False)

    def outcome_counts(self, since: datetime) -> dict[tuple[str, str], int]:
        query = (
            sa.select(r.handler, r.outcome, sa.func.count())
            .where(r.finished_at >= since)
            .group_by(r.handler, r.outcome)
        )
        rows = self.transaction(lambda conn: conn.execute(query).all(), write=False)
        return {(handler, outcome): int(n) for handler, outcome, n in rows}

    def run_seconds(self, since: datetime) -> dict[str, list[float]]:
        query = sa.select(r.handler, r.started_at, r.finished_at).where(
            r.finished_at >= since, r.started_at.is_not(None), r.outcome != Outcome.LOST.value
        )
        rows = self.transaction(lambda conn: conn.execute(query).all(), write=False)
        seconds: dict[str, list[float]] = {}
        for handler, started, finished in rows:
            seconds.setdefault(handler, []).append((finished - started).total_seconds())
        return seconds

    def backlog(self, now: datetime) -> tuple[int, datetime | None]:
        free = sa.or_(c.claimed_until.is_(None), c.claimed_until <= now)
        query = sa.select(sa.func.count(), sa.func.min(c.start_time)).where(
            c.start_time <= now, free
        )
        count, oldest = self.transaction(lambda conn: conn.execute(query).one(), write=False)
        return int(count), _aware(oldest)

    # -- runners --------------------------------------------------------------------------------

    def register_runner(self, runner: Runner) -> None:
        values = {
            "name": runner.name,
            "host": runner.host,
            "pid": runner.pid,
            "kind": runner.kind,
            "version": runner.version,
            "started_at": runner.started_at,
            "heartbeat_at": runner.heartbeat_at,
            "concurrency": runner.concurrency,
        }
        self.transaction(lambda conn: self.dialect.upsert_runner(conn, values), write=True)

    def beat_runner(self, name: str, now: datetime) -> bool:
        statement = runners.update().where(runners.c.name == name).values(heartbeat_at=now)
        return self.transaction(lambda conn: conn.execute(statement).rowcount > 0, write=True)

    def remove_runner(self, name: str) -> bool:
        statement = runners.delete().where(runners.c.name == name)
        return self.transaction(lambda conn: conn.execute(statement).rowcount > 0, write=True)

    def forget_runners(self, before: datetime) -> int:
        statement = runners.delete().where(runners.c.heartbeat_at < before)
        return self.transaction(lambda conn: int(conn.execute(statement).rowcount), write=True)

    def list_runners(self, live_since: datetime) -> list[tuple[Runner, tuple[RunningJob, ...]]]:
        def work(conn: sa.Connection) -> list[tuple[Runner, tuple[RunningJob, ...]]]:
            rows = conn.execute(sa.select(runners).order_by(runners.c.name)).all()
            live = [row.name for row in rows if row.heartbeat_at >= live_since]
            running: dict[str, list[RunningJob]] = {}
            # The jobs table has no index on claimed_by (every claim would write it): this
            # reads the table once, for the few runners there are.
            for chunk in chunks(live):
                query = (
                    sa.select(
                        c.claimed_by,
                        c.job_id,
                        c.handler,
                        c.start_time,
                        c.started_at,
                        c.progress_done,
                        c.progress_total,
                        c.progress_note,
                    )
                    .where(c.claimed_by.in_(chunk), c.started_at.is_not(None))
                    .order_by(c.started_at, c.job_id)
                )
                for by, job_id, handler, start, started, done, total, note in conn.execute(query):
                    progress = None if done is None else Progress(done, total, note)
                    job = RunningJob(job_id, handler, start, started, progress)
                    running.setdefault(by, []).append(job)
            return [(_runner(row), tuple(running.get(row.name, ()))) for row in rows]

        return self.transaction(work, write=False)


#: What a claim reads of each row it takes (in ``SqlStore._take``'s order).
#: What a transaction that needs no queueing enters.
_NO_GATE = contextlib.nullcontext()

_CLAIMED = (
    c.job_id,
    c.handler,
    c.data,
    c.start_time,
    c.expiry,
    c.attempts,
    c.max_attempts,
    c.created_at,
    c.last_error,
    c.version,
    c.claimed_by,
    c.claimed_until,
    c.started_at,
)

#: The columns that fence a runner's write: its claim and the version it holds.
_FENCE = ("job_id", "claim_token", "version")
_HELD = ("job_id", "claim_token")


def _fence(op: Op) -> dict[str, Any]:
    claim = op.claim
    return {"job_id": claim.job.job_id, "claim_token": claim.token, "version": claim.version}


def _held_by(op: Op) -> dict[str, Any]:
    return {"job_id": op.claim.job.job_id, "claim_token": op.claim.token}


def _written(op: Op) -> dict[str, Any]:
    """The values an op writes into its row, besides the ones its kind always writes."""
    if op.kind is OpKind.RETRY:
        return {"start_time": op.at, "last_error": op.error, "attempts": op.attempts}
    if op.kind is OpKind.KEEP:
        return {"attempts": op.attempts}
    if op.kind is OpKind.PROGRESS:
        assert op.progress is not None
        return {
            "progress_done": op.progress.done,
            "progress_total": op.progress.total,
            "progress_note": op.progress.note,
        }
    values = {"attempts": op.attempts, "started_at": op.at}
    return values if op.until is None else values | {"claimed_until": op.until}


def _rounds(ops: Sequence[Op]) -> Iterator[Sequence[Op]]:
    """``ops`` in order, cut where a job comes up again (each round writes a job once)."""
    start = 0
    seen: set[str] = set()
    for i, op in enumerate(ops):
        if op.claim.job.job_id in seen:
            yield ops[start:i]
            start, seen = i, set()
        seen.add(op.claim.job.job_id)
    if start < len(ops):
        yield ops[start:]


def _limits_served(request: ClaimRequest) -> dict[str, int]:
    """``request.limits`` of the handlers the claim may take."""
    if not request.limits:
        return {}
    if request.handlers is None:
        return dict(request.limits)
    return {name: most for name, most in request.limits.items() if name in request.handlers}


def _after(cursor: Cursor) -> sa.ColumnElement[bool]:
    """Rows strictly after ``cursor`` in (start, job_id) order."""
    start, job_id = cursor
    return sa.or_(c.start_time > start, sa.and_(c.start_time == start, c.job_id > job_id))


def _as_connection(conn: object) -> sa.Connection | None:
    if conn is None or isinstance(conn, sa.Connection):
        return conn
    raise UsageError(f"conn must be a sqlalchemy.Connection, got {type(conn).__name__}")


class _Vanished(Exception):
    """The row a new job collided with was gone when we looked: write again."""


def _refuse_existing(batch: Sequence[NewRow], found: dict[str, int], *, earlier: bool) -> None:
    """After a duplicate key in ``batch``, given the versions ``found`` of its ids:
    ``JobExistsError`` for the first that exists with a version other than the one we wrote.
    Returns if those found are all ours and ``earlier`` (an attempt whose commit we did not
    see wrote them); else the row we collided with has gone meanwhile (``_Vanished``)."""
    for job_id, *_, version in batch:
        if job_id in found and found[job_id] != version:
            raise JobExistsError(job_id)
    if earlier and found:
        return
    raise _Vanished


_ON_CONFLICT = {
    Mode.NEW: OnConflict.FAIL,
    Mode.IGNORE_IF_EXISTS: OnConflict.KEEP,
    Mode.RESCHEDULE: OnConflict.REPLACE,
}


def _new_rows(news: Sequence[NewJob]) -> list[NewRow]:
    """The rows of new jobs (``NEW_ROW_COLUMNS``), each with a random first version."""
    return [
        (
            job.job_id,
            job.handler,
            nj.payload,
            job.start,
            job.expiry,
            job.attempts,
            job.max_attempts,
            job.created_at,
            job.last_error,
            new_version(),
        )
        for nj in news
        for job in (nj.job,)
    ]


def _row(nj: NewJob, version: int) -> dict[str, Any]:
    job = nj.job
    return {
        "job_id": job.job_id,
        "handler": job.handler,
        "data": nj.payload,
        "start_time": job.start,
        "expiry": job.expiry,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": job.created_at,
        "last_error": job.last_error,
        "version": version,
        "claim_token": None,
        "claimed_by": None,
        "claimed_until": None,
        "started_at": None,
        **_NO_PROGRESS,
    }


def _job(row: Any) -> Job:
    return Job(
        job_id=row.job_id,
        handler=row.handler,
        data=parse_payload(row.data),
        start=row.start_time,
        expiry=row.expiry,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        created_at=row.created_at,
        last_error=row.last_error,
    )


def _record(row: Any) -> JobRecord:
    progress = None
    if row.progress_done is not None:
        progress = Progress(row.progress_done, row.progress_total, row.progress_note)
    return JobRecord(_job(row), row.claimed_by, row.claimed_until, row.started_at, progress)


def _run(row: Any) -> JobRun:
    return JobRun(
        run_id=row.run_id,
        job_id=row.job_id,
        handler=row.handler,
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        outcome=Outcome(row.outcome),
        runner=row.runner,
        scheduled_start=row.scheduled_start,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        payload=row.data,
        superseded=bool(row.superseded),
        retried_at=row.retried_at,
    )


#: A failed run not yet retried, whose outcome was written (not superseded).
_OPEN_FAILURE = sa.and_(
    r.outcome == Outcome.FAILED.value, r.retried_at.is_(None), r.superseded.is_(sa.false())
)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


#: How far back ``job_counts`` looks for deferrals: a deferred job waits an hour.
_DEFER_WINDOW = timedelta(hours=1, minutes=5)


def _aware(value: Any) -> datetime | None:
    """A naive UTC datetime from an aggregate (``MIN`` loses the column's type) made aware."""
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


def _runner(row: Any) -> Runner:
    return Runner(
        name=row.name,
        host=row.host,
        pid=row.pid,
        kind=row.kind,
        version=row.version,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        concurrency=row.concurrency,
    )


def default_url() -> str:
    return os.environ.get("JOBSCHED_DATABASE_URL") or "sqlite:///jobsched.db"
