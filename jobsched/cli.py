"""The ``jobsched`` command: a thin shell over the public API.

Exit codes: 0 done (a pass whose jobs failed included), 1 the environment failed (database,
schema, app module), 2 a user mistake (bad argument, missing job). Never a traceback for either.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from jobsched.current import set_scheduler
from jobsched.errors import (
    AppImportError,
    DatabaseError,
    InvalidJobError,
    JobExistsError,
    JobschedError,
    MissingJobError,
    SchemaError,
    UsageError,
)
from jobsched.model import Job, JobInfo, JobState, MigrateResult, Mode
from jobsched.scheduler import Scheduler
from jobsched.schema import SCHEMA_REVISION
from jobsched.timeparse import parse_duration, parse_when

log = logging.getLogger("jobsched")
F = TypeVar("F", bound=Callable[..., Any])

ENVIRONMENT_FAILED = 1
USER_MISTAKE = 2


@dataclass
class Context:
    database_url: str | None
    apps: list[str] = field(default_factory=list)
    _scheduler: Scheduler | None = None

    def scheduler(self, *, import_apps: bool = True) -> Scheduler:
        """The scheduler for the chosen database, installed as the current one."""
        if self._scheduler is None:
            if import_apps:
                import_app_modules(self.apps)
            scheduler = Scheduler(self.database_url)
            if not scheduler.persistent:
                # As typed: these URLs carry no password, and describe() would escape it.
                where = self.database_url or scheduler.describe()
                scheduler.close()
                raise UsageError(
                    f"the database {where} is in memory (or temporary) and ends with this "
                    "command, so whatever the command wrote would be lost; use a database file "
                    "(sqlite:///jobsched.db) or a server (memory:// is for tests through the "
                    "Python API)"
                )
            self._scheduler = scheduler
            set_scheduler(scheduler)
        return self._scheduler


def import_app_modules(names: list[str]) -> None:
    """Import the app modules so their handlers register; the current directory comes first."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except SystemExit as e:
            raise AppImportError(
                f"app module {name!r} called sys.exit({e.code!r}) while being imported"
                f"{raised_at(e)}"
            ) from None
        except Exception as e:
            raise AppImportError(
                f"cannot import app module {name!r}: {type(e).__name__}: {e}{raised_at(e)}"
            ) from e


_IMPORTLIB = os.path.dirname(importlib.__file__) + os.sep


def raised_at(exc: BaseException) -> str:
    """`` (at FILE, line N)`` of the frame that raised ``exc`` during an import, skipping
    importlib's own frames; empty when there is none (a missing module) or the message has it
    already (a syntax error)."""
    if isinstance(exc, SyntaxError):
        return ""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(("<frozen ", _IMPORTLIB)) and frame.filename != __file__
    ]
    if not frames:
        return ""
    return f" (at {frames[-1].filename}, line {frames[-1].lineno})"


