"""``jobsched stats`` on a million jobs and a million history rows: how long it takes, and what
the database does for it.

    .venv/bin/python -m bench.stats_million [--url URL] [--jobs N] [--history-rows N] [--runs N]
    .venv/bin/python -m bench.stats_million --url sqlite:////tmp/stats-million.db

Issue 13: "On 1,000,000 jobs and 1,000,000 history rows it answers in under a second on MariaDB
(indexes, not scans)". Without ``--url`` it makes a fresh MariaDB database of its own
(``jobsched_bench_stats_<pid>`` on root@127.0.0.1:3306) and drops it at the end; a ``--url`` must
name a MariaDB database that does not exist yet or has no tables, or an SQLite file that does not
exist yet, and is dropped (deleted) at the end too, unless ``--keep``.

1. Creates jobsched's tables (``Scheduler.migrate``), then loads them with plain SQL (``INSERT ...
   SELECT`` over a table of numbers, as ``bench/sqlbulk.py`` does; a million API calls would take
   minutes), untimed. Jobs: a few thousand due (up to two hours late), a few hundred held by a
   runner (``running``; some with progress), a few dozen whose runner vanished (lease run out:
   due again), some hundred deferred (``last_error`` says no handler is registered, their next
   try up to an hour ahead, each with its ``deferred`` history row in the last hour), the rest
   scheduled up to a year ahead; over eight handlers of unequal size. History: spread evenly over
   the last 14 days (the default retention), mostly succeeded, some retried, failed, expired,
   kept, lost and deferred, with run times from 10 ms to a minute. On MariaDB, then
   ``ANALYZE TABLE`` (what InnoDB's automatic statistics do by themselves after a load).
2. Times ``Scheduler(url).stats()``, ``backlog()``, ``history(limit=100)`` and ``failed_jobs()``
   in one process (the first call apart: it connects), ``--runs`` times each, interleaved, and the
   ``jobsched stats`` command in a fresh process; prints median and max.
3. Prints the statements each of them sends (caught with a ``before_cursor_execute`` listener on
   the scheduler's engine) with the database's plan for each: MariaDB's ``EXPLAIN`` with the rows
   it actually read (``ANALYZE``'s ``r_rows``), SQLite's ``EXPLAIN QUERY PLAN``.

Checks that ``stats()`` counts what was loaded. ``--out FILE`` also writes the report (Markdown).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import common

ROOT = Path(__file__).resolve().parent.parent
SERVER = "mysql+pymysql://root@127.0.0.1:3306"

#: Handlers and their share of the jobs and runs, in percent (the deferred jobs have their own).
HANDLERS = [
    ("reminders.send", 40),
    ("billing.invoice", 20),
    ("sync.account", 15),
    ("mail.digest", 10),
    ("webhooks.deliver", 8),
    ("reports.daily", 4),
    ("exports.build", 2),
    ("cleanup.sessions", 1),
]
#: The handler of the deferred jobs (no runner registers it).
DEFERRED_HANDLER = "legacy.export"
#: History outcomes: (outcome, per mille of the runs).
OUTCOMES = [
    ("succeeded", 900),
    ("retried", 40),
    ("failed", 20),
    ("expired", 15),
    ("kept", 15),
    ("lost", 5),
    ("deferred", 5),
]
RAN = ("succeeded", "retried", "failed", "kept", "lost")
HISTORY_SPAN = timedelta(days=14)
#: Multipliers of the deterministic pseudo-random spreads (``(k * P + salt) % m``).
PRIMES = (2654435761, 2246822519, 3266489917, 668265263, 374761393)


@dataclass(frozen=True)
class Plan:
    """What goes in: how many jobs of each kind, and the history rows."""

    jobs: int
    runs: int
    due: int
    running: int
    lost: int
    deferred: int

    @classmethod
    def for_size(cls, jobs: int, runs: int) -> Plan:
        due = max(1, jobs // 200)  # 5,000 of a million
        running = max(1, jobs // 3300)  # 303
        lost = max(1, jobs // 20000)  # 50
        deferred = max(1, jobs // 2000)  # 500
        if due + running + lost + deferred >= jobs:
            raise SystemExit(f"--jobs {jobs}: too few for every kind of job (at least 200)")
        return cls(jobs, runs, due, running, lost, deferred)

    @property
    def future(self) -> int:
        return self.jobs - self.due - self.running - self.lost - self.deferred


# -- SQL that differs between MariaDB and SQLite --------------------------------------------------


class Sql:
    """The few expressions the load writes differently on MariaDB and on SQLite."""

    def __init__(self, name: str, now: datetime) -> None:
        self.mysql = name in ("mysql", "mariadb")
        self.now = now.astimezone(UTC).replace(tzinfo=None)

    def ts(self, micros: str) -> str:
        """``now`` plus ``micros`` microseconds (an SQL integer expression), as jobsched stores a
        time: naive UTC, ``DATETIME(6)`` on MariaDB, ``YYYY-MM-DD HH:MM:SS.ffffff`` on SQLite."""
        base = self.now.strftime("%Y-%m-%d %H:%M:%S.%f")
        if self.mysql:
            return f"TIMESTAMPADD(MICROSECOND, {micros}, '{base}')"
        # Whole seconds through datetime(), the microseconds appended (floored, for negatives).
        us = f"((({micros}) % 1000000 + 1000000 + {self.now.microsecond}) % 1000000)"
        seconds = f"((({micros}) + {self.now.microsecond} - {us}) / 1000000)"
        whole = self.now.strftime("%Y-%m-%d %H:%M:%S")
        return f"(datetime('{whole}', printf('%+d seconds', {seconds})) || printf('.%06d', {us}))"

    def concat(self, *parts: str) -> str:
        return f"CONCAT({', '.join(parts)})" if self.mysql else "(" + " || ".join(parts) + ")"

    def pad(self, expr: str, width: int = 7) -> str:
        return f"LPAD({expr}, {width}, '0')" if self.mysql else f"printf('%0{width}d', {expr})"

    def idiv(self, a: str, b: str) -> str:
        return f"(({a}) DIV ({b}))" if self.mysql else f"(({a}) / ({b}))"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def spread(salt: int, modulo: int, k: str = "k") -> str:
    """A deterministic pseudo-random integer in [0, modulo) for row ``k``."""
    return f"(({k} * {PRIMES[salt % len(PRIMES)]} + {salt}) % {modulo})"


def pick(weighted: list[tuple[str, int]], value: str) -> str:
    """``CASE``: the name whose cumulative weight first exceeds ``value``."""
    total, whens = 0, []
    for name, weight in weighted[:-1]:
        total += weight
        whens.append(f"WHEN {value} < {total} THEN {literal(name)}")
    return f"(CASE {' '.join(whens)} ELSE {literal(weighted[-1][0])} END)"


def seconds(n: str | int) -> str:
    return f"(({n}) * 1000000)"


# -- loading --------------------------------------------------------------------------------------

JOB_COLUMNS = (
    "job_id", "handler", "data", "start_time", "expiry", "attempts", "max_attempts",
    "created_at", "last_error", "version", "claim_token", "claimed_by", "claimed_until",
    "started_at", "progress_done", "progress_total", "progress_note",
)  # fmt: skip
RUN_COLUMNS = (
    "job_id", "handler", "attempt", "max_attempts", "outcome", "runner", "scheduled_start",
    "started_at", "finished_at", "error", "data", "superseded", "retried_at",
)  # fmt: skip


def job_rows(sql: Sql, plan: Plan, kind: str, offset: int, count: int) -> str:
    """``INSERT ... SELECT`` of ``count`` jobs of one kind, numbered from ``offset``."""
    from jobsched.rules import no_handler_error

    k = f"(n + {offset})"
    handler = pick(HANDLERS, spread(1, 100, k))
    values: dict[str, str] = {
        "job_id": sql.concat("'job-'", sql.pad(k)),
        "handler": handler,
        "data": sql.concat("'{\"n\": '", k, "'}'"),
        "expiry": "NULL",
        "attempts": "0",
        "max_attempts": "3",
        "created_at": sql.ts(f"-{seconds(spread(2, 30 * 86400, k))} - 1000000"),
        "last_error": "NULL",
        "version": "1",
        "claim_token": "NULL",
        "claimed_by": "NULL",
        "claimed_until": "NULL",
        "started_at": "NULL",
        "progress_done": "NULL",
        "progress_total": "NULL",
        "progress_note": "NULL",
    }
    runner = sql.concat("'bench-host:'", f"(1000 + {k} % 4)")
    if kind == "due":  # up to two hours late
        values["start_time"] = sql.ts(f"-{seconds(f'1 + {spread(3, 7200, k)}')}")
    elif kind in ("running", "lost"):
        values.update(
            start_time=sql.ts(f"-{seconds(f'60 + {spread(3, 3600, k)}')}"),
            attempts="1",
            claim_token=sql.concat("'token-'", sql.pad(k)),
            claimed_by=runner,
            version="2",
        )
        if kind == "running":  # held for minutes more, started up to ten minutes ago
            values.update(
                claimed_until=sql.ts(seconds(f"60 + {spread(4, 240, k)}")),
                started_at=sql.ts(f"-{seconds(spread(5, 600, k))}"),
                progress_done=f"(CASE WHEN {k} % 2 = 0 THEN {k} % 100 ELSE NULL END)",
                progress_total=f"(CASE WHEN {k} % 2 = 0 THEN 100 ELSE NULL END)",
            )
        else:  # its runner vanished: the lease ran out
            values.update(
                claimed_until=sql.ts(f"-{seconds(f'1 + {spread(4, 600, k)}')}"),
                started_at=sql.ts(f"-{seconds(f'1200 + {spread(5, 600, k)}')}"),
            )
    elif kind == "deferred":  # next try up to an hour ahead (the pass deferred it an hour)
        values.update(
            handler=literal(DEFERRED_HANDLER),
            start_time=sql.ts(seconds(f"1 + {spread(6, 3599, k)}")),
            last_error=literal(no_handler_error(DEFERRED_HANDLER)),
        )
    else:  # scheduled: from a minute to a year ahead
        values["start_time"] = sql.ts(seconds(f"60 + {spread(3, 365 * 86400, k)}"))
    return (
        f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) "
        f"SELECT {', '.join(values[c] for c in JOB_COLUMNS)} FROM bench_seq WHERE n < {count}"
    )


def deferred_runs(sql: Sql, plan: Plan, offset: int) -> str:
    """The ``deferred`` history row of each deferred job: written an hour before its next try."""
    from jobsched.rules import no_handler_error

    k = f"(n + {offset})"
    finished = sql.ts(f"{seconds(f'1 + {spread(6, 3599, k)}')} - {seconds(3600)}")
    values = {
        "job_id": sql.concat("'job-'", sql.pad(k)),
        "handler": literal(DEFERRED_HANDLER),
        "attempt": "0",
        "max_attempts": "3",
        "outcome": "'deferred'",
        "runner": sql.concat("'bench-host:'", f"(1000 + {k} % 4)"),
        "scheduled_start": sql.ts(f"{seconds(f'1 + {spread(6, 3599, k)}')} - {seconds(7200)}"),
        "started_at": "NULL",
        "finished_at": finished,
        "error": literal(no_handler_error(DEFERRED_HANDLER)),
        "data": "NULL",
        "superseded": "0",
        "retried_at": "NULL",
    }
    return (
        f"INSERT INTO job_runs ({', '.join(RUN_COLUMNS)}) "
        f"SELECT {', '.join(values[c] for c in RUN_COLUMNS)} "
        f"FROM bench_seq WHERE n < {plan.deferred}"
    )


def history_rows(sql: Sql, plan: Plan) -> str:
    """``plan.runs`` history rows, evenly over the last 14 days, oldest first (as run ids go)."""
    from jobsched.rules import no_handler_error

    span_us = int(HISTORY_SPAN.total_seconds()) * 1_000_000
    # Microseconds before now: the newest row a second ago.
    ago = f"(1000000 + {sql.idiv(f'({plan.runs} - 1 - n) * {span_us}', str(plan.runs))})"
    # Run time from 10 ms to a minute, mostly short: 10 ms + 60 x^2 us for x in [0, 1000).
    payload = sql.concat("'{\"n\": '", "n", "'}'")
    took = f"(10000 + {spread(7, 1000, 'n')} * {spread(7, 1000, 'n')} * 60)"
    outcome = "o"
    ran = f"{outcome} IN ({', '.join(literal(o) for o in RAN)})"
    errors = {
        "retried": "ConnectionError: the upstream service did not answer",
        "failed": "ConnectionError: the upstream service did not answer",
        "lost": "lost: its runner vanished mid-attempt (lease ran out)",
        "deferred": no_handler_error(DEFERRED_HANDLER),
    }
    error = (
        "(CASE "
        + " ".join(f"WHEN {outcome} = {literal(o)} THEN {literal(e)}" for o, e in errors.items())
        + " ELSE NULL END)"
    )
    values = {
        "job_id": sql.concat("'done-'", sql.pad("n")),
        "handler": pick(HANDLERS, spread(1, 100, "n")),
        "attempt": f"(CASE WHEN {outcome} IN ('retried', 'failed', 'lost') "
        f"THEN 1 + n % 3 ELSE 1 END)",
        "max_attempts": "3",
        "outcome": outcome,
        "runner": sql.concat("'bench-host:'", "(1000 + n % 4)"),
        "scheduled_start": sql.ts(f"-{ago} - {took} - {seconds(spread(8, 60, 'n'))}"),
        "started_at": f"(CASE WHEN {ran} THEN {sql.ts(f'-{ago} - {took}')} ELSE NULL END)",
        "finished_at": sql.ts(f"-{ago}"),
        "error": error,
        "data": f"(CASE WHEN {outcome} IN ('succeeded', 'failed', 'expired') "
        f"THEN {payload} ELSE NULL END)",
        "superseded": "(CASE WHEN n % 997 = 0 THEN 1 ELSE 0 END)",
        "retried_at": f"(CASE WHEN {outcome} = 'failed' AND n % 5 = 0 "
        f"THEN {sql.ts(f'-{ago} + 1000')} ELSE NULL END)",
    }
    return (
        f"INSERT INTO job_runs ({', '.join(RUN_COLUMNS)}) "
        f"SELECT {', '.join(values[c] for c in RUN_COLUMNS)} "
        f"FROM (SELECT n, {pick(OUTCOMES, spread(9, 1000, 'n'))} AS o "
        f"FROM bench_seq WHERE n < {plan.runs}) AS s"
    )


def load(engine: sa.Engine, plan: Plan, now: datetime, say: Callable[[str], None]) -> None:
    """Fill jobsched's (empty) tables as ``plan`` says, times relative to ``now``."""
    sql = Sql(engine.dialect.name, now)

    def execute(conn: sa.Connection, statement: str) -> None:
        # PyMySQL formats every statement with ``%``: a modulo is ``%%`` there.
        conn.exec_driver_sql(statement.replace("%", "%%") if sql.mysql else statement)

    most = max(plan.jobs, plan.runs)
    with engine.begin() as conn:
        integer = "BIGINT" if sql.mysql else "INTEGER"
        execute(conn, f"CREATE TABLE bench_numbers (n {integer} PRIMARY KEY)")
        execute(conn, f"CREATE TABLE bench_seq (n {integer} PRIMARY KEY)")
        execute(
            conn, "INSERT INTO bench_numbers (n) VALUES " + ", ".join(f"({i})" for i in range(1000))
        )
        joins = 1
        while 1000**joins < most:
            joins += 1
        names = [f"t{j}" for j in range(joins)]
        number = " + ".join(f"{t}.n * {1000 ** (joins - 1 - j)}" for j, t in enumerate(names))
        source = " CROSS JOIN ".join(f"bench_numbers {t}" for t in names)
        if sql.mysql:
            source = source.replace("CROSS JOIN", "STRAIGHT_JOIN")
        execute(
            conn, f"INSERT INTO bench_seq (n) SELECT {number} FROM {source} WHERE {number} < {most}"
        )
    offset = 0
    for kind, count in (
        ("due", plan.due),
        ("running", plan.running),
        ("lost", plan.lost),
        ("deferred", plan.deferred),
        ("scheduled", plan.future),
    ):
        began = time.perf_counter()
        with engine.begin() as conn:
            execute(conn, job_rows(sql, plan, kind, offset, count))
            if kind == "deferred":
                execute(conn, deferred_runs(sql, plan, offset))
        say(f"  {count:,} {kind} jobs in {time.perf_counter() - began:.1f} s")
        offset += count
    began = time.perf_counter()
    with engine.begin() as conn:
        execute(conn, history_rows(sql, plan))
    say(f"  {plan.runs:,} history rows in {time.perf_counter() - began:.1f} s")
    with engine.begin() as conn:
        execute(conn, "DROP TABLE bench_seq")
        execute(conn, "DROP TABLE bench_numbers")
    if sql.mysql:
        began = time.perf_counter()
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE TABLE jobs, job_runs").all()
        say(f"  ANALYZE TABLE in {time.perf_counter() - began:.1f} s")


