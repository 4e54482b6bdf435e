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
from jobsched.history import RECORDED_OUTCOMES, HandlerStats, JobRun, JobStatus, Stats, Status
from jobsched.model import Job, JobInfo, JobState, MigrateResult, Mode, Outcome, Progress
from jobsched.presence import STALE_AFTER, RunnerInfo, RunningJob
from jobsched.runner import runner_name
from jobsched.scheduler import Scheduler
from jobsched.schema import SCHEMA_REVISION
from jobsched.timeparse import parse_duration, parse_when
from jobsched.worker import DEFAULT_POLL, DEFAULT_PREFETCH

log = logging.getLogger("jobsched")
F = TypeVar("F", bound=Callable[..., Any])

ENVIRONMENT_FAILED = 1
USER_MISTAKE = 2


@dataclass
class Context:
    database_url: str | None
    apps: list[str] = field(default_factory=list)
    verbose: bool = False
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
#: The most claimed jobs a worker holds unstarted.
MAX_PREFETCH = 1000
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
    ctx.obj = Context(database_url or None, _split_apps(apps), verbose)


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


def runner_options(fn: F) -> F:
    """The options ``run-due`` and ``worker`` share."""
    options = [
        click.option(
            "--concurrency",
            type=Count(MAX_CONCURRENCY),
            default=1,
            show_default=True,
            help="Run up to N handlers at once, in threads.",
        ),
        click.option(
            "--grace",
            type=Seconds(minimum=0, maximum=MAX_SECONDS),
            default=30.0,
            show_default=True,
            help="On SIGTERM/SIGINT, seconds running handlers get to finish before the process "
            "exits 1.",
        ),
        click.option(
            "--handler",
            "handlers",
            multiple=True,
            metavar="NAME",
            help="Take only the jobs of this handler; repeatable. Without it, jobs whose handler "
            "no imported module registers are deferred an hour.",
        ),
        click.option(
            "--isolate",
            is_flag=True,
            help="Run every handler's attempts in child processes, killed past their timeout "
            "(as isolate=True on each handler does).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["plain", "json"]),
            default="plain",
            show_default=True,
            help="Log lines on stderr as plain text or one JSON object each (the summary line "
            "on stdout is unchanged).",
        ),
        click.option(
            "--quiet", is_flag=True, help="Print nothing unless there was trouble (for cron)."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _log_format(obj: Context, log_format: str) -> None:
    if log_format == "json":
        from jobsched.logformat import configure_logging

        configure_logging(obj.verbose, True)


@cli.command("run-due")
@click.option("--limit", type=Count(), help="Take at most N jobs in this pass.")
@click.option(
    "--max-seconds",
    type=Seconds(minimum=0, maximum=MAX_SECONDS, min_open=True),
    help="Stop taking new jobs after S seconds.",
)
@click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="After the pass, write Prometheus metrics to PATH (node_exporter textfile format, "
    "atomically); needs pip install 'jobsched[metrics]'.",
)
@runner_options
@click.pass_obj
@exit_codes
def run_due(
    obj: Context,
    limit: int | None,
    max_seconds: float | None,
    metrics_file: str | None,
    concurrency: int,
    grace: float,
    handlers: tuple[str, ...],
    isolate: bool,
    log_format: str,
    quiet: bool,
) -> None:
    """Run the jobs whose time has come (one pass; cron runs this every minute)."""
    _log_format(obj, log_format)
    metrics = None
    if metrics_file is not None:
        from jobsched.metrics import PassMetrics

        # Before the pass: a missing extra is a user mistake (exit 2) before any job runs.
        metrics = PassMetrics(metrics_file)
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
            on_result=None if metrics is None else metrics.observe,
            isolate=isolate,
        )
    if not quiet or report.troubled:
        click.echo(f"jobsched run-due: {report.summary()}")
    if metrics is not None:
        metrics.write(report, scheduler.backlog(), scheduler.now())