def _split_apps(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def exit_codes(fn: F) -> F:
    """Turn jobsched errors into a one-line message and the documented exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (InvalidJobError, JobExistsError, UsageError, MissingJobError) as e:
            fail(str(e), USER_MISTAKE)
        except (DatabaseError, SchemaError, AppImportError, JobschedError) as e:
            fail(str(e), ENVIRONMENT_FAILED)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"jobsched: error: {message}", err=True)
    sys.exit(code)


#: The largest integer an option takes (the API's bound for max_attempts: a 32-bit INT column).
MAX_INT = 2**31 - 1
#: The most handlers a pass runs at once (threads).
MAX_CONCURRENCY = 1000
#: The longest --grace and --max-seconds: a day.
MAX_SECONDS = 86400.0


class Count(click.ParamType[Any]):
    """A whole number from 1 to ``maximum`` (nan, inf and fractions are not whole numbers)."""

    name = "N"

    def __init__(self, maximum: int = MAX_INT) -> None:
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a whole number", param, ctx)
        if not 1 <= number <= self.maximum:
            self.fail(f"{value} is not in the range 1<=x<={self.maximum}", param, ctx)
        return number


class Seconds(click.ParamType[Any]):
    """A finite number of seconds within bounds: nan and inf are refused, not compared."""

    name = "SECONDS"

    def __init__(self, *, minimum: float, maximum: float, min_open: bool = False) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.min_open = min_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        low = "<" if self.min_open else "<="
        if (number <= self.minimum if self.min_open else number < self.minimum) or (
            number > self.maximum
        ):
            self.fail(
                f"{value!r} is not in the range {self.minimum:g}{low}x<={self.maximum:g} (seconds)",
                param,
                ctx,
            )
        return number


class Duration(click.ParamType[Any]):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(value)
        except UsageError as e:
            self.fail(str(e), param, ctx)


class When(click.ParamType[Any]):
    """An ISO 8601 time with a zone, or a duration (from now; for --expiry, from the start)."""

    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime | timedelta):
            return value
        try:
            return parse_when(value)
        except UsageError as e:
            try:
                return parse_duration(value)
            except UsageError:
                self.fail(str(e), param, ctx)


class JsonValue(click.ParamType[Any]):
    """JSON text; ``@FILE`` reads it from a file and ``-`` from standard input (as curl does),
    for payloads too big for a command line."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        def refuse(constant: str) -> NoReturn:
            raise ValueError(f"{constant} is not valid JSON")

        text, source = self._read(value, param, ctx)
        try:
            return json.loads(text, parse_constant=refuse)
        except ValueError as e:
            self.fail(f"{source} is not valid JSON: {e}", param, ctx)

    def _read(
        self, value: str, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, str]:
        """The JSON text and how to name where it came from."""
        data: bytes
        if value == "-":
            data, source = sys.stdin.buffer.read(), "standard input"
        elif value.startswith("@"):
            path = value[1:]
            source = f"the data file {path!r}"
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except OSError as e:
                self.fail(f"cannot read {source}: {e.strerror or e}", param, ctx)
        else:
            return value, repr(value)
        try:
            return data.decode("utf-8"), source
        except UnicodeDecodeError as e:
            self.fail(f"{source} is not UTF-8 text: {e}", param, ctx)


def format_job(job: Job, info: JobInfo | None = None) -> str:
    lines = [
        f"job {job.job_id}",
        f"  handler:    {job.handler}",
        *([f"  state:      {describe_state(info)}"] if info else []),
        f"  start:      {job.start.isoformat()}",
        f"  expiry:     {_iso(job.expiry) or '-'}",
        f"  attempts:   {job.attempts} of {job.max_attempts}",
        f"  created:    {_iso(job.created_at) or '-'}",
        f"  last error: {job.last_error or '-'}",
        f"  data:       {json.dumps(job.data, ensure_ascii=False)}",
    ]
    return "\n".join(lines)


def describe_state(info: JobInfo) -> str:
    """Where the job stands, in words, with its claim."""
    by, until, since = info.claimed_by, _iso(info.claimed_until), _iso(info.started_at)
    return {
        JobState.SCHEDULED: "scheduled: its start is still to come",
        JobState.DUE: "due: the next pass takes it",
        JobState.CLAIMED: f"claimed by {by} until {until}, waiting to start",
        JobState.RUNNING: f"running on {by} since {since}, claimed until {until}",
        JobState.LOST: f"lost: its runner {by} stopped while running it (claim ran out at "
        f"{until}); the next pass takes it over",
        JobState.DEFERRED: "deferred: no handler was registered for it when a pass took it "
        "(see last error)",
    }[info.state]


def list_line(info: JobInfo) -> str:
    job = info.job
    parts = [
        job.start.isoformat(),
        job.job_id,
        job.handler,
        info.state.value,
        f"attempts {job.attempts}/{job.max_attempts}",
    ]
    if job.expiry:
        parts.append(f"expires {job.expiry.isoformat()}")
    if info.state is JobState.RUNNING:
        parts.append(f"on {info.claimed_by} since {_iso(info.started_at)}")
    if info.state in (JobState.RUNNING, JobState.CLAIMED, JobState.LOST):
        parts.append(f"claimed by {info.claimed_by} until {_iso(info.claimed_until)}")
    if job.last_error:
        parts.append(f"last error: {_one_line(job.last_error)}")
    return "  ".join(parts)


def _one_line(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def job_json(info: JobInfo) -> dict[str, Any]:
    job = info.job
    return {
        "job_id": job.job_id,
        "handler": job.handler,
        "data": job.data,
        "start": job.start.isoformat(),
        "expiry": _iso(job.expiry),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": _iso(job.created_at),
        "last_error": job.last_error,
        "state": info.state.value,
        "claimed_by": info.claimed_by,
        "claimed_until": _iso(info.claimed_until),
        "started_at": _iso(info.started_at),
    }


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="JOBSCHED_DATABASE_URL",
    metavar="URL",
    help="Database URL [env JOBSCHED_DATABASE_URL; default sqlite:///jobsched.db].",
)
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="MODULE",
    help="Module to import so its handlers register; repeatable "
    "[env JOBSCHED_APP, comma-separated].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every job's outcome to stderr.")
@click.version_option(package_name="jobsched")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, apps: tuple[str, ...], verbose: bool) -> None:
    """Schedule jobs and run them when they are due."""
    if not apps and os.environ.get("JOBSCHED_APP"):
        apps = (os.environ["JOBSCHED_APP"],)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO if verbose else logging.WARNING,
        format="jobsched: %(levelname)s: %(message)s",
    )
    ctx.obj = Context(database_url or None, _split_apps(apps))