# -- the database of its own ----------------------------------------------------------------------


@contextmanager
def own_database(url: str | None, keep: bool, say: Callable[[str], None]) -> Iterator[str]:
    """A database (or SQLite file) of this run's own: made here, dropped at the end."""
    if url is None:
        url = f"{SERVER}/jobsched_bench_stats_{os.getpid()}"
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:":
            raise SystemExit("--url: give an SQLite file (sqlite:////path/stats.db)")
        if Path(path).exists():
            raise SystemExit(f"--url: {path} exists; give a file this run may make and delete")
        try:
            yield url
        finally:
            if keep:
                say(f"kept {url}")
            else:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    if parsed.get_backend_name() not in ("mysql", "mariadb"):
        raise SystemExit(f"--url: MariaDB/MySQL or SQLite, got {parsed.get_backend_name()}")
    name = parsed.database
    if not name:
        raise SystemExit("--url: name a database (it is made if missing, dropped at the end)")
    # (URL.set(database=None) leaves the database as it was.)
    admin = sa.create_engine(parsed._replace(database=None), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            tables = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (name,)
            ).scalar_one()
            if tables:
                raise SystemExit(
                    f"--url: the database {name!r} has tables; give one this run may fill and drop"
                )
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        try:
            yield url
        finally:
            if keep:
                say(f"kept {parsed.render_as_string(hide_password=True)}")
            else:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.dispose()