@cli.command()
@click.option(
    "--poll",
    type=Seconds(minimum=0, maximum=MAX_SECONDS, min_open=True),
    default=DEFAULT_POLL,
    show_default=True,
    help="When nothing is due, look again within S seconds (sooner if a job is due sooner).",
)
@click.option(
    "--prefetch",
    type=Count(MAX_PREFETCH),
    default=DEFAULT_PREFETCH,
    show_default=True,
    help="Hold at most N claimed jobs that have not started.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics over HTTP on PORT; needs pip install 'jobsched[metrics]'.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address the metrics server binds to (with --metrics-port).",
)
@runner_options
@click.pass_obj
@exit_codes
def worker(
    obj: Context,
    poll: float,
    prefetch: int,
    metrics_port: int | None,
    metrics_host: str,
    concurrency: int,
    grace: float,
    handlers: tuple[str, ...],
    isolate: bool,
    log_format: str,
    quiet: bool,
) -> None:
    """Run due jobs as they come due, until stopped (SIGTERM/SIGINT: finish and exit 0)."""
    _log_format(obj, log_format)
    scheduler = obj.scheduler()
    stop = threading.Event()
    served = None
    if metrics_port is not None:
        from jobsched.metrics import start_worker_metrics

        # Before any job is taken: a port in use is a user mistake (exit 2).
        served = start_worker_metrics(
            metrics_host,
            metrics_port,
            backlog=scheduler.backlog,
            now=scheduler.now,
            retries=lambda: scheduler.store.retries,
        )
    log.info(
        "worker %s started: concurrency %d, poll %gs, prefetch %d, %s%s",
        runner_name(),
        concurrency,
        poll,
        prefetch,
        "handlers " + ", ".join(handlers) if handlers else "every handler",
        ", isolated" if isolate else "",
    )
    try:
        with graceful_shutdown(stop, grace):
            report = scheduler.run_worker(
                stop=stop,
                concurrency=concurrency,
                poll=poll,
                prefetch=prefetch,
                handlers=handlers or None,
                isolate=isolate,
                on_result=None if served is None else served.observe,
                on_round=None if served is None else served.round,
            )
    finally:
        if served is not None:
            served.close()
    if not quiet or report.troubled:
        click.echo(f"jobsched worker: {report.summary()}")


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
    from jobsched.isolation import kill_children

    kill_children()  # isolated handlers end with their runner
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
    """Show one job, with where it stands (scheduled, due, claimed, running, lost, deferred) and
    its last run; for a finished job whose row is gone, its last run from the history."""
    status = obj.scheduler(import_apps=False).status(job_id)
    if status.status is Status.UNKNOWN:
        raise MissingJobError(f"no job {job_id!r}: neither the jobs nor the history know it")
    if as_json:
        click.echo(json.dumps(status_json(status), ensure_ascii=False))
    else:
        click.echo(format_status(status))


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


# -- history ------------------------------------------------------------------------------------


def _field(label: str, value: str) -> str:
    """A line of ``show``'s output, its value aligned with ``format_job``'s."""
    return f"  {label + ':':<11} {value}"


def format_status(status: JobStatus) -> str:
    """``show``: the job as ``format_job`` prints it, its status and its last run; for a job
    whose row is gone, its last run in full."""
    run = status.last_run
    if status.info is not None:
        lines = [format_job(status.info.job, status.info), _field("status", status_text(status))]
        if run is not None:
            lines.append(_field("last run", last_run_text(run)))
        return "\n".join(lines)
    assert run is not None
    return format_run(run, header=f"job {status.job_id}")


def status_text(status: JobStatus) -> str:
    """``running on host:1 since T, progress 3/10 (30%) copying``, ``due``, ..."""
    text = status.status.value
    if status.status is Status.RUNNING:
        text += f" on {status.runner or '-'} since {_iso(status.started_at) or '-'}"
        if status.progress is not None:
            text += f", progress {status.progress.describe()}"
    return text


