"""The SQL store: every statement jobsched sends to SQLite or MySQL/MariaDB is built here."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from jobsched.errors import DatabaseError, JobExistsError, SchemaError, UsageError
from jobsched.model import Job, JobInfo, MigrateResult, Mode
from jobsched.rules import NewJob, cut_error, job_info, lost_attempt_error, parse_payload
from jobsched.schema import SCHEMA_REVISION, VERSION_TABLE, jobs
from jobsched.store.base import Claim, Cursor, Op, OpKind, Store, new_token, new_version
from jobsched.store.dialect import (
    BUSY,
    DISCONNECTED,
    DUPLICATE,
    EXCLUDED,
    UNREACHABLE,
    checked_url,
    dialect_for,
    family,
    sqlite_in_memory,
)

log = logging.getLogger("jobsched")
T = TypeVar("T")

c = jobs.c
_CLAIM_CLEARED = {"claim_token": None, "claimed_by": None, "claimed_until": None}
#: An attempt that ended (kept, retried, deferred): its claim and its started mark go.
_ATTEMPT_ENDED = {**_CLAIM_CLEARED, "started_at": None}
#: Seconds API calls keep retrying a busy database (deadlock, lock wait, SQLite busy).
API_PATIENCE = 10.0
#: Seconds a runner keeps retrying its bookkeeping writes, reconnecting as needed.
BOOKKEEPING_PATIENCE = 60.0


def create_engine(url: sa.URL) -> sa.Engine:
    """An engine set up the way jobsched needs it for ``url`` (SQLite or MySQL/MariaDB)."""
    url = checked_url(url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return sa.create_engine(
            url, connect_args={"timeout": 5.0, "check_same_thread": False}, pool_pre_ping=False
        )
    if backend in ("mysql", "mariadb"):
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return sa.create_engine(
            url, pool_pre_ping=True, pool_recycle=3600, isolation_level="READ COMMITTED"
        )
    dialect_for(backend)  # raises the clear "not supported" error
    raise AssertionError


class SqlStore(Store):
    """Jobs in a SQL database through SQLAlchemy Core."""

    def __init__(self, engine: sa.Engine, *, owned: bool) -> None:
        self.dialect = dialect_for(engine.dialect.name)
        if not owned and self.dialect.name == "mysql":
            # Claims skip locked rows; REPEATABLE READ's gap locks would make runners collide.
            engine = engine.execution_options(isolation_level="READ COMMITTED")
        self.engine = engine
        self.owned = owned
        self._ready = False
        self._ready_lock = threading.Lock()

    # -- set-up ---------------------------------------------------------------------------------

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def persistent(self) -> bool:
        return not sqlite_in_memory(self.engine.url)

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()

    def _sqlite_path(self) -> Path | None:
        url = self.engine.url
        if self.dialect.name != "sqlite" or not url.database or url.database == ":memory:":
            return None
        if url.query.get("uri") or url.database.startswith("file:"):
            return None
        return Path(url.database)

    def _check_directory(self) -> None:
        """A SQLite file's directory must exist: SQLite creates the file, never the directory."""
        path = self._sqlite_path()
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
                if self.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
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
            path = self._sqlite_path()
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
                with self.engine.connect() as connection:
                    self.dialect.begin(connection, write=write)
                    result = work(connection)
                    connection.commit()
                    return result
            except sa.exc.DBAPIError as e:
                kind = self.dialect.classify(e)
                again = kind in (BUSY, DISCONNECTED) or (reconnect and kind == UNREACHABLE)
                if not again or time.monotonic() + delay > deadline:
                    raise self._translate(e) from e
                log.debug("retrying a %s transaction after %s: %s", kind, type(e).__name__, e.orig)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def check_connection(self, conn: sa.Connection) -> None:
        """Refuse a caller's connection to another database than this store's (``UsageError``):
        jobs written there would be lost to this scheduler, and its errors would name the wrong
        database. What identifies a database is compared (backend, host, port and database;
        SQLite's file), so the caller's own Engine on the same database is welcome."""
        other = conn.engine
        if other is self.engine:
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
            f"the database {self.describe()} {what}: {cut_error(cause, 500)}",
            retryable=kind in (BUSY, DISCONNECTED, UNREACHABLE),
        )

    # -- scheduling -----------------------------------------------------------------------------

    def schedule(
        self, jobs_: Sequence[NewJob], mode: Mode, *, conn: object = None
    ) -> list[tuple[Job, bool]]:
        caller = _as_connection(conn)

        def work(connection: sa.Connection) -> list[tuple[Job, bool]]:
            results: list[tuple[Job, bool]] = []
            for batch in self._batches(jobs_):
                with self.dialect.id_locks(connection, [nj.job.job_id for nj in batch]):
                    if mode is Mode.NEW:
                        results.extend(self._insert_new(connection, batch))
                    elif mode is Mode.IGNORE_IF_EXISTS:
                        locking = caller is not None
                        results.extend(self._insert_keep(connection, batch, locking=locking))
                    else:
                        results.extend(self._upsert(connection, batch))
            return results

        return self.transaction(work, write=True, conn=caller)

    def _batches(self, items: Sequence[NewJob]) -> Iterator[Sequence[NewJob]]:
        start, size = 0, 0
        for i, item in enumerate(items):
            size += len(item.payload.encode("utf-8")) + 512
            if i > start and (
                i - start >= self.dialect.batch_rows or size > self.dialect.batch_bytes
            ):
                yield items[start:i]
                start, size = i, len(item.payload.encode("utf-8")) + 512
        if start < len(items):
            yield items[start:]

    def _insert_new(self, conn: sa.Connection, batch: Sequence[NewJob]) -> list[tuple[Job, bool]]:
        ids = [nj.job.job_id for nj in batch]
        existing = self._existing(conn, ids)
        if existing:
            raise JobExistsError(next(i for i in ids if i in existing))
        try:
            conn.execute(jobs.insert().values([_row(nj, new_version()) for nj in batch]))
        except sa.exc.IntegrityError as e:
            if self.dialect.classify(e) != DUPLICATE:
                raise
            existing = self._existing(conn, ids)
            raise JobExistsError(next((i for i in ids if i in existing), ids[0])) from None
        return [(nj.job, True) for nj in batch]

    def _existing(self, conn: sa.Connection, ids: list[str]) -> set[str]:
        return set(conn.execute(sa.select(c.job_id).where(c.job_id.in_(ids))).scalars())

    def _insert_keep(
        self, conn: sa.Connection, batch: Sequence[NewJob], *, locking: bool
    ) -> list[tuple[Job, bool]]:
        rows = [_row(nj, new_version()) for nj in batch]
        conn.execute(self.dialect.insert_keep(rows))
        # A row carrying the random version we wrote is ours; any other existed before.
        if locking:
            found = {}
            for nj in batch:
                query = self.dialect.lock_rows(sa.select(jobs).where(c.job_id == nj.job.job_id))
                row = conn.execute(query).one()
                found[row.job_id] = row
        else:
            query = sa.select(jobs).where(c.job_id.in_([nj.job.job_id for nj in batch]))
            found = {row.job_id: row for row in conn.execute(query)}
        results = []
        for nj, written in zip(batch, rows, strict=True):
            row = found[nj.job.job_id]
            created = row.version == written["version"]
            results.append((nj.job if created else _job(row), created))
        return results

    def _upsert(self, conn: sa.Connection, batch: Sequence[NewJob]) -> list[tuple[Job, bool]]:
        rows = [_row(nj, new_version()) for nj in batch]
        replace: dict[str, Any] = {
            name: EXCLUDED
            for name in (
                "handler",
                "data",
                "start_time",
                "expiry",
                "attempts",
                "max_attempts",
                "created_at",
                "last_error",
            )
        }
        # The claim stays: a running attempt keeps its job until it ends (it cannot start twice).
        replace.update(version=c.version + 1, started_at=None)
        conn.execute(self.dialect.upsert(rows, replace))
        return [(nj.job, True) for nj in batch]

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
        self,
        now: datetime,
        *,
        limit: int,
        after: Cursor | None,
        runner: str,
        lease_for: Callable[[str], timedelta],
        handlers: Sequence[str] | None = None,
    ) -> list[Claim]:
        query = sa.select(jobs).where(
            c.start_time <= now, sa.or_(c.claimed_until.is_(None), c.claimed_until <= now)
        )
        if handlers is not None:
            query = query.where(c.handler.in_(handlers))
        if after is not None:
            query = query.where(_after(after))
        query = self.dialect.lock_for_claim(query.order_by(c.start_time, c.job_id).limit(limit))
        token = new_token()
        fence = c.job_id == sa.bindparam("b_id")
        take = jobs.update().where(fence)
        take = take.values(
            claim_token=token,
            claimed_by=runner,
            claimed_until=sa.bindparam("b_until"),
            version=c.version + 1,
        )
        take_lost = take.values(last_error=sa.bindparam("b_error"))

        def work(conn: sa.Connection) -> list[Claim]:
            claims: list[Claim] = []
            plain: list[dict[str, Any]] = []
            lost: list[dict[str, Any]] = []
            for row in conn.execute(query).all():
                job = _job(row)
                lease = lease_for(job.handler)
                params = {"b_id": job.job_id, "b_until": now + lease}
                lost_runner = None
                if row.started_at is not None:
                    lost_runner = row.claimed_by or "an unknown runner"
                    error = lost_attempt_error(
                        row.last_error, job.attempts, lost_runner, row.claimed_until
                    )
                    params["b_error"] = error
                    lost.append(params)
                    job = _replace_error(job, error)
                else:
                    plain.append(params)
                claims.append(Claim(job, row.version + 1, token, lease, lost_runner))
            # One statement per row by primary key: an IN-list may be planned as a scan that
            # waits on rows other runners hold (deadlock).
            if plain:
                conn.execute(take, plain)
            if lost:
                conn.execute(take_lost, lost)
            return claims

        return self.transaction(work, write=True, patience=BOOKKEEPING_PATIENCE)

    def apply(self, now: datetime, ops: Sequence[Op]) -> list[bool]:
        def work(conn: sa.Connection) -> list[bool]:
            return [self._apply_one(conn, op) for op in ops]

        return self.transaction(work, write=True, patience=BOOKKEEPING_PATIENCE, reconnect=True)

    def _apply_one(self, conn: sa.Connection, op: Op) -> bool:
        held = (c.job_id == op.claim.job.job_id) & (c.claim_token == op.claim.token)
        fenced = held & (c.version == op.claim.version)
        if op.kind in (OpKind.RELEASE, OpKind.KEEP):
            cleared = _CLAIM_CLEARED if op.kind is OpKind.RELEASE else _ATTEMPT_ENDED
            return conn.execute(jobs.update().where(held).values(cleared)).rowcount > 0
        if op.kind is OpKind.REMOVE:
            statement: sa.Executable = jobs.delete().where(fenced)
        elif op.kind is OpKind.START:
            statement = (
                jobs.update()
                .where(fenced)
                .values(attempts=c.attempts + 1, started_at=op.at, version=c.version + 1)
            )
        else:
            statement = (
                jobs.update()
                .where(fenced)
                .values(
                    start_time=op.at, last_error=op.error, version=c.version + 1, **_ATTEMPT_ENDED
                )
            )
        if conn.execute(statement).rowcount > 0:
            return True
        # A newer state won (the job was rescheduled, updated or removed meanwhile): let it go.
        conn.execute(jobs.update().where(held).values(_CLAIM_CLEARED))
        return False

    def heartbeat(self, leases: Sequence[tuple[Claim, datetime]]) -> int:
        extend = (
            jobs.update()
            .where((c.job_id == sa.bindparam("b_id")) & (c.claim_token == sa.bindparam("b_tok")))
            .values(claimed_until=sa.bindparam("b_until"))
        )

        def work(conn: sa.Connection) -> int:
            return sum(
                conn.execute(
                    extend, {"b_id": cl.job.job_id, "b_tok": cl.token, "b_until": until}
                ).rowcount
                for cl, until in leases
            )

        return self.transaction(work, write=True, patience=BOOKKEEPING_PATIENCE, reconnect=True)

    # -- reading --------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        due = sa.case((c.claimed_until.is_(None), c.start_time), else_=c.claimed_until)
        query = sa.select(sa.func.min(due, type_=jobs.c.start_time.type))
        return self.transaction(lambda conn: conn.execute(query).scalar(), write=False)

    def get_info(self, job_id: str, now: datetime) -> JobInfo | None:
        row = self.transaction(lambda conn: self._row(conn, job_id), write=False)
        return None if row is None else _info(row, now)

    def list_jobs(
        self,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Job]:
        return (_job(row) for row in self._rows(due_at=due_at, handler=handler, limit=limit))

    def list_info(
        self,
        now: datetime,
        *,
        due_at: datetime | None = None,
        handler: str | None = None,
        limit: int | None = None,
    ) -> Iterator[JobInfo]:
        rows = self._rows(due_at=due_at, handler=handler, limit=limit)
        return (_info(row, now) for row in rows)

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


def _after(cursor: Cursor) -> sa.ColumnElement[bool]:
    """Rows strictly after ``cursor`` in (start, job_id) order."""
    start, job_id = cursor
    return sa.or_(c.start_time > start, sa.and_(c.start_time == start, c.job_id > job_id))


def _as_connection(conn: object) -> sa.Connection | None:
    if conn is None or isinstance(conn, sa.Connection):
        return conn
    raise UsageError(f"conn must be a sqlalchemy.Connection, got {type(conn).__name__}")


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


def _info(row: Any, now: datetime) -> JobInfo:
    return job_info(
        _job(row),
        claimed_by=row.claimed_by,
        claimed_until=row.claimed_until,
        started_at=row.started_at,
        now=now,
    )


def _replace_error(job: Job, error: str) -> Job:
    from dataclasses import replace

    return replace(job, last_error=error)


def default_url() -> str:
    return os.environ.get("JOBSCHED_DATABASE_URL") or "sqlite:///jobsched.db"