@cli.command()
@click.pass_obj
@exit_codes
def migrate(obj: Context) -> None:
    """Create or upgrade the jobs table (safe to run again)."""
    scheduler = obj.scheduler(import_apps=False)
    result = scheduler.migrate()
    where = scheduler.describe()
    message = {
        MigrateResult.CREATED: f"created the schema (revision {SCHEMA_REVISION}) in {where}",
        MigrateResult.UPGRADED: f"upgraded the schema to revision {SCHEMA_REVISION} in {where}",
        MigrateResult.CURRENT: f"schema is current (revision {SCHEMA_REVISION}) in {where}; "
        "nothing to do",
    }[result]
    click.echo(f"jobsched: {message}")


@cli.command("run-due")
@click.option("--limit", type=Count(), help="Take at most N jobs in this pass.")
@click.option("--quiet", is_flag=True, help="Print nothing unless there was trouble (for cron).")
@click.option(
    "--concurrency",
    type=Count(MAX_CONCURRENCY),
    default=1,
    show_default=True,
    help="Run up to N handlers at once, in threads.",
)
@click.option(
    "--max-seconds",
    type=Seconds(minimum=0, maximum=MAX_SECONDS, min_open=True),
    help="Stop taking new jobs after S seconds.",
)
@click.option(
    "--grace",
    type=Seconds(minimum=0, maximum=MAX_SECONDS),
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, seconds running handlers get to finish before the process exits 1.",
)
@click.option(
    "--handler",
    "handlers",
    multiple=True,
    metavar="NAME",
    help="Take only the jobs of this handler; repeatable. Without it, jobs whose handler no "
    "imported module registers are deferred an hour.",
)
@click.pass_obj
@exit_codes
def run_due(
    obj: Context,
    limit: int | None,
    quiet: bool,
    concurrency: int,
    max_seconds: float | None,
    grace: float,
    handlers: tuple[str, ...],
) -> None:
    """Run the jobs whose time has come (one pass; cron runs this every minute)."""
    scheduler = obj.scheduler()
    stop = threading.Event()
    with graceful_shutdown(stop, grace):
        report = scheduler.run_due_jobs(
            limit=limit,
            concurrency=concurrency,
            max_seconds=max_seconds,
            stop=stop,
            keep_results=False,
            handlers=handlers or None,
        )
    if not quiet or report.troubled:
        click.echo(f"jobsched run-due: {report.summary()}")


class graceful_shutdown:
    """First SIGTERM/SIGINT: stop taking jobs and let running ones finish within ``grace``
    seconds. A second signal, or the grace period running out, ends the process with exit 1."""

    def __init__(self, stop: threading.Event, grace: float) -> None:
        self.stop = stop
        self.grace = grace
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> graceful_shutdown:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            _hard_exit(f"second {name}: exiting now; running jobs' claims will run out")
        self.stop.set()
        log.warning("%s: taking no new jobs; running handlers get %gs to finish", name, self.grace)
        timer = threading.Timer(
            self.grace, _hard_exit, [f"handlers still running after {self.grace:g}s grace"]
        )
        timer.daemon = True
        timer.start()


def _hard_exit(message: str) -> NoReturn:
    click.echo(f"jobsched: error: {message}", err=True)
    sys.stderr.flush()
    os._exit(ENVIRONMENT_FAILED)


MODE_NAMES = {mode.value: mode for mode in Mode}


@cli.command()
@click.argument("job_id")
@click.argument("handler")
@click.option("--at", "at", type=When(), help="Start time, ISO 8601 with a zone.")
@click.option("--in", "in_", type=Duration(), help="Start after a duration: 90s, 15m, 2h, 3d, 1w.")
@click.option(
    "--data",
    type=JsonValue(),
    default="null",
    show_default=True,
    help="JSON payload; @FILE reads it from a file, - from standard input.",
)
@click.option(
    "--mode",
    type=click.Choice(sorted(MODE_NAMES)),
    default="new",
    show_default=True,
    help="What to do if the id exists.",
)
@click.option(
    "--expiry",
    type=When(),
    help="Do not start after this time (ISO 8601, or a duration after the start).",
)
@click.option("--max-attempts", type=Count(), help="Attempts allowed (default 3).")
@click.pass_obj
@exit_codes
def schedule(
    obj: Context,
    job_id: str,
    handler: str,
    at: datetime | timedelta | None,
    in_: timedelta | None,
    data: Any,
    mode: str,
    expiry: datetime | timedelta | None,
    max_attempts: int | None,
) -> None:
    """Schedule HANDLER to run as job JOB_ID (--at WHEN or --in DURATION)."""
    if (at is None) == (in_ is None):
        raise UsageError("give exactly one of --at WHEN and --in DURATION")
    start = at if at is not None else in_
    assert start is not None
    try:
        job = obj.scheduler(import_apps=False).schedule_job(
            job_id,
            start,
            handler,
            data,
            mode=MODE_NAMES[mode],
            expiry=expiry,
            max_attempts=max_attempts,
        )
    except JobExistsError as e:
        # The API's message names Mode members; here the user writes --mode values.
        raise UsageError(
            f"job {e.job_id!r} exists already; nothing was written (use --mode "
            f"{Mode.IGNORE_IF_EXISTS.value} to keep it or --mode {Mode.RESCHEDULE.value} to "
            "replace it)"
        ) from None
    click.echo(format_job(job))