def last_run_text(run: JobRun) -> str:
    """``failed at T (attempt 3 of 3 on host:1): error``."""
    where = f" on {run.runner}" if run.runner else ""
    text = f"{run.outcome.value} at {run.finished_at.isoformat()} "
    text += f"(attempt {run.attempt} of {run.max_attempts}{where})"
    if run.superseded:
        text += ", superseded"
    return text + (f": {_one_line(run.error)}" if run.error else "")


def format_run(run: JobRun, header: str) -> str:
    """A history row in full (``show`` of a job whose row is gone)."""
    outcome = run.outcome.value
    if run.superseded:
        outcome += " (superseded: a newer state of the job won; not written to the job)"
    lines = [
        header,
        _field("status", "finished: its row is gone; its last run in the history"),
        _field("handler", run.handler),
        _field("outcome", outcome),
        _field("attempt", f"{run.attempt} of {run.max_attempts}"),
        _field("runner", run.runner or "-"),
        _field("scheduled", run.scheduled_start.isoformat()),
        _field("started", _iso(run.started_at) or "- (not run)"),
        _field("finished", run.finished_at.isoformat()),
        _field("duration", _duration(run.duration)),
        _field("error", (run.error or "-").replace("\n", "\n" + " " * 14)),
        _field("data", _run_data(run)),
    ]
    if run.outcome is Outcome.FAILED:
        retried = _iso(run.retried_at)
        lines.append(
            _field("retried", f"at {retried}" if retried else f"no (jobsched retry {run.job_id})")
        )
    return "\n".join(lines)


def _run_data(run: JobRun, limit: int | None = None) -> str:
    if run.payload is None:
        return "- (not recorded)"
    text = json.dumps(run.data, ensure_ascii=False)
    return text if limit is None else _one_line(text, limit)


