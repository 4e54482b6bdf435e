"""The dialect seam: everything that differs between SQLite and MySQL/MariaDB, and only that.

A later backend (PostgreSQL) adds one class here; the store's SQL stays the same.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import os
import re
import threading
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from jobsched.errors import DatabaseError, UsageError
from jobsched.history import NewRun
from jobsched.schema import job_runs, jobs, meta, runners

T = TypeVar("T")

#: ``jobsched_meta``'s row that claims of handlers with ``max_running`` lock (MySQL/MariaDB).
LIMITS_LOCK = "max_running_lock"

#: How a failed statement should be treated.
DUPLICATE = "duplicate"  # the id exists: a user-level conflict
BUSY = "busy"  # deadlock, lock wait, SQLite busy: retry the transaction
DISCONNECTED = "disconnected"  # the connection dropped: retry on a fresh one
UNREACHABLE = "unreachable"  # cannot connect at all
OTHER = "other"


class Dialect:
    """What a database does its own way. The generic class is what SQLAlchemy does by default:
    it stands for databases jobsched does not support when SQL is only compiled (``str(query)``).
    """

    name = "generic"

    # -- engines ----------------------------------------------------------------------------------

    def create_engine(self, url: sa.URL) -> sa.Engine:
        """The engine jobsched opens for ``url`` (a URL ``checked_url`` accepted)."""
        raise UsageError(f"jobsched does not support {url.drivername}:// URLs; {SUPPORTED_URLS}")

    def adopt_engine(self, engine: sa.Engine) -> sa.Engine:
        """The engine to use for a caller's ``engine`` (``Scheduler(engine)``): the same pool,
        with what jobsched's transactions need set per connection."""
        return engine

    def autocommit_engine(self, engine: sa.Engine, *, owned: bool) -> sa.Engine | None:
        """The engine for ``insert_alone`` beside ``engine`` (jobsched's own if ``owned``,
        else a caller's): a statement there is committed with one round trip at most. None if
        there is no cheap way to have one (the store then writes in a transaction)."""
        return None

    def prepare(self, conn: sa.Connection) -> None:
        """Settings that belong to the database itself rather than to a connection, made
        before the migrations run (``migrate``)."""

    def local_file(self, url: sa.URL) -> Path | None:
        """The file a database lives in, when it is a plain file path (else None)."""
        return None

    def in_memory(self, url: sa.URL) -> bool:
        """True if the database lives only as long as its connections."""
        return False

    #: Whether one writer at a time holds the whole database (SQLite): a store's threads then
    #: queue for it among themselves (``SqlStore.transaction``) rather than in the database's
    #: busy handler, which sleeps between tries (up to 100 ms on SQLite) however soon the
    #: holder is done.
    one_writer = False

    # -- schema -----------------------------------------------------------------------------------

    #: Whether DDL runs inside a transaction (Alembic's ``transactional_ddl``).
    transactional_ddl = False
    #: Options of each table jobsched creates (``op.create_table(..., **options)``).
    table_options: dict[str, str] = {}

    def datetime_type(self) -> sa.types.TypeEngine[Any]:
        """How ``schema.UtcDateTime`` is stored (naive UTC, to the microsecond)."""
        return sa.DateTime()

    def exact_string_type(self, chars: int) -> sa.types.TypeEngine[Any]:
        """How ``schema.ExactString`` is stored: ``chars`` characters compared exactly."""
        return sa.String(chars)

    def long_text_type(self) -> sa.types.TypeEngine[Any]:
        """How ``schema.LongText`` is stored: text up to 16 MiB."""
        return sa.Text()

    def row_id_type(self) -> sa.types.TypeEngine[Any]:
        """How ``schema.RowId`` is stored: a 64-bit integer the database numbers itself."""
        return sa.BigInteger()

    # -- what differs between databases while jobsched runs -------------------------------------

    def database_of(self, engine: sa.Engine) -> Hashable:
        """What identifies the database ``engine`` connects to: equal for two engines on one
        database (whatever their users, drivers or options), different otherwise."""
        return engine.url.set(username=None, password=None).render_as_string()

    def begin(self, conn: sa.Connection, *, write: bool) -> None:
        """Start a transaction; ``write`` ones must be able to write without an upgrade."""

    def lock_for_claim(self, query: sa.Select[Any], index: str = "ix_jobs_start") -> sa.Select[Any]:
        """Make the claim query skip and lock rows other runners hold, reading the jobs through
        ``index`` (the start-time index; ``ix_jobs_handler`` for one handler's jobs)."""
        return query

    def lock_limits(self, conn: sa.Connection) -> None:
        """Before a claim counts the running jobs of handlers with ``max_running``: take the
        lock that makes counting and claiming one step among every runner (held to commit)."""

    def lock_rows(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """A read of rows this transaction has just written (must see the newest commits)."""
        return query

    def hold_for_update(self, conn: sa.Connection) -> None:
        """In a caller's transaction, before a read-modify-write: take what makes the read and
        the write one atomic step, beyond the locking read of ``lock_rows``."""

    def insert_keep(self, rows: list[dict[str, Any]]) -> sa.Executable:
        """Insert rows; a row whose id exists is left as it is."""
        raise NotImplementedError

    def classify(self, exc: sa.exc.DBAPIError) -> str:
        return OTHER

    @contextmanager
    def id_locks(self, conn: sa.Connection, job_ids: Sequence[str]) -> Iterator[None]:
        """Serialise writers of the same new ids while inserting them (not until commit)."""
        yield

    def check_server(self, conn: sa.Connection) -> None:
        """Refuse servers jobsched cannot run on."""

    # -- writes to many rows by id, for a runner's batches ----------------------------------------

    def lock_ids(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """A read of rows by primary key that locks exactly those rows until commit."""
        return query

    def delete_ids(self, conn: sa.Connection, ids: Sequence[str]) -> int:
        """Delete these rows (held by this transaction already); returns how many."""
        return self.delete_each(conn, [{"job_id": job_id} for job_id in ids])

    def delete_each(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Delete each row that has all the values of one of ``rows`` (dicts of ``job_id`` and
        maybe ``version`` and ``claim_token``, the same keys in each); returns how many."""
        if not rows:
            return 0
        where = sa.and_(*(jobs.c[name] == sa.bindparam(f"m_{name}") for name in rows[0]))
        params = [{f"m_{k}": v for k, v in row.items()} for row in rows]
        return int(conn.execute(jobs.delete().where(where), params).rowcount)

    def update_ids(
        self,
        conn: sa.Connection,
        ids: Sequence[str],
        values: Mapping[str, Any],
        *,
        token: str | None = None,
    ) -> int:
        """Set ``values`` (``BUMP`` for version + 1) in these rows (only those carrying claim
        ``token``, if given); returns how many rows it changed."""
        changed = 0
        set_ = _resolved(values)
        for chunk in chunks(ids):
            where = jobs.c.job_id.in_(chunk)
            if token is not None:
                where = where & (jobs.c.claim_token == token)
            changed += conn.execute(jobs.update().where(where).values(set_)).rowcount
        return changed

    def update_each(
        self,
        conn: sa.Connection,
        rows: Sequence[Mapping[str, Any]],
        common: Mapping[str, Any],
        *,
        match: tuple[str, ...] = ("job_id",),
    ) -> int:
        """In each row that has the ``match`` values of one of ``rows`` (dicts, the same keys in
        each), set that dict's other values, and ``common`` (``BUMP``: plus one); returns how
        many rows matched."""
        if not rows:
            return 0
        columns = [name for name in rows[0] if name not in match]
        statement = (
            jobs.update()
            .where(sa.and_(*(jobs.c[name] == sa.bindparam(f"m_{name}") for name in match)))
            .values({name: sa.bindparam(f"b_{name}") for name in columns} | _resolved(common))
        )
        params = [
            {(f"m_{k}" if k in match else f"b_{k}"): v for k, v in row.items()} for row in rows
        ]
        return int(conn.execute(statement, params).rowcount)

    def starts_with(self, column: Any, prefix: str) -> sa.ColumnElement[bool]:
        """``column`` begins with ``prefix`` (exactly, case and all), in a form an index on
        ``column`` serves."""
        return column.startswith(prefix, autoescape=True)  # type: ignore[no-any-return]

    def insert_runs(self, conn: sa.Connection, runs: Sequence[tuple[NewRun, bool]]) -> None:
        """Insert history rows, each with whether its op was superseded (did not apply)."""
        conn.execute(job_runs.insert(), [_run_values(run, superseded) for run, superseded in runs])

    def savepoint(self, conn: sa.Connection) -> None:
        """Mark a point of this transaction that ``roll_back_to_savepoint`` returns to."""
        conn.exec_driver_sql("SAVEPOINT jobsched_batch")

    def roll_back_to_savepoint(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT jobsched_batch")

    #: Rows and bytes per multi-row statement when writing many jobs.
    batch_rows = 500
    batch_bytes = 4 * 1024 * 1024
    #: True when ``insert_jobs`` writes a batch in one statement (atomic on its own); False
    #: when it runs a statement per row.
    multi_row_inserts = False

    # -- new jobs -----------------------------------------------------------------------------

    def insert_jobs(
        self, conn: sa.Connection, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> None:
        """Insert ``rows`` (values of ``NEW_ROW_COLUMNS``; at most ``batch_rows`` rows and
        about ``batch_bytes``) in this connection's transaction: one statement, or one run for
        each row.

        ``on_conflict`` says what happens where the id exists: ``FAIL`` (a duplicate-key
        error), ``KEEP`` (the row stays as it is, locked as if written) or ``REPLACE`` (every
        value of the new row but the claim, which stays; version + 1, not started).
        """
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        statement, params = self.insert_statement(dbapi, rows, on_conflict)
        if params is None:  # literals only: the driver must not look for placeholders
            conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        else:
            conn.exec_driver_sql(statement, params[0] if len(params) == 1 else params)

    def insert_locked(
        self, conn: sa.Connection, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> None:
        """``insert_jobs`` inside a caller's transaction, holding ``id_locks`` while it runs."""
        with self.id_locks(conn, [row[0] for row in rows]):
            self.insert_jobs(conn, rows, on_conflict)

    def insert_alone(
        self, engine: sa.Engine, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> None:
        """``insert_jobs`` as a statement of its own on ``engine`` (``autocommit_engine``'s),
        committed when it returns. It goes to the driver on a pooled connection, with errors
        raised as SQLAlchemy raises them: a SQLAlchemy Connection costs more on the client
        than the rest of a one-row insert."""
        fairy = None
        try:
            fairy = engine.raw_connection()
            dbapi = fairy.dbapi_connection
            statement, params = self.insert_statement(dbapi, rows, on_conflict)
            cursor = fairy.cursor()
            try:
                if params is None:
                    cursor.execute(statement)
                elif len(params) == 1:
                    cursor.execute(statement, params[0])
                else:
                    cursor.executemany(statement, params)
            finally:
                cursor.close()
            self.commit_alone(dbapi)
        except engine.dialect.loaded_dbapi.Error as e:
            dropped = fairy is not None and engine.dialect.is_disconnect(
                e, fairy.dbapi_connection, None
            )
            if dropped:
                assert fairy is not None
                fairy.invalidate(e)
                self.forget_connections(engine)
            raise sa.exc.DBAPIError.instance(
                None,
                None,
                e,
                engine.dialect.loaded_dbapi.Error,
                connection_invalidated=dropped,
                dialect=engine.dialect,
            ) from e
        finally:
            if fairy is not None:
                fairy.close()

    def insert_statement(
        self, dbapi_conn: Any, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> tuple[str, list[tuple[Any, ...]] | None]:
        """``insert_jobs``'s statement for a DBAPI connection: its SQL and a parameter tuple
        per row, or None when the values are literals in the SQL."""
        raise NotImplementedError

    def commit_alone(self, dbapi_conn: Any) -> None:
        """Commit a statement ``insert_alone`` ran (nothing to do where it autocommits)."""

    def forget_connections(self, engine: sa.Engine) -> None:
        """After ``insert_alone`` found its connection dropped: what to do with the others
        of ``engine``'s pool (SQLAlchemy's own statements invalidate the whole pool)."""

    # -- runners --------------------------------------------------------------------------------

    def upsert_runner(self, conn: sa.Connection, values: Mapping[str, Any]) -> None:
        """Insert a row of ``runners`` (``values``: every column), or overwrite the row of the
        same name: here an UPDATE, and an INSERT if it found none (SQLite has one writer at a
        time; PostgreSQL would rather ``INSERT ... ON CONFLICT (name) DO UPDATE``)."""
        others = {k: v for k, v in values.items() if k != "name"}
        found = conn.execute(
            runners.update().where(runners.c.name == values["name"]).values(others)
        ).rowcount
        if not found:
            conn.execute(runners.insert().values(dict(values)))


class SqliteDialect(Dialect):
    name = "sqlite"
    batch_rows = 200  # SQLite limits bound parameters per statement
    transactional_ddl = True
    one_writer = True

    def create_engine(self, url: sa.URL) -> sa.Engine:
        if self.in_memory(url):
            # The database lives in its connection: one connection for every thread of a pass
            # (claims made ahead, the flusher, the heartbeat, handler threads), which the store
            # lends to one transaction at a time (``SqlStore``).
            return self._engine(url, poolclass=sa.pool.StaticPool)
        return self._engine(url)

    def delete_each(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        # The driver's executemany, one statement prepared once: SQLAlchemy's own builds a
        # parameter dict per row, as long again as the deletes (a pass deletes every job it ran).
        # The values need no conversion: ids, tokens and versions are stored as they are.
        if not rows:
            return 0
        names = list(rows[0])
        where = " AND ".join(f"{jobs.c[name].name} = ?" for name in names)
        params = [tuple(row[name] for name in names) for row in rows]
        statement = f"DELETE FROM {jobs.name} WHERE {where}"
        return int(conn.exec_driver_sql(statement, params).rowcount)

    def _engine(self, url: sa.URL, **options: Any) -> sa.Engine:
        # A busy timeout of 5 s; connections move between the threads of a pass.
        return sa.create_engine(
            url,
            connect_args={"timeout": 5.0, "check_same_thread": False},
            pool_pre_ping=False,
            **options,
        )

    def prepare(self, conn: sa.Connection) -> None:
        # WAL lets readers run beside the writer; it is a property of the file (it persists).
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")

    def local_file(self, url: sa.URL) -> Path | None:
        if not url.database or url.database == ":memory:":
            return None
        if url.query.get("uri") or url.database.startswith("file:"):
            return None
        return Path(url.database)

    def in_memory(self, url: sa.URL) -> bool:
        return sqlite_in_memory(url)

    def row_id_type(self) -> sa.types.TypeEngine[Any]:
        # Only INTEGER PRIMARY KEY is SQLite's rowid (64-bit already); BIGINT would not number.
        return sa.Integer()

    def autocommit_engine(self, engine: sa.Engine, *, owned: bool) -> sa.Engine | None:
        if owned and not self.in_memory(engine.url):
            # Connections of its own in autocommit mode: a statement alone is its own
            # transaction, as in pysqlite with isolation_level=None.
            return self._engine(engine.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
        # A caller's engine, or an in-memory database (private to its pool): the same pool,
        # and ``commit_alone`` commits (in-process; the fsync is the commit's either way).
        return engine

    def commit_alone(self, dbapi_conn: Any) -> None:
        if dbapi_conn.isolation_level is not None:
            dbapi_conn.commit()

    def insert_statement(
        self, dbapi_conn: Any, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> tuple[str, list[tuple[Any, ...]] | None]:
        values = []
        for row in rows:
            expiry = row[4]
            values.append(
                (
                    *row[:3],
                    _utc_text(row[3]),
                    None if expiry is None else _utc_text(expiry),
                    row[5],
                    row[6],
                    _utc_text(row[7]),
                    row[8],
                    row[9],
                )
            )
        return _SQLITE_INSERTS[on_conflict], values

    def insert_runs(self, conn: sa.Connection, runs: Sequence[tuple[NewRun, bool]]) -> None:
        # The driver's executemany with values as SQLAlchemy would store them (times as text):
        # SQLAlchemy's own processes every value of every row in Python.
        params = [
            (
                run.job_id,
                run.handler,
                run.attempt,
                run.max_attempts,
                run.outcome,
                run.runner,
                _utc_text(run.scheduled_start),
                None if run.started_at is None else _utc_text(run.started_at),
                _utc_text(run.finished_at),
                run.error,
                run.payload,
                1 if superseded else 0,
            )
            for run, superseded in runs
        ]
        conn.exec_driver_sql(_SQLITE_RUN_INSERT, params)

    def database_of(self, engine: sa.Engine) -> Hashable:
        # The file, as SQLite would open it now (relative to the current directory), with
        # symbolic links resolved. An in-memory database belongs to its engine's pool.
        path = sqlite_file(engine.url)
        return ("memory", id(engine.pool)) if path is None else os.path.realpath(path)

    def begin(self, conn: sa.Connection, *, write: bool) -> None:
        # pysqlite would BEGIN lazily (DEFERRED) before the first DML; a deferred transaction that
        # read first cannot become a writer under WAL. IMMEDIATE waits for the write lock instead.
        if write:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def lock_limits(self, conn: sa.Connection) -> None:
        # Nothing to take: a claim is a write transaction, begun with BEGIN IMMEDIATE, which
        # holds the database's one write lock from its start (and the store's threads queue
        # for it in ``SqlStore._writer``). Its reads see every commit before it, and no other
        # claim commits until it does.
        pass

    def hold_for_update(self, conn: sa.Connection) -> None:
        # SQLite has no row locks, and pysqlite begins a transaction only at the first write: a
        # read before it could be outdated by the time of the write. A write that changes nothing
        # takes the database's write lock now (or fails as busy if the caller's transaction
        # read an older snapshot), so nobody writes between our read and our write.
        conn.execute(jobs.update().where(sa.false()).values(version=jobs.c.version))

    def insert_keep(self, rows: list[dict[str, Any]]) -> sa.Executable:
        return (
            sqlite_dialect.insert(jobs)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["job_id"])
        )

    def classify(self, exc: sa.exc.DBAPIError) -> str:
        text = str(exc.orig).lower()
        if isinstance(exc, sa.exc.IntegrityError) and "unique" in text:
            return DUPLICATE
        if "locked" in text or "busy" in text:
            return BUSY
        if "unable to open database" in text:
            return UNREACHABLE
        return OTHER


#: Seconds to wait for another writer of the same id before going ahead without the named lock.
NAMED_LOCK_TIMEOUT = 20
_MYSQL_BUSY = {1205, 1213}
_MYSQL_DISCONNECTED = {1053, 1927, 2006, 2013, 2014, 2055, 4031}
_MYSQL_UNREACHABLE = {1044, 1045, 1049, 2002, 2003, 2005}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


class _Utf8Varbinary(mysql_dialect.VARBINARY):
    """``VARBINARY`` holding a string's UTF-8 bytes: strings go in as their bytes."""

    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        binary = super().bind_processor(dialect)  # type: ignore[no-untyped-call]

        def process(value: Any) -> Any:
            if isinstance(value, str):
                value = value.encode("utf-8")
            return value if binary is None else binary(value)

        return process


class MysqlDialect(Dialect):
    name = "mysql"
    #: Under both dialect names: the ``mariadb`` dialect ignores ``mysql_*`` options.
    table_options = {
        f"{prefix}_{key}": value
        for prefix in ("mysql", "mariadb")
        for key, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
    }

    def create_engine(self, url: sa.URL) -> sa.Engine:
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        engine = sa.create_engine(
            url,
            pool_recycle=3600,
            isolation_level=self.isolation_level,
            # The pool's ROLLBACK on every checkin is a round trip, after a transaction that
            # committed already. jobsched uses this engine only through SQLAlchemy Connections,
            # which roll back whatever they began and did not end when they close.
            pool_reset_on_return=None,
        )
        return _tuned(_own_connections(engine))

    def autocommit_engine(self, engine: sa.Engine, *, owned: bool) -> sa.Engine | None:
        # A pool of its own. A caller's engine cannot lend its pool: switching a connection to
        # autocommit and back costs four round trips. So a caller's pool is copied (its
        # ``recreate()``: the same way to connect, the same pool listeners), not shared.
        options: dict[str, Any] = {}
        if _SKIPS_AUTOCOMMIT_ROLLBACK:  # SQLAlchemy 2.0.43+
            options["skip_autocommit_rollback"] = True
        if not owned:
            if not _SKIPS_AUTOCOMMIT_ROLLBACK:
                return None  # the copy would roll back on every checkin: a round trip
            return _tuned(
                sa.create_engine(
                    engine.url,
                    pool=engine.pool.recreate(),
                    isolation_level="AUTOCOMMIT",
                    **options,
                )
            )
        own = sa.create_engine(
            engine.url,
            pool_recycle=3600,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,  # no transaction is ever left open on it
            **options,
        )
        return _tuned(_own_connections(own))

    def forget_connections(self, engine: sa.Engine) -> None:
        # Probably a restarted server: its other idle connections are dropped too. (The
        # autocommit engine's pool is always jobsched's own.)
        engine.dispose()

    #: Bytes per multi-row INSERT: well under every server's default ``max_allowed_packet``
    #: (4 MiB on MySQL 5.7, 16 MiB on MariaDB, 64 MiB on MySQL 8), as PyMySQL's executemany.
    batch_bytes = 1024 * 1024
    batch_rows = 2000
    multi_row_inserts = True

    def insert_statement(
        self, dbapi_conn: Any, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> tuple[str, list[tuple[Any, ...]] | None]:
        # Literals, not parameters: see ``_mysql_literals``.
        values = ",".join(f"({literals})" for literals in _mysql_literals(dbapi_conn, rows))
        return _MYSQL_INSERT + "VALUES " + values + _MYSQL_ON_CONFLICT[on_conflict], None

    def insert_locked(
        self, conn: sa.Connection, rows: Sequence[NewRow], on_conflict: OnConflict
    ) -> None:
        if len(rows) != 1:
            super().insert_locked(conn, rows, on_conflict)
            return
        # One job (schedule_job(conn=...)): the named lock is taken by the INSERT itself, in
        # the WHERE of its one-row SELECT, which runs before the row is written (or waited
        # for), and released after: two round trips, not three. COALESCE(...) >= 0 is always
        # true, whatever GET_LOCK returns (1, 0 after the timeout, NULL), but cannot be
        # decided without calling it.
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        [literals] = _mysql_literals(dbapi, rows)
        [name] = self._lock_names(conn, [rows[0][0]])
        statement = (
            f"{_MYSQL_INSERT}SELECT {literals} FROM DUAL "
            f"WHERE COALESCE(GET_LOCK('{name}', {NAMED_LOCK_TIMEOUT}), 0) >= 0"
            f"{_MYSQL_ON_CONFLICT[on_conflict]}"
        )
        try:
            conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        finally:
            conn.exec_driver_sql(
                f"DO RELEASE_LOCK('{name}')", execution_options={"no_parameters": True}
            )

    #: Claims skip locked rows; REPEATABLE READ's gap locks would make runners collide.
    isolation_level = "READ COMMITTED"

    def adopt_engine(self, engine: sa.Engine) -> sa.Engine:
        return engine.execution_options(isolation_level=self.isolation_level)

    def datetime_type(self) -> sa.types.TypeEngine[Any]:
        # Plain DATETIME drops (MariaDB) or rounds (MySQL) the microseconds.
        return mysql_dialect.DATETIME(fsp=6)

    def exact_string_type(self, chars: int) -> sa.types.TypeEngine[Any]:
        # Collations fold case and pad spaces ('a' = 'A '); bytes compare exactly.
        return _Utf8Varbinary(4 * chars)

    def long_text_type(self) -> sa.types.TypeEngine[Any]:
        return mysql_dialect.MEDIUMTEXT()

    def database_of(self, engine: sa.Engine) -> Hashable:
        url = engine.url
        host = (url.host or "localhost").lower()
        if host in _LOOPBACK or "unix_socket" in url.query:
            host = "localhost"
        return (host, url.port or 3306, url.database or "")

    def lock_for_claim(self, query: sa.Select[Any], index: str = "ix_jobs_start") -> sa.Select[Any]:
        # The planner may pick a full scan plus sort, locking every due row; force the index.
        hint = f"FORCE INDEX ({index})"
        return (
            query.with_hint(jobs, hint, dialect_name="mysql")
            .with_hint(jobs, hint, dialect_name="mariadb")
            .with_for_update(skip_locked=True)
        )

    def lock_limits(self, conn: sa.Connection) -> None:
        # Claims skip locked job rows, so nothing there makes two runners that count the same
        # handler's running jobs wait for each other: both would see a free slot and take it.
        # A blocking lock on one row of jobsched_meta does (by primary key: under READ
        # COMMITTED no gap is locked), until the claim commits. The row is made by the first
        # claim that needs it; ON DUPLICATE KEY UPDATE locks it whether it inserted it or not.
        name = conn.exec_driver_sql(
            f"SELECT name FROM {meta.name} WHERE name = %s FOR UPDATE", (LIMITS_LOCK,)
        ).first()
        if name is None:
            conn.exec_driver_sql(
                f"INSERT INTO {meta.name} (name, at) VALUES (%s, NULL) "
                "ON DUPLICATE KEY UPDATE name = name",
                (LIMITS_LOCK,),
            )

    def lock_rows(self, query: sa.Select[Any]) -> sa.Select[Any]:
        # Inside a caller's REPEATABLE READ transaction a plain read sees an old snapshot; a
        # locking read sees the newest row, and we hold its lock already (no upgrade, no deadlock).
        return query.with_for_update()

    def insert_keep(self, rows: list[dict[str, Any]]) -> sa.Executable:
        # Not INSERT IGNORE: it takes a shared lock on an existing row (a later exclusive read
        # deadlocks) and turns data errors into warnings. ON DUPLICATE KEY takes an exclusive one.
        stmt = mysql_dialect.insert(jobs).values(rows)
        return stmt.on_duplicate_key_update(job_id=jobs.c.job_id)

    def classify(self, exc: sa.exc.DBAPIError) -> str:
        args = getattr(exc.orig, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        if code == 1062:
            return DUPLICATE
        if code in _MYSQL_BUSY:
            return BUSY
        if code in _MYSQL_DISCONNECTED or exc.connection_invalidated:
            return DISCONNECTED
        if code in _MYSQL_UNREACHABLE:
            return UNREACHABLE
        return OTHER

    @contextmanager
    def id_locks(self, conn: sa.Connection, job_ids: Sequence[str]) -> Iterator[None]:
        # When a transaction that inserted an id rolls back while two or more others wait on that
        # row, InnoDB turns their waits into gap locks and the waiters deadlock (1213) on their
        # own inserts: a web request that rolls back would fail the others scheduling the same
        # id. A named lock per id, held only around our statements, lets one writer at a time
        # wait on the row. Named locks are not transactional: we release them at once, and a
        # lock that times out is skipped (the statement then runs as it would without it).
        names = self._lock_names(conn, job_ids)
        # DO, not SELECT: no result set to send and read (the results are not needed). The
        # names are hex digests: literals, no placeholders.
        get = ", ".join(f"GET_LOCK('{name}', {NAMED_LOCK_TIMEOUT})" for name in names)
        conn.exec_driver_sql(f"DO {get}", execution_options={"no_parameters": True})
        try:
            yield
        finally:
            release = ", ".join(f"RELEASE_LOCK('{name}')" for name in names)
            conn.exec_driver_sql(f"DO {release}", execution_options={"no_parameters": True})

    def _lock_names(self, conn: sa.Connection, job_ids: Sequence[str]) -> list[str]:
        """The named locks of these ids in this database, sorted (no two callers wait on each
        other's in opposite orders)."""
        database = conn.engine.url.database or ""
        return sorted(
            {
                "jobsched:" + hashlib.sha1(f"{database}\0{job_id}".encode()).hexdigest()
                for job_id in job_ids
            }
        )

    def lock_ids(self, query: sa.Select[Any]) -> sa.Select[Any]:
        # By primary key, whatever the planner thinks of a short table: a scan would wait on
        # rows other runners hold.
        hint = "FORCE INDEX (PRIMARY)"
        return (
            query.with_hint(jobs, hint, dialect_name="mysql")
            .with_hint(jobs, hint, dialect_name="mariadb")
            .with_for_update()
        )

    # ``DELETE ... WHERE job_id IN (...)`` is planned as a full scan when the list is long next
    # to the table (index hints do not change that), and a scan waits on rows other runners
    # hold: two runners deadlock. PyMySQL sends an UPDATE or DELETE per row (a round trip each).
    # One statement joined from a table of the rows' values finds each row by its primary key
    # (eq_ref), whatever the sizes, and writes the lot.

    def delete_each(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        match = list(rows[0])
        deleted = 0
        for chunk in chunks(rows):
            table, params = _values_table(chunk, match)
            deleted += conn.exec_driver_sql(
                f"DELETE j FROM ({table}) AS d STRAIGHT_JOIN jobs AS j ON {_joined(match)}",
                tuple(params),
            ).rowcount
        return deleted

    def update_each(
        self,
        conn: sa.Connection,
        rows: Sequence[Mapping[str, Any]],
        common: Mapping[str, Any],
        *,
        match: tuple[str, ...] = ("job_id",),
    ) -> int:
        if not rows:
            return 0
        columns = [*match, *(name for name in rows[0] if name not in match)]
        sets = [f"j.{name} = d.{name}" for name in columns if name not in match]
        params_common: list[Any] = []
        for name, value in common.items():
            if value is BUMP:
                sets.append(f"j.{name} = j.{name} + 1")
            else:
                sets.append(f"j.{name} = %s")
                params_common.append(_mysql_param(name, value))
        matched = 0
        for chunk in chunks(rows):
            table, params = _values_table(chunk, columns)
            matched += conn.exec_driver_sql(
                f"UPDATE ({table}) AS d STRAIGHT_JOIN jobs AS j ON {_joined(match)} "
                f"SET {', '.join(sets)}",
                tuple(params + params_common),
            ).rowcount
        return matched

    def insert_runs(self, conn: sa.Connection, runs: Sequence[tuple[NewRun, bool]]) -> None:
        # Multi-row statements of literals (as ``_mysql_literals`` for jobs): PyMySQL would
        # escape every parameter in Python, most of the write's time. The columns most rows of
        # a batch share (handler, outcome, runner, ...) are rendered once per combination.
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        escape = dbapi.escape
        shared: dict[tuple[Any, ...], str] = {}
        times: dict[datetime, str] = {}

        def time_(value: datetime) -> str:
            found = times.get(value)
            if found is None:
                found = times[value] = _time_literal(value)
            return found

        rows = []
        for run, superseded in runs:
            key = (
                run.handler,
                run.max_attempts,
                run.outcome,
                run.runner,
                run.scheduled_start,
                superseded,
            )
            common = shared.get(key)
            if common is None:
                common = shared[key] = (
                    f"X'{str.encode(run.handler, 'utf-8').hex()}',{run.max_attempts:d},"
                    f"{escape(run.outcome)},"
                    f"{'NULL' if run.runner is None else escape(run.runner)},"
                    f"{time_(run.scheduled_start)},{1 if superseded else 0}"
                )
            started, error, data = run.started_at, run.error, run.payload
            rows.append(
                f"({common},X'{str.encode(run.job_id, 'utf-8').hex()}',{run.attempt:d},"
                f"{'NULL' if started is None else _time_literal(started)},"
                f"{_time_literal(run.finished_at)},"
                f"{'NULL' if error is None else escape(error)},"
                f"{'NULL' if data is None else escape(data)})"
            )
        for chunk in chunks(rows):
            conn.exec_driver_sql(
                f"{_MYSQL_RUN_INSERT}{','.join(chunk)}",
                execution_options={"no_parameters": True},
            )

    def check_server(self, conn: sa.Connection) -> None:
        version = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
        if not supports_skip_locked(version):
            raise DatabaseError(
                f"jobsched needs MySQL 8.0+ or MariaDB 10.6+ (for SKIP LOCKED); "
                f"this server is {version}"
            )

    def upsert_runner(self, conn: sa.Connection, values: Mapping[str, Any]) -> None:
        # One statement: runners starting at once on many hosts take no gap locks to deadlock on.
        insert = mysql_dialect.insert(runners).values(dict(values))
        conn.execute(
            insert.on_duplicate_key_update({k: insert.inserted[k] for k in values if k != "name"})
        )


def _run_values(run: NewRun, superseded: bool) -> dict[str, Any]:
    return {
        "job_id": run.job_id,
        "handler": run.handler,
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "outcome": run.outcome,
        "runner": run.runner,
        "scheduled_start": run.scheduled_start,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "data": run.payload,
        "superseded": superseded,
    }


#: Marker in the values of ``update_ids`` and ``update_each``: the column plus one.
BUMP: Any = object()
#: Rows per statement of the batch writes (bound parameters and statement size stay modest).
CHUNK = 500


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _values_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> tuple[str, list[Any]]:
    """A MySQL derived table of ``rows``' values (``SELECT %s AS a, ... UNION ALL SELECT ...``)
    and its parameters."""
    first = ", ".join(f"%s AS {name}" for name in columns)
    rest = ", ".join(["%s"] * len(columns))
    table = " UNION ALL ".join([f"SELECT {first}"] + [f"SELECT {rest}"] * (len(rows) - 1))
    return table, [_mysql_param(name, row[name]) for row in rows for name in columns]


def _joined(match: Sequence[str]) -> str:
    return " AND ".join(f"j.{name} = d.{name}" for name in match)


def _resolved(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (jobs.c[k] + 1 if v is BUMP else v) for k, v in values.items()}


#: Columns stored as the UTF-8 bytes of their text (``schema.ExactString``).
_BYTES_COLUMNS = frozenset({"job_id", "handler"})


def _mysql_param(column: str, value: Any) -> Any:
    """A value for ``column`` as the driver should get it in SQL that jobsched writes by hand
    (not through the table's column types): ids as their UTF-8 bytes, times as naive UTC."""
    if column in _BYTES_COLUMNS and isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def supports_skip_locked(version: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        return False
    major, minor, patch = (int(p or 0) for p in match.groups())
    if "mariadb" in version.lower():
        return (major, minor) >= (10, 6)
    return (major, minor, patch) >= (8, 0, 1)


def family(name: str) -> str:
    """The dialect family of a SQLAlchemy dialect name (MariaDB is MySQL here)."""
    return "mysql" if name in ("mysql", "mariadb") else name


def sqlite_file(url: sa.URL) -> str | None:
    """The file a SQLite URL opens (None for an in-memory database), ``file:`` URIs included."""
    database = url.database or ""
    if database.startswith("file:") or url.query.get("uri") in ("true", "1"):
        path, _, options = database.removeprefix("file:").partition("?")
        if "mode=memory" in options or url.query.get("mode") == "memory":
            return None
        if path.startswith("//"):  # file://HOST/path: only an empty host or localhost
            path = "/" + path[2:].partition("/")[2]
        database = unquote(path)
    return None if database in ("", ":memory:") else database


_SQLITE = SqliteDialect()
_MYSQL = MysqlDialect()
#: jobsched's dialect class for each SQLAlchemy dialect name it supports.
_DIALECTS: dict[str, Dialect] = {"sqlite": _SQLITE, "mysql": _MYSQL, "mariadb": _MYSQL}
_GENERIC = Dialect()


def dialect_for(name: str) -> Dialect:
    """The dialect of a SQLAlchemy dialect name (``UsageError`` if jobsched does not support
    that database)."""
    try:
        return _DIALECTS[name]
    except KeyError:
        raise UsageError(
            f"jobsched does not support {name!r} databases yet; {SUPPORTED_URLS}"
        ) from None


def seam_for(name: str) -> Dialect:
    """As ``dialect_for``, with the generic dialect for any other name (SQL compiled for
    display, or by a database jobsched refuses elsewhere)."""
    return _DIALECTS.get(name, _GENERIC)


def table_options() -> dict[str, str]:
    """The table options of every dialect, for a migration's ``op.create_table`` (each
    database's SQLAlchemy dialect reads its own and ignores the others)."""
    options: dict[str, str] = {}
    for dialect in (_SQLITE, _MYSQL):
        options.update(dialect.table_options)
    return options


#: What an error about an unsupported URL suggests instead.
SUPPORTED_URLS = (
    "supported are sqlite:///PATH (a file), mysql+pymysql://USER:PASSWORD@HOST/DB and "
    "mariadb+pymysql://USER:PASSWORD@HOST/DB (a plain mysql:// or mariadb:// means PyMySQL), "
    "and memory:// for tests through the Python API"
)

#: The drivers jobsched accepts for each backend ("" is a URL that names none).
_DRIVERS = {"sqlite": ("", "pysqlite"), "mysql": ("", "pymysql"), "mariadb": ("", "pymysql")}


def checked_url(url: sa.URL) -> sa.URL:
    """``url`` if jobsched supports its backend and driver (``UsageError`` otherwise), with a
    MySQL/MariaDB URL that names no driver set to PyMySQL."""
    scheme = url.drivername.lower()
    backend, _, driver = scheme.partition("+")
    if backend not in _DRIVERS:
        raise UsageError(f"jobsched does not support {scheme}:// URLs; {SUPPORTED_URLS}")
    if driver not in _DRIVERS[backend]:
        raise UsageError(
            f"jobsched does not support the {driver!r} driver ({scheme}:// URL); {SUPPORTED_URLS}"
        )
    if backend in ("mysql", "mariadb"):
        scheme = f"{backend}+pymysql"
    return url.set(drivername=scheme)


def sqlite_in_memory(url: sa.URL) -> bool:
    """True if ``url`` names a SQLite database that lives only as long as its connections:
    ``sqlite://``, ``sqlite:///:memory:``, ``file::memory:`` or ``mode=memory`` URIs, and the
    empty path (a temporary database)."""
    if url.drivername.lower().partition("+")[0] != "sqlite":
        return False
    database = url.database or ""
    if url.query.get("mode") == "memory":
        return True
    if str(url.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
        database = database.removeprefix("file:").split("?")[0]
    return database in ("", ":memory:")


# -- new jobs ---------------------------------------------------------------------------------

#: The values of a new job's row, in ``Dialect.insert_jobs``'s order (the claim columns are
#: left NULL): job_id, handler, data (JSON text), start_time, expiry, attempts, max_attempts,
#: created_at (aware datetimes), last_error, version.
NEW_ROW_COLUMNS = (
    "job_id",
    "handler",
    "data",
    "start_time",
    "expiry",
    "attempts",
    "max_attempts",
    "created_at",
    "last_error",
    "version",
)
NewRow = tuple[Any, ...]


class OnConflict(enum.Enum):
    """What ``Dialect.insert_jobs`` does with a row whose id exists."""

    FAIL = "fail"  # a duplicate-key error (nothing of the statement is written)
    KEEP = "keep"  # the existing row stays, locked by the statement as if it were written
    REPLACE = "replace"  # the new values, the claim kept; version + 1 and not started


#: What REPLACE takes from the new row (everything but the id, the version and the claim).
_REPLACED = NEW_ROW_COLUMNS[1:-1]
_COLUMN_LIST = ", ".join(NEW_ROW_COLUMNS)

_SQLITE_INSERT = (
    f"INSERT INTO {jobs.name} ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(NEW_ROW_COLUMNS))})"
)
_SQLITE_INSERTS = {
    OnConflict.FAIL: _SQLITE_INSERT,
    OnConflict.KEEP: _SQLITE_INSERT + " ON CONFLICT (job_id) DO NOTHING",
    OnConflict.REPLACE: _SQLITE_INSERT
    + " ON CONFLICT (job_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _REPLACED)
    + ", version = version + 1, started_at = NULL",
}

_MYSQL_INSERT = f"INSERT INTO {jobs.name} ({_COLUMN_LIST}) "
_MYSQL_ON_CONFLICT = {
    OnConflict.FAIL: "",
    # Not INSERT IGNORE: it takes a shared lock on an existing row (a later exclusive read
    # deadlocks) and turns data errors into warnings. ON DUPLICATE KEY takes an exclusive one.
    OnConflict.KEEP: " ON DUPLICATE KEY UPDATE job_id = job_id",
    OnConflict.REPLACE: " ON DUPLICATE KEY UPDATE "
    + ", ".join(f"{name} = VALUES({name})" for name in _REPLACED)
    + ", version = version + 1, started_at = NULL",
}


#: The columns of a history row that a runner writes (``run_id`` and ``retried_at`` are not).
RUN_COLUMNS = (
    "job_id",
    "handler",
    "attempt",
    "max_attempts",
    "outcome",
    "runner",
    "scheduled_start",
    "started_at",
    "finished_at",
    "error",
    "data",
    "superseded",
)
_RUN_COLUMN_LIST = ", ".join(RUN_COLUMNS)
_SQLITE_RUN_INSERT = (
    f"INSERT INTO {job_runs.name} ({_RUN_COLUMN_LIST}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
)
#: MySQL's literal rows put the columns most rows of a batch share first.
_MYSQL_RUN_COLUMNS = (
    "handler",
    "max_attempts",
    "outcome",
    "runner",
    "scheduled_start",
    "superseded",
    "job_id",
    "attempt",
    "started_at",
    "finished_at",
    "error",
    "data",
)
_MYSQL_RUN_INSERT = f"INSERT INTO {job_runs.name} ({', '.join(_MYSQL_RUN_COLUMNS)}) VALUES "


def _mysql_literals(dbapi_conn: Any, rows: Sequence[NewRow]) -> list[str]:
    """Each row's values as MySQL literals, comma-separated.

    PyMySQL escapes each parameter in Python (most of a bulk insert's time); literals rendered
    here take a fraction of that: ids as hex (bytes, whatever the connection's character set),
    text escaped by the connection (it knows NO_BACKSLASH_ESCAPES), times as naive UTC,
    numbers as digits (``:d`` refuses anything else).
    """
    escape = dbapi_conn.escape
    times: dict[datetime, str] = {}  # most jobs of a batch share a start and a creation
    hexed: dict[str, str] = {}
    literals = []
    for row in rows:
        job_id, handler, data, start, expiry, attempts, max_attempts, created, error, version = row
        name = hexed.get(handler)
        if name is None:
            name = hexed[handler] = str.encode(handler, "utf-8").hex()
        literals.append(
            f"X'{str.encode(job_id, 'utf-8').hex()}',X'{name}',{escape(str(data))},"
            f"{times.get(start) or times.setdefault(start, _time_literal(start))},"
            f"{'NULL' if expiry is None else _time_literal(expiry)},"
            f"{attempts:d},{max_attempts:d},"
            f"{times.get(created) or times.setdefault(created, _time_literal(created))},"
            f"{'NULL' if error is None else escape(str(error))},{version:d}"
        )
    return literals


def _time_literal(value: datetime) -> str:
    return f"'{_utc_text(value)}'"


def _utc_text(value: datetime) -> str:
    """An aware datetime as naive UTC text to the microsecond (``2026-01-05 09:00:00.000000``):
    what SQLAlchemy stores in SQLite, and a MySQL ``DATETIME(6)`` literal."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # The text of the aware value without its "+00:00" (a third faster than dropping the zone
    # first: a pass writes two of these for every job it runs).
    return value.isoformat(" ", "microseconds")[:26]


# -- MySQL connections ------------------------------------------------------------------------

#: A pooled connection idle longer than this is pinged before use (one round trip, small next
#: to the time it sat idle); one used more recently is used as it is, and a statement that
#: finds it dropped is retried.
IDLE_PING_SECONDS = 1.0
_IDLE_SINCE = "jobsched_idle_since"
_SKIPS_AUTOCOMMIT_ROLLBACK = (
    "skip_autocommit_rollback"
    in inspect.signature(sa.engine.default.DefaultDialect.__init__).parameters
)


def _own_connections(engine: sa.Engine) -> sa.Engine:
    """``engine`` (one jobsched opened itself) making PyMySQL connections that share one TLS
    context.

    PyMySQL 1.2, given no TLS options, offers TLS to every server that offers it (its
    PREFERRED mode) and builds a fresh TLS context for each connection to do so: loading the
    system's CA certificates costs about 16 ms a connection, more than a pass over a hundred
    jobs, and a pass opens a few. The context is built once and shared (an ``SSLContext`` is
    made to be shared); a connection still uses TLS exactly when PyMySQL would. TLS options in
    the URL (``ssl_ca=...``) go to PyMySQL as they are.
    """
    if engine.dialect.driver != "pymysql":
        return engine
    connection_class = _shared_tls_connection_class()

    @sa.event.listens_for(engine, "do_connect")
    def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        return connection_class(*cargs, **cparams)

    return engine


@functools.cache
def _shared_tls_connection_class() -> type:
    from pymysql.connections import Connection

    shared: list[Any] = []
    lock = threading.Lock()

    class SharedTlsConnection(Connection):  # type: ignore[misc]
        def _create_ssl_ctx(self, sslp: Any) -> Any:
            if sslp:  # the URL's TLS options: PyMySQL's own way
                return super()._create_ssl_ctx(sslp)
            with lock:
                if not shared:
                    shared.append(super()._create_ssl_ctx(sslp))
                return shared[0]

    return SharedTlsConnection


def _tuned(engine: sa.Engine) -> sa.Engine:
    """``engine`` with what jobsched's MySQL engines do on connect, checkout and checkin."""
    from pymysql.constants import FIELD_TYPE

    @sa.event.listens_for(engine, "connect")
    def fast_datetimes(dbapi_conn: Any, record: Any) -> None:
        # PyMySQL parses DATETIME with a regular expression; the server's text is ISO 8601.
        dbapi_conn.decoders[FIELD_TYPE.DATETIME] = _datetime_from_text

    @sa.event.listens_for(engine, "checkin")
    def idle_from(dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        # Instead of pool_pre_ping's round trip before every use: only a connection that sat
        # idle a while (the server may have dropped it: wait_timeout, KILL, a restart).
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:
            # Probably a restarted server: SQLAlchemy replaces every connection made before.
            raise sa.exc.InvalidatePoolError(f"an idle connection was dropped: {e}") from e

    return engine


def _datetime_from_text(text: str | bytes) -> Any:
    """A DATETIME column's value as PyMySQL would decode it, without its regular expression."""
    try:
        return datetime.fromisoformat(text if isinstance(text, str) else text.decode("ascii"))
    except ValueError:
        from pymysql.converters import convert_datetime

        return convert_datetime(text)  # zero dates and other oddities, PyMySQL's way