@cli.command()
@click.argument("job_id")
@click.option("--at", "at", type=When(), help="New start time, ISO 8601 with a zone.")
@click.option("--in", "in_", type=Duration(), help="Start after a duration from now: 0s, 15m, 2h.")
@click.pass_obj
@exit_codes
def reschedule(
    obj: Context, job_id: str, at: datetime | timedelta | None, in_: timedelta | None
) -> None:
    """Move job JOB_ID's start (--at WHEN or --in DURATION), keeping everything else.

    Attempts, payload, handler and the expiry (a time) stay as they are; `--in 0s` runs it at
    the next pass.
    """
    if (at is None) == (in_ is None):
        raise UsageError("give exactly one of --at WHEN and --in DURATION")
    scheduler = obj.scheduler(import_apps=False)
    when = at if at is not None else in_
    start = scheduler.now() + when if isinstance(when, timedelta) else when
    assert isinstance(start, datetime)

    seen: list[Job] = []

    def move(job: Job | None) -> tuple[Job | None, Job | None]:
        moved = None if job is None else replace(job, start=start)
        seen[:] = [] if job is None else [job]
        return moved, moved

    try:
        moved = scheduler.update_job(job_id, move)
    except InvalidJobError as e:
        if e.field != "expiry" or not seen or seen[0].expiry is None:
            raise
        raise InvalidJobError(
            "start",
            f"{start.isoformat()} is after the expiry {seen[0].expiry.isoformat()} of job "
            f"{job_id!r}; nothing was changed (to give it a new expiry too, replace it: "
            "jobsched schedule ... --mode reschedule)",
        ) from None
    if moved is None:
        raise MissingJobError(f"no job {job_id!r}")
    info = scheduler.get_job_info(job_id)
    click.echo(format_job(info.job, info) if info else format_job(moved))


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_obj
@exit_codes
def show(obj: Context, job_id: str, as_json: bool) -> None:
    """Show one job, with where it stands (scheduled, due, claimed, running, lost, deferred)."""
    info = obj.scheduler(import_apps=False).get_job_info(job_id)
    if info is None:
        raise MissingJobError(f"no job {job_id!r}")
    if as_json:
        click.echo(json.dumps(job_json(info), ensure_ascii=False))
    else:
        click.echo(format_job(info.job, info))


@cli.command("list")
@click.option("--due", is_flag=True, help="Only jobs whose start time has come.")
@click.option("--handler", metavar="NAME", help="Only jobs for this handler.")
@click.option("--limit", type=Count(), help="At most N jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
@exit_codes
def list_(obj: Context, due: bool, handler: str | None, limit: int | None, as_json: bool) -> None:
    """List jobs by start time, with where each stands."""
    infos = obj.scheduler(import_apps=False).list_job_infos(due=due, handler=handler, limit=limit)
    if as_json:
        for chunk in _json_array(infos):
            click.echo(chunk, nl=False)
        click.echo()
        return
    count = 0
    for info in infos:
        count += 1
        click.echo(list_line(info))
    click.echo(f"{count} job(s)", err=True)


def _json_array(infos: Iterator[JobInfo]) -> Iterator[str]:
    yield "["
    for i, info in enumerate(infos):
        yield ("," if i else "") + json.dumps(job_json(info), ensure_ascii=False)
    yield "]"


@cli.command()
@click.argument("job_id")
@click.pass_obj
@exit_codes
def remove(obj: Context, job_id: str) -> None:
    """Remove a job."""
    if not obj.scheduler(import_apps=False).remove_job(job_id):
        raise MissingJobError(f"no job {job_id!r}")
    click.echo(f"removed job {job_id}")


def main(args: list[str] | None = None) -> None:
    """Entry point: click's own usage errors also become one line and exit code 2."""
    try:
        code = cli.main(args=args, prog_name="jobsched", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", ENVIRONMENT_FAILED)
    except click.ClickException as e:
        fail(e.format_message(), USER_MISTAKE if e.exit_code == 2 else e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