def _duration(value: timedelta | None) -> str:
    """``0s``, ``0.031ms``, ``1.25ms``, ``12.5ms``, ``250ms``, ``2.500s``, ``42.5s``, ``3m12s``,
    ``2h5m``, ``14d``; ``-`` for none."""
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if not seconds:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        digits = 3 if ms < 1 else 2 if ms < 10 else 1 if ms < 100 else 0
        return f"{ms:.{digits}f}ms"
    if seconds < 10:
        return f"{seconds:.3f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        parts.append((count, unit))
    first = next(i for i, (count, _) in enumerate(parts) if count)
    return "".join(f"{count}{unit}" for count, unit in parts[first : first + 2] if count)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def progress_json(progress: Progress | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    return {"done": progress.done, "total": progress.total, "note": progress.note}


def run_json(run: JobRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "job_id": run.job_id,
        "handler": run.handler,
        "outcome": run.outcome.value,
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "runner": run.runner,
        "scheduled_start": run.scheduled_start.isoformat(),
        "started_at": _iso(run.started_at),
        "finished_at": run.finished_at.isoformat(),
        "duration_seconds": _seconds(run.duration),
        "error": run.error,
        "data": run.data,
        "data_recorded": run.payload is not None,
        "superseded": run.superseded,
        "retried_at": _iso(run.retried_at),
    }


def status_json(status: JobStatus) -> dict[str, Any]:
    """``show --json``: the job's fields as ``list --json`` has them (while it exists), its
    status, progress and last run; for a job whose row is gone, its id, status and last run."""
    head = job_json(status.info) if status.info is not None else {"job_id": status.job_id}
    return {
        **head,
        "status": status.status.value,
        "progress": progress_json(status.progress),
        "last_run": None if status.last_run is None else run_json(status.last_run),
    }


def _table(rows: list[list[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """Rows as lines, every column but the last padded to its widest cell (``right``: the
    columns aligned right)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i])
            if i in right
            else cell.ljust(widths[i])
            if i < len(row) - 1
            else cell
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def history_row(run: JobRun) -> list[str]:
    notes = []
    if run.superseded:
        notes.append("superseded")
    if run.error:
        notes.append(f"error: {_one_line(run.error)}")
    return [
        run.finished_at.isoformat(),
        run.job_id,
        run.handler,
        run.outcome.value,
        f"attempt {run.attempt}/{run.max_attempts}",
        run.runner or "-",
        _duration(run.duration),
        "  ".join(notes),
    ]


RECORDED_OUTCOME_NAMES = [outcome.value for outcome in RECORDED_OUTCOMES]


@cli.command(short_help="List the runs of jobs, newest first.")
@click.argument("job_id", required=False)
@click.option("--handler", metavar="NAME", help="Only runs of this handler's jobs.")
@click.option(
    "--outcome", type=click.Choice(RECORDED_OUTCOME_NAMES), help="Only runs with this outcome."
)
@click.option(
    "--since",
    type=When(),
    help="Only runs that finished since WHEN: ISO 8601 with a zone, or a duration ago (2h, 1d).",
)
@click.option("--limit", type=Count(), default=100, show_default=True, help="At most N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
@exit_codes
def history(
    obj: Context,
    job_id: str | None,
    handler: str | None,
    outcome: str | None,
    since: datetime | timedelta | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the runs of jobs (of JOB_ID if given), newest first: every attempt that ended, and
    every job a pass expired or deferred without running it."""
    runs = obj.scheduler(import_apps=False).history(
        job_id, handler=handler, outcome=outcome, since=since, limit=limit
    )
    if as_json:
        click.echo(json.dumps([run_json(run) for run in runs], ensure_ascii=False))
        return
    for line in _table([history_row(run) for run in runs], right=frozenset({6})):
        click.echo(line)
    click.echo(f"{len(runs)} run(s)", err=True)


@cli.command(short_help="List the failed jobs not yet retried.")
@click.option("--handler", metavar="NAME", help="Only this handler's jobs.")
@click.option(
    "--since",
    type=When(),
    help="Only jobs that failed since WHEN: ISO 8601 with a zone, or a duration ago (2h, 1d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
@exit_codes
def failed(
    obj: Context, handler: str | None, since: datetime | timedelta | None, as_json: bool
) -> None:
    """List the failed jobs not yet retried, newest first, with their error and data
    (jobsched retry JOB_ID, or retry --failed, schedules them again)."""
    runs = obj.scheduler(import_apps=False).failed_jobs(handler=handler, since=since)
    if as_json:
        click.echo(json.dumps([run_json(run) for run in runs], ensure_ascii=False))
        return
    rows = [
        [
            run.finished_at.isoformat(),
            run.job_id,
            run.handler,
            f"attempt {run.attempt}/{run.max_attempts}",
            run.runner or "-",
            f"error: {_one_line(run.error or '-')}",
            f"data: {_run_data(run, limit=120)}",
        ]
        for run in runs
    ]
    for line in _table(rows):
        click.echo(line)
    click.echo(f"{len(runs)} failed job(s)", err=True)


@cli.command(short_help="Schedule failed jobs again.")
@click.argument("job_id", required=False)
@click.option(
    "--failed", "all_failed", is_flag=True, help="Retry every failed job not yet retried."
)
@click.option("--handler", metavar="NAME", help="With --failed: only this handler's jobs.")
@click.option(
    "--since",
    type=When(),
    help="With --failed: only jobs that failed since WHEN (ISO 8601, or a duration ago).",
)
@click.option("--at", "at", type=When(), help="Start time, ISO 8601 with a zone (default now).")
@click.option("--in", "in_", type=Duration(), help="Start after a duration: 90s, 15m, 2h.")
@click.option(
    "--expiry",
    type=When(),
    help="Do not start after this time (ISO 8601, or a duration after the start); default none.",
)
@click.pass_obj
@exit_codes
def retry(
    obj: Context,
    job_id: str | None,
    all_failed: bool,
    handler: str | None,
    since: datetime | timedelta | None,
    at: datetime | timedelta | None,
    in_: timedelta | None,
    expiry: datetime | timedelta | None,
) -> None:
    """Schedule failed job JOB_ID again (or with --failed, every failed job not yet retried)
    from its history: its data, handler and max attempts, attempts reset, due now (or --at,
    --in), no expiry unless --expiry. Give exactly one of JOB_ID and --failed."""
    if (job_id is None) == (not all_failed):
        raise UsageError("give exactly one of JOB_ID and --failed")
    if job_id is not None and (handler is not None or since is not None):
        raise UsageError("--handler and --since go with --failed, not with a JOB_ID")
    if at is not None and in_ is not None:
        raise UsageError("give at most one of --at WHEN and --in DURATION")
    start = at if at is not None else in_
    scheduler = obj.scheduler(import_apps=False)
    if job_id is not None:
        try:
            job = scheduler.retry(job_id, start=start, expiry=expiry)
        except JobExistsError:
            raise UsageError(
                f"job {job_id!r} exists again; nothing was written (see jobsched show {job_id})"
            ) from None
        click.echo(format_job(job))
        return
    report = scheduler.retry_failed(handler=handler, since=since, start=start, expiry=expiry)
    rows = [
        ["scheduled", j.job_id, j.handler, f"start {j.start.isoformat()}"] for j in report.scheduled
    ]
    rows += [["skipped", skipped_id, reason, ""] for skipped_id, reason in report.skipped]
    for line in _table(rows):
        click.echo(line)
    click.echo(f"retried {len(report.scheduled)} failed job(s), skipped {len(report.skipped)}")


@cli.command(short_help="Delete old history rows.")
@click.option(
    "--older-than",
    type=Duration(),
    help="Delete every history row older than DURATION, failed runs included (default: the "
    "retention, 14 days; failed runs 30 days).",
)
@click.pass_obj
@exit_codes
def prune(obj: Context, older_than: timedelta | None) -> None:
    """Delete old history rows (cron can run this daily; passes also prune now and then)."""
    scheduler = obj.scheduler(import_apps=False)
    count = scheduler.prune_history(older_than)
    if older_than is not None:
        what = f"older than {_duration(older_than)}"
    else:
        what = (
            f"older than the retention ({_duration(scheduler.retention)}; failed runs "
            f"{_duration(scheduler.failed_retention)})"
        )
    click.echo(f"jobsched prune: deleted {count} history row(s) {what}")


STATS_HEADER = [
    "handler", "scheduled", "due", "running", "deferred", "lateness", "p50", "p95",
    "last hour", "last day",
]  # fmt: skip


def _outcome_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{number} {name}" for name, number in counts.items()) or "-"


def stats_row(h: HandlerStats) -> list[str]:
    return [
        h.handler,
        str(h.scheduled),
        str(h.due),
        str(h.running),
        str(h.deferred),
        _duration(h.lateness),
        _duration(h.p50),
        _duration(h.p95),
        _outcome_counts(h.last_hour),
        _outcome_counts(h.last_day),
    ]


def stats_json(stats: Stats) -> dict[str, Any]:
    return {
        "at": stats.at.isoformat(),
        "due": stats.due,
        "lateness_seconds": _seconds(stats.lateness),
        "handlers": [
            {
                "handler": h.handler,
                "scheduled": h.scheduled,
                "due": h.due,
                "running": h.running,
                "deferred": h.deferred,
                "lateness_seconds": _seconds(h.lateness),
                "last_hour": h.last_hour,
                "last_day": h.last_day,
                "p50_seconds": _seconds(h.p50),
                "p95_seconds": _seconds(h.p95),
            }
            for h in stats.handlers
        ],
    }


@cli.command(short_help="Jobs and runs per handler.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_obj
@exit_codes
def stats(obj: Context, as_json: bool) -> None:
    """Per handler: jobs scheduled, due, running, deferred; how late its oldest due job is;
    p50/p95 run time in the last hour; runs in the last hour and day by outcome."""
    result = obj.scheduler(import_apps=False).stats()
    if as_json:
        click.echo(json.dumps(stats_json(result), ensure_ascii=False))
        return
    click.echo(f"jobsched stats at {result.at.isoformat()}")
    if result.handlers:
        rows = [STATS_HEADER, *(stats_row(h) for h in result.handlers)]
        for line in _table(rows, right=frozenset(range(1, 8))):
            click.echo(line)
    else:
        click.echo("no jobs, and no runs in the last day")
    if result.lateness is None:
        click.echo("no job is due")
    else:
        click.echo(f"oldest due job: {_duration(result.lateness)} late ({result.due} due)")


def _age(value: timedelta) -> str:
    """``3s ago``, ``5m2s ago`` (whole seconds)."""
    seconds = int(value.total_seconds())
    return f"{seconds}s ago" if seconds < 60 else f"{_duration(timedelta(seconds=seconds))} ago"


def runner_row(info: RunnerInfo) -> list[str]:
    heartbeat = f"heartbeat {_age(info.heartbeat_age)}"
    return [
        info.name,
        info.kind,
        f"version {info.version}",
        f"started {info.started_at.isoformat()}",
        heartbeat + (" (stale: presumed dead)" if info.stale else ""),
        f"concurrency {info.concurrency}",
        "-" if info.stale else f"running {len(info.jobs)}",
    ]


def running_job_row(job: RunningJob) -> list[str]:
    return [
        "  job " + job.job_id,
        job.handler,
        f"scheduled {job.scheduled_start.isoformat()}",
        f"started {job.started_at.isoformat()}",
        f"progress {job.progress.describe()}" if job.progress is not None else "progress -",
    ]


def runners_json(found: list[RunnerInfo], at: datetime) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "stale_after_seconds": STALE_AFTER.total_seconds(),
        "runners": [
            {
                "name": info.name,
                "host": info.host,
                "pid": info.pid,
                "kind": info.kind,
                "version": info.version,
                "started_at": info.started_at.isoformat(),
                "heartbeat_at": info.heartbeat_at.isoformat(),
                "heartbeat_age_seconds": info.heartbeat_age.total_seconds(),
                "concurrency": info.concurrency,
                "stale": info.stale,
                "jobs": [
                    {
                        "job_id": job.job_id,
                        "handler": job.handler,
                        "scheduled_start": job.scheduled_start.isoformat(),
                        "started_at": job.started_at.isoformat(),
                        "progress": progress_json(job.progress),
                    }
                    for job in info.jobs
                ],
            }
            for info in found
        ],
    }


@cli.command("runners", short_help="List the live workers and passes, and the jobs they run.")
@click.option(
    "--all",
    "include_stale",
    is_flag=True,
    help="Also the runners whose heartbeat stopped (presumed dead), kept for a day.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_obj
@exit_codes
def runners_(obj: Context, include_stale: bool, as_json: bool) -> None:
    """List the live runners (workers and run-due passes on every host sharing the database):
    kind, version, start, last heartbeat, concurrency, and under each the jobs it is running
    now (id, handler, scheduled start, started, progress). A runner whose heartbeat is older
    than a minute is presumed dead (stale): --all lists those too."""
    scheduler = obj.scheduler(import_apps=False)
    found = scheduler.runners(include_stale=include_stale)
    if as_json:
        at = found[0].at if found else scheduler.now()
        click.echo(json.dumps(runners_json(found, at), ensure_ascii=False))
        return
    if not found:
        click.echo("no runners" if include_stale else "no live runners")
        return
    widths = _table([runner_row(info) for info in found])
    jobs = _table([running_job_row(job) for info in found for job in info.jobs])
    lines = iter(jobs)
    for info, line in zip(found, widths, strict=True):
        click.echo(line)
        for _ in info.jobs:
            click.echo(next(lines))
    live = sum(not info.stale for info in found)
    stale = f", {len(found) - live} stale" if include_stale else ""
    click.echo(f"{live} live runner(s){stale}", err=True)


def main(args: list[str] | None = None) -> None:
    """Entry point: click's own usage errors also become one line and exit code 2."""
    try:
        code = cli.main(args=args, prog_name="jobsched", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", ENVIRONMENT_FAILED)
    except click.ClickException as e:
        fail(e.format_message(), USER_MISTAKE if e.exit_code == 2 else e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