# -- timing and plans -----------------------------------------------------------------------------


@dataclass
class Op:
    name: str
    call: Callable[[], Any]
    times: list[float]
    first: float = 0.0
    statements: list[tuple[str, Any]] | None = None


def capture(engine: sa.Engine, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The statements ``call`` sends through ``engine`` (SQL text and its parameters)."""
    caught: list[tuple[str, Any]] = []

    def listen(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        caught.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    return caught


def statement_times(engine: sa.Engine, statement: str, params: Any, runs: int) -> list[float]:
    """How long the statement alone takes, rows fetched, ``runs`` times."""
    times = []
    with engine.connect() as conn:
        for _ in range(runs):
            began = time.perf_counter()
            conn.exec_driver_sql(statement, params).all()
            times.append(time.perf_counter() - began)
        conn.rollback()
    return times


def plan_of(engine: sa.Engine, statement: str, params: Any) -> list[str]:
    """The database's plan for one SELECT, as Markdown table rows (header first)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            return ["| plan |", "|---|"] + [f"| `{row[-1]}` |" for row in rows]
        explain = conn.exec_driver_sql("EXPLAIN " + statement, params).mappings().all()
        analyze = conn.exec_driver_sql("ANALYZE " + statement, params).mappings().all()
        conn.rollback()
    out = [
        "| id | select_type | table | type | key | key_len | rows (estimate) | r_rows (read) "
        "| Extra |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e, a in zip(explain, analyze, strict=False):
        out.append(
            f"| {e['id']} | {e['select_type']} | {e['table']} | {e['type']} | {e['key'] or '-'} "
            f"| {e['key_len'] or '-'} | {e['rows']} | {a.get('r_rows', '-')} "
            f"| {e['Extra'] or ''} |"
        )
    return out


def timed(call: Callable[[], Any]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def command_times(url: str, runs: int) -> tuple[list[float], list[float]]:
    """``jobsched stats`` in a fresh process, and a fresh process that only imports the CLI."""
    env = dict(os.environ)
    for name in ("JOBSCHED_DATABASE_URL", "JOBSCHED_APP", "JOBSCHED_HISTORY"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    stats_cmd = [sys.executable, "-m", "jobsched", "--database-url", url, "stats"]
    import_cmd = [sys.executable, "-c", "import jobsched.cli"]
    stats_times: list[float] = []
    import_times: list[float] = []
    for _ in range(runs):
        for cmd, out in ((stats_cmd, stats_times), (import_cmd, import_times)):
            began = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            out.append(time.perf_counter() - began)
            if proc.returncode:
                raise RuntimeError(f"{' '.join(cmd[2:])} exited {proc.returncode}: {proc.stderr}")
    return stats_times, import_times


# -- the command ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stats_million", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--url",
        help=f"a database of its own (default: a fresh {SERVER}/jobsched_bench_stats_<pid>)",
    )
    parser.add_argument("--jobs", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--history-rows", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--runs", type=int, default=5, help="timed calls of each (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--out", help="also write the report (Markdown) here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.runs < 1 or args.jobs < 1 or args.history_rows < 1:
        parser.error("--runs, --jobs and --history-rows must be at least 1")
    plan = Plan.for_size(args.jobs, args.history_rows)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with own_database(args.url, args.keep, say) as url:
        report = run(url, plan, args.runs, say)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
        say(f"wrote {args.out}")
    return 0


def run(url: str, plan: Plan, runs: int, say: Callable[[str], None]) -> str:
    from jobsched import Scheduler

    shown = sa.make_url(url).render_as_string(hide_password=True)
    scheduler = Scheduler(url)
    scheduler.migrate()
    engine: sa.Engine = scheduler.store.engine  # type: ignore[attr-defined]
    now = common.utcnow()
    say(f"loading {plan.jobs:,} jobs and {plan.runs + plan.deferred:,} history rows into {shown}")
    began = time.perf_counter()
    load(engine, plan, now, say)
    loaded = time.perf_counter() - began
    say(f"loaded in {loaded:.1f} s")
    scheduler.close()

    # A fresh scheduler, as a command has: its first call connects.
    scheduler = Scheduler(url)
    engine = scheduler.store.engine  # type: ignore[attr-defined]
    ops = [
        Op("stats()", scheduler.stats, []),
        Op("backlog()", scheduler.backlog, []),
        Op("history(limit=100)", lambda: scheduler.history(limit=100), []),
        Op("failed_jobs()", scheduler.failed_jobs, []),
    ]
    for op in ops:
        op.first = timed(op.call)
    for _ in range(runs):
        for op in ops:
            op.times.append(timed(op.call))
    stats = scheduler.stats()
    backlog = scheduler.backlog()
    failed = len(scheduler.failed_jobs())
    for op in ops:
        op.statements = [
            (statement, params)
            for statement, params in capture(engine, op.call)
            if statement.lstrip().upper().startswith(("SELECT", "WITH"))
        ]
    say("timing the jobsched stats command ...")
    command, imports = command_times(url, runs)

    lines = [
        f"- database: {shown} ({version(engine)})",
        f"- data: {plan.jobs:,} jobs ({plan.future:,} scheduled, {plan.due:,} due, "
        f"{plan.running:,} running, {plan.lost:,} lost (lease ran out: due), "
        f"{plan.deferred:,} deferred) over {len(HANDLERS) + 1} handlers; "
        f"{plan.runs + plan.deferred:,} history rows over the last 14 days "
        f"(loaded in {loaded:.0f} s, untimed)",
        f"- size: {sizes(engine, url)}",
        f"- runs: {runs} of each, after a first call (which connects)",
        "",
        "| call | first call | median | max |",
        "|---|---|---|---|",
    ]
    for op in ops:
        lines.append(
            f"| `{op.name}` | {ms(op.first)} | {ms(statistics.median(op.times))} "
            f"| {ms(max(op.times))} |"
        )
    lines.append(
        f"| `jobsched stats` (a fresh process) | - | {ms(statistics.median(command))} "
        f"| {ms(max(command))} |"
    )
    lines.append(
        f"| of which `python -c 'import jobsched.cli'` | - | {ms(statistics.median(imports))} "
        f"| {ms(max(imports))} |"
    )
    expected = {
        "scheduled": plan.future,
        "due": plan.due + plan.lost,
        "running": plan.running,
        "deferred": plan.deferred,
    }
    got = {key: sum(getattr(h, key) for h in stats.handlers) for key in expected}
    hour = sum(sum(h.last_hour.values()) for h in stats.handlers)
    day = sum(sum(h.last_day.values()) for h in stats.handlers)
    lines += [
        "",
        "What `stats()` says (summed over handlers), against what was loaded: "
        + ", ".join(f"{key} {got[key]:,} (loaded {expected[key]:,})" for key in expected)
        + f"; runs in the last hour {hour:,}, last day {day:,}; lateness "
        f"{stats.lateness}; `backlog()` {backlog[0]:,}; `failed_jobs()` {failed:,} rows.",
    ]
    if got != expected:
        lines.append("**stats() does not count what was loaded.**")
    lines += ["", "### The statements and their plans", ""]
    for op in ops:
        assert op.statements is not None
        lines += [f"#### `{op.name}`: {len(op.statements)} SELECT(s)", ""]
        for statement, params in op.statements:
            took = statement_times(engine, statement, params, runs)
            lines += [
                "```sql",
                " ".join(statement.split()),
                "```",
                "",
                f"Alone: median {ms(statistics.median(took))}, max {ms(max(took))} "
                f"({runs} runs, rows fetched).",
                "",
            ]
            lines += plan_of(engine, statement, params)
            lines.append("")
    scheduler.close()
    return "\n".join(lines)


def sizes(engine: sa.Engine, url: str) -> str:
    """How big the tables are on disk (and, on MariaDB, the buffer pool they are read through)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            path = sa.make_url(url).database or ""
            size = sum(
                Path(f"{path}{suffix}").stat().st_size
                for suffix in ("", "-wal")
                if Path(f"{path}{suffix}").exists()
            )
            return f"database file {size / 2**20:,.0f} MiB"
        rows = conn.exec_driver_sql(
            "SELECT table_name, data_length, index_length FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name IN ('jobs', 'job_runs')"
        ).all()
        pool = conn.exec_driver_sql("SELECT @@innodb_buffer_pool_size").scalar_one()
    tables = ", ".join(
        f"{name} {data / 2**20:,.0f} MiB + indexes {index / 2**20:,.0f} MiB"
        for name, data, index in sorted(rows)
    )
    return f"{tables}; InnoDB buffer pool {int(pool) / 2**20:,.0f} MiB"


def version(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return "SQLite " + str(conn.exec_driver_sql("SELECT sqlite_version()").scalar_one())
        return "MariaDB " + str(conn.exec_driver_sql("SELECT VERSION()").scalar_one())


if __name__ == "__main__":
    sys.exit(main())
