"""Prometheus metrics of passes: what ``run-due --metrics-file PATH`` writes.

Needs the optional ``prometheus_client`` (``pip install 'jobsched[metrics]'``); jobsched imports
fine without it, and only ``PassMetrics`` and ``registry`` ask for it.

The metrics (every time in seconds, every counter counted since the file was first written):

``jobsched_jobs_finished_total{handler,outcome}`` (counter)
    Job results of passes, one per ``JobResult``: ``outcome`` is an ``Outcome`` value
    (succeeded, kept, retried, failed, expired, deferred, lost, released). Every outcome of a
    handler seen once is written, at 0 until it happens, so ``increase()`` sees its first one.
``jobsched_job_run_seconds{handler}`` (histogram)
    How long handlers ran (results whose handler did not run, such as expired, are not in it).
    Buckets from 5 ms to one hour.
``jobsched_passes_total`` (counter)
    Passes that wrote the file.
``jobsched_bookkeeping_retries_total`` (counter)
    Bookkeeping transactions that passes had to try again (the database was busy or away).
``jobsched_due_jobs`` (gauge)
    Due jobs that no runner held at the end of the last pass.
``jobsched_oldest_due_lateness_seconds`` (gauge)
    How late the oldest of them was then (its start to the end of the pass; 0 when none).
``jobsched_last_pass_timestamp_seconds`` (gauge)
    When the last pass ended (Unix time): alert when it gets old, as cron may have stopped.
``jobsched_last_pass_duration_seconds`` (gauge)
    How long the last pass took.

How counters carry across cron passes: each ``run-due`` is a new process, which counts only its
own pass. For the counters in the file to be monotonic, as Prometheus requires, ``write`` reads
the file the previous pass left (with prometheus_client's own parser), adds this pass's counts to
its counters and histogram buckets, sums and counts, and replaces the file with the totals; the
gauges are this pass's. Passes that overlap on one host take turns: each holds an exclusive
``flock`` on ``PATH.lock`` (created beside the file and left there) from the read to the replace,
so neither loses the other's counts. The file is replaced atomically: written to a temporary file
in the same directory (``.NAME.<pid>.<random>.tmp``, which the node_exporter textfile collector
ignores as it reads ``*.prom`` only), flushed to disk, then renamed over ``PATH``; a reader sees
the old file or the new one, never a part.

A counter starts again from 0 when its file is deleted, or is found unreadable (not in the text
format, or with impossible values: a warning is logged and the pass goes on), or when a histogram
was written with other buckets (by another version); Prometheus's ``rate()`` and ``increase()``
take such resets in their stride. The file is for one host: ``flock`` is not to be trusted on a
network file system, so do not point passes of several hosts at one shared file.

The long-running worker (``jobsched worker --metrics-port PORT``) serves the same metrics over
HTTP instead: ``start_worker_metrics`` starts prometheus_client's HTTP server, in threads of its
own, on a registry of its own (never prometheus_client's global one). The worker passes
``WorkerMetrics.observe`` as its ``on_result`` and, if it likes, ``WorkerMetrics.round`` as the
hook it calls each time it looks for due jobs again. There the metrics differ from the file's in
three ways. The counters live in the process: they start from 0 when the worker starts (Prometheus
takes such resets in its stride; ``process_start_time_seconds`` says when it did).
``jobsched_due_jobs`` and ``jobsched_oldest_due_lateness_seconds`` are read from the database at
each scrape (a scrape that cannot read them serves everything else, without these two, and logs
why). ``jobsched_passes_total`` counts the worker's rounds (looks for due jobs) and
``jobsched_last_pass_timestamp_seconds`` says when the last one began, so an alert on its age
catches a worker that is stuck; ``jobsched_last_pass_duration_seconds`` is not served. The
``process_*`` metrics of prometheus_client's process collector (CPU, memory, open files, start
time) are served beside them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from jobsched.errors import JobschedError, UsageError
from jobsched.model import JobResult, Outcome, RunReport

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

log = logging.getLogger("jobsched")

#: Upper bounds (seconds) of the run time histogram's buckets, +Inf aside: 5 ms to one hour.
BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)

FINISHED = "jobsched_jobs_finished_total"
RUN_SECONDS = "jobsched_job_run_seconds"
PASSES = "jobsched_passes_total"
RETRIES = "jobsched_bookkeeping_retries_total"
DUE_JOBS = "jobsched_due_jobs"
LATENESS = "jobsched_oldest_due_lateness_seconds"
LAST_PASS_TIMESTAMP = "jobsched_last_pass_timestamp_seconds"
LAST_PASS_DURATION = "jobsched_last_pass_duration_seconds"

_INSTALL_HINT = "pip install 'jobsched[metrics]'"
_OUTCOMES = tuple(o.value for o in Outcome)


class Totals:
    """The values of the metrics: counters, histograms and the last pass's gauges.

    Thread-safe: handler threads ``observe`` while another thread may read a ``copy``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (handler, outcome value) -> job results.
        self.finished: dict[tuple[str, str], int] = {}
        #: handler -> runs in each bucket (not cumulative): one per ``BUCKETS`` bound, then +Inf.
        self.run_buckets: dict[str, list[int]] = {}
        #: handler -> seconds its runs took in all.
        self.run_sum: dict[str, float] = {}
        self.passes = 0
        self.retries = 0
        self.due_jobs: int | None = None
        self.oldest_lateness: float | None = None
        self.last_pass_timestamp: float | None = None
        self.last_pass_duration: float | None = None

    def observe(self, result: JobResult) -> None:
        """Count one job result (and its run time, if its handler ran)."""
        key = (result.handler, result.outcome.value)
        duration = result.duration
        with self._lock:
            self.finished[key] = self.finished.get(key, 0) + 1
            if duration is not None and math.isfinite(duration):
                duration = max(0.0, duration)
                buckets = self.run_buckets.setdefault(result.handler, [0] * (len(BUCKETS) + 1))
                buckets[_bucket_index(duration)] += 1
                self.run_sum[result.handler] = self.run_sum.get(result.handler, 0.0) + duration

    def end_pass(
        self, report: RunReport, backlog: tuple[int, datetime | None], now: datetime
    ) -> None:
        """Count the pass ``report`` tells of and set the gauges: ``backlog`` is (due jobs no
        runner holds, start of the oldest of them) at ``now``."""
        due, oldest = backlog
        lateness = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        with self._lock:
            self.passes += 1
            self.retries += int(getattr(report, "retries", 0))
            self.due_jobs = due
            self.oldest_lateness = lateness
            self.last_pass_timestamp = now.timestamp()
            self.last_pass_duration = report.duration

    def round(self, now: datetime) -> None:
        """Count a worker's round (a look for due jobs), which began at ``now``."""
        with self._lock:
            self.passes += 1
            self.last_pass_timestamp = now.timestamp()

    def add(self, other: Totals) -> None:
        """Add ``other``'s counters and histograms to these (the gauges stay as they are)."""
        snapshot = other.copy()
        with self._lock:
            for key, count in snapshot.finished.items():
                self.finished[key] = self.finished.get(key, 0) + count
            for handler, buckets in snapshot.run_buckets.items():
                mine = self.run_buckets.setdefault(handler, [0] * (len(BUCKETS) + 1))
                for i, count in enumerate(buckets):
                    mine[i] += count
            for handler, seconds in snapshot.run_sum.items():
                self.run_sum[handler] = self.run_sum.get(handler, 0.0) + seconds
            self.passes += snapshot.passes
            self.retries += snapshot.retries

    def set_gauges(self, other: Totals) -> None:
        """Take ``other``'s gauges."""
        snapshot = other.copy()
        with self._lock:
            self.due_jobs = snapshot.due_jobs
            self.oldest_lateness = snapshot.oldest_lateness
            self.last_pass_timestamp = snapshot.last_pass_timestamp
            self.last_pass_duration = snapshot.last_pass_duration

    def copy(self) -> Totals:
        """A consistent copy, read at one time."""
        new = Totals()
        with self._lock:
            new.finished = dict(self.finished)
            new.run_buckets = {h: list(b) for h, b in self.run_buckets.items()}
            new.run_sum = dict(self.run_sum)
            new.passes = self.passes
            new.retries = self.retries
            new.due_jobs = self.due_jobs
            new.oldest_lateness = self.oldest_lateness
            new.last_pass_timestamp = self.last_pass_timestamp
            new.last_pass_duration = self.last_pass_duration
        return new

    def take(self) -> Totals:
        """A copy of these values, which start again from nothing."""
        new = Totals()
        with self._lock:
            new.finished, self.finished = self.finished, {}
            new.run_buckets, self.run_buckets = self.run_buckets, {}
            new.run_sum, self.run_sum = self.run_sum, {}
            new.passes, self.passes = self.passes, 0
            new.retries, self.retries = self.retries, 0
            new.due_jobs, self.due_jobs = self.due_jobs, None
            new.oldest_lateness, self.oldest_lateness = self.oldest_lateness, None
            new.last_pass_timestamp, self.last_pass_timestamp = self.last_pass_timestamp, None
            new.last_pass_duration, self.last_pass_duration = self.last_pass_duration, None
        return new


def _bucket_index(seconds: float) -> int:
    for i, bound in enumerate(BUCKETS):
        if seconds <= bound:
            return i
    return len(BUCKETS)


def metric_families(totals: Totals) -> Iterator[Metric]:
    """``totals`` as prometheus_client metric families (a collector's ``collect``)."""
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )

    t = totals.copy()
    finished = CounterMetricFamily(
        FINISHED,
        "Job results of passes, by handler and outcome (an Outcome value).",
        labels=["handler", "outcome"],
    )
    handlers = sorted({handler for handler, _ in t.finished})
    for handler in handlers:
        outcomes = _OUTCOMES + tuple(
            sorted(o for h, o in t.finished if h == handler and o not in _OUTCOMES)
        )
        for outcome in outcomes:
            finished.add_metric([handler, outcome], t.finished.get((handler, outcome), 0))
    yield finished

    run_seconds = HistogramMetricFamily(
        RUN_SECONDS, "Seconds handlers ran, by handler.", labels=["handler"]
    )
    for handler in sorted(t.run_buckets):
        cumulative = 0
        pairs: list[tuple[str, float]] = []
        for bound, count in zip((*BUCKETS, math.inf), t.run_buckets[handler], strict=True):
            cumulative += count
            pairs.append((_le(bound), cumulative))
        run_seconds.add_metric([handler], pairs, t.run_sum.get(handler, 0.0))
    yield run_seconds

    yield CounterMetricFamily(PASSES, "Passes that wrote the metrics.", value=t.passes)
    yield CounterMetricFamily(
        RETRIES,
        "Bookkeeping transactions passes had to try again (the database was busy or away).",
        value=t.retries,
    )
    gauges = (
        (DUE_JOBS, "Due jobs no runner held at the end of the last pass.", t.due_jobs),
        (
            LATENESS,
            "How late the oldest due job no runner held was at the end of the last pass.",
            t.oldest_lateness,
        ),
        (LAST_PASS_TIMESTAMP, "When the last pass ended (Unix time).", t.last_pass_timestamp),
        (LAST_PASS_DURATION, "Seconds the last pass took.", t.last_pass_duration),
    )
    for name, documentation, value in gauges:
        if value is not None:
            yield GaugeMetricFamily(name, documentation, value=value)


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def registry(totals: Totals) -> CollectorRegistry:
    """A registry whose metrics are ``totals`` as they are at each collection (each scrape,
    when served over HTTP)."""
    _require_prometheus_client()
    from prometheus_client import CollectorRegistry

    class _Collector:
        def collect(self) -> Iterable[Metric]:
            return metric_families(totals)

    result = CollectorRegistry()
    result.register(_Collector())
    return result


def render(totals: Totals) -> bytes:
    """``totals`` in the Prometheus text format (what node_exporter's textfile collector reads)."""
    from prometheus_client import generate_latest

    return generate_latest(registry(totals))


def parse(text: str) -> Totals:
    """The counters and histograms of a metrics file that ``render`` wrote (gauges and other
    metrics are left out). Raises ValueError if the text is not such a file. A histogram
    written with other buckets is left out (its counts start again from 0)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = Totals()
    cumulative: dict[str, dict[float, float]] = {}
    counts: dict[str, float] = {}
    try:
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    except Exception as e:  # the parser raises ValueError, but also IndexError, KeyError...
        raise ValueError(f"not in the Prometheus text format: {e!r}") from e
    for sample in samples:
        name, labels, value = sample.name, sample.labels, sample.value
        if name not in (PASSES, RETRIES, FINISHED) and not name.startswith(RUN_SECONDS):
            continue
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} {labels} is {value}")
        if name == PASSES:
            totals.passes = _whole(name, value)
        elif name == RETRIES:
            totals.retries = _whole(name, value)
        elif name == FINISHED:
            key = (_label(name, labels, "handler"), _label(name, labels, "outcome"))
            totals.finished[key] = _whole(name, value)
        elif name == RUN_SECONDS + "_bucket":
            handler = _label(name, labels, "handler")
            try:
                bound = float(_label(name, labels, "le"))
            except ValueError as e:
                raise ValueError(f"{name} {labels}: bad le") from e
            cumulative.setdefault(handler, {})[bound] = _whole(name, value)
        elif name == RUN_SECONDS + "_sum":
            totals.run_sum[_label(name, labels, "handler")] = float(value)
        elif name == RUN_SECONDS + "_count":
            counts[_label(name, labels, "handler")] = _whole(name, value)
    bounds = (*BUCKETS, math.inf)
    for handler, by_bound in cumulative.items():
        if sorted(by_bound) != list(bounds):
            log.warning(
                "metrics file: the %s histogram of handler %r has other buckets: "
                "its counts start again from 0",
                RUN_SECONDS,
                handler,
            )
            totals.run_sum.pop(handler, None)
            continue
        buckets: list[int] = []
        below = 0
        for bound in bounds:
            at = int(by_bound[bound])
            if at < below:
                raise ValueError(f"{RUN_SECONDS} of {handler!r}: buckets are not cumulative")
            buckets.append(at - below)
            below = at
        if counts.get(handler, below) != below:
            raise ValueError(f"{RUN_SECONDS} of {handler!r}: count is not the +Inf bucket")
        totals.run_buckets[handler] = buckets
        totals.run_sum.setdefault(handler, 0.0)
    for handler in list(totals.run_sum):
        if handler not in totals.run_buckets:
            del totals.run_sum[handler]
    return totals


def _label(name: str, labels: dict[str, str], label: str) -> str:
    try:
        return labels[label]
    except KeyError:
        raise ValueError(f"{name} {labels}: no {label} label") from None


def _whole(name: str, value: float) -> int:
    if not float(value).is_integer():  # the parser gives an int for "4"
        raise ValueError(f"{name} is {value}, not a whole number")
    return int(value)


class PassMetrics:
    """The metrics of one pass, added to the node_exporter textfile at ``path`` by ``write``.

    ``observe`` every result of the pass (from any thread), then ``write`` once at its end.
    A later ``write`` would add only what was observed since (and count another pass).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        _require_prometheus_client()
        self.path = os.path.abspath(os.fspath(path))
        self.lock_path = self.path + ".lock"
        self._check_place()
        self._totals = Totals()

    def observe(self, result: JobResult) -> None:
        """Count one job result of the pass (thread-safe)."""
        self._totals.observe(result)

    def write(self, report: RunReport, backlog: tuple[int, datetime | None], now: datetime) -> None:
        """Add this pass (``report``; ``backlog``: due jobs no runner holds and the start of the
        oldest of them, at ``now``) to the file, atomically, under the lock file.

        Raises UsageError if the file's directory does not exist (or the path is a directory),
        JobschedError if the file cannot be written; then the file is left as it was, without
        this pass's counts.
        """
        this_pass = self._totals.take()
        this_pass.end_pass(report, backlog, now)
        self._check_place()
        try:
            with _locked(self.lock_path):
                totals = self._previous()
                totals.add(this_pass)
                totals.set_gauges(this_pass)
                _replace(self.path, render(totals))
        except OSError as e:
            raise JobschedError(
                f"cannot write the metrics file {self.path}: {e.strerror or e}"
            ) from e

    def _check_place(self) -> None:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise UsageError(
                f"cannot write the metrics file {self.path}: "
                f"its directory {directory} does not exist"
            )
        if os.path.isdir(self.path):
            raise UsageError(f"cannot write the metrics file {self.path}: it is a directory")

    def _previous(self) -> Totals:
        """The counters the file holds now (none if there is no file, or an unreadable one)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
            return parse(text)
        except FileNotFoundError:
            return Totals()
        except ValueError as e:  # UnicodeDecodeError included
            log.warning(
                "metrics file %s is unreadable (%s): its counters start again from 0",
                self.path,
                e,
            )
            return Totals()


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file at ``path`` (created if need be)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield  # the lock goes with the close
    finally:
        os.close(fd)


def _replace(path: str, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` atomically: a temporary file in the same
    directory, flushed to disk, renamed over it (and the rename flushed too)."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # 0o644 (less the umask): node_exporter usually runs as a user of its own.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class WorkerMetrics:
    """The metrics of a long-running worker, served over HTTP; made by ``start_worker_metrics``.

    ``observe`` every job result (from any thread: pass it as the worker's ``on_result``), call
    ``round`` each time the worker looks for due jobs again (optional), and ``close`` at the end.
    """

    def __init__(
        self,
        totals: Totals,
        server: WSGIServer,
        thread: threading.Thread,
        host: str,
        now: Callable[[], datetime],
    ) -> None:
        self._totals = totals
        self._server = server
        self._thread = thread
        self._now = now
        self._closed = False
        self._close_lock = threading.Lock()
        #: The address it listens on, as given (``--metrics-host``).
        self.host = host
        #: The port it listens on (the one the system chose, if it was asked for port 0).
        self.port: int = int(server.server_address[1])

    @property
    def url(self) -> str:
        """Where to scrape it (with the host as given: 0.0.0.0 stands for every address)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def observe(self, result: JobResult) -> None:
        """Count one job result (thread-safe)."""
        self._totals.observe(result)

    def round(self) -> None:
        """Count one round of the worker (a look for due jobs) as a pass, beginning now."""
        self._totals.round(self._now())

    def close(self) -> None:
        """Stop serving and release the port (again: nothing)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WorkerMetrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _WorkerCollector:
    """The worker's metrics at each scrape: its totals, and the backlog read from the database
    then. A backlog that cannot be read leaves its two gauges out of the scrape, and is logged
    (a warning when it starts failing, one line when it works again)."""

    def __init__(
        self,
        totals: Totals,
        backlog: Callable[[], tuple[int, datetime | None]],
        now: Callable[[], datetime],
        retries: Callable[[], int] | None,
    ) -> None:
        self.totals = totals
        self.backlog = backlog
        self.now = now
        self.retries = retries
        self._lock = threading.Lock()
        self._failing = False

    def collect(self) -> Iterable[Metric]:
        t = self.totals.copy()
        try:
            due, oldest = self.backlog()
            now = self.now()
            t.due_jobs = int(due)
            t.oldest_lateness = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        except Exception as e:  # the database is away or busy: serve the rest
            self._failed(e)
        else:
            self._worked()
        if self.retries is not None:
            try:
                t.retries = int(self.retries())
            except Exception as e:
                log.warning("metrics: cannot count the bookkeeping retries: %s", e)
        return metric_families(t)

    def _failed(self, e: Exception) -> None:
        with self._lock:
            first, self._failing = not self._failing, True
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "metrics: cannot read the backlog (%s: %s); %s and %s are left out of scrapes "
            "until it can be read again",
            type(e).__name__,
            e,
            DUE_JOBS,
            LATENESS,
        )

    def _worked(self) -> None:
        with self._lock:
            was, self._failing = self._failing, False
        if was:
            log.info("metrics: the backlog can be read again")


def start_worker_metrics(
    host: str,
    port: int,
    *,
    backlog: Callable[[], tuple[int, datetime | None]],
    now: Callable[[], datetime],
    retries: Callable[[], int] | None = None,
) -> WorkerMetrics:
    """Serve a worker's Prometheus metrics over HTTP on ``host``:``port`` (any path, such as
    ``/metrics``), from threads of their own, until ``close``.

    ``backlog`` (``Scheduler.backlog``: due jobs no runner holds, and the start of the oldest)
    and ``now`` (``Scheduler.now``) are called at each scrape, from the server's threads;
    ``retries``, if given, returns the bookkeeping transactions tried again so far (a count that
    only grows). Port 0 asks the system for a free port (``WorkerMetrics.port`` says which).

    Raises UsageError if prometheus_client is not installed, if ``port`` is in use or needs
    privileges, or if ``host`` is not an address of this host; JobschedError if the server
    cannot start for another reason.
    """
    _require_prometheus_client()
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"the metrics port must be a whole number from 1 to 65535, got {port!r}")
    from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

    totals = Totals()
    served = CollectorRegistry()
    served.register(_WorkerCollector(totals, backlog, now, retries))
    ProcessCollector(registry=served)
    try:
        started = start_http_server(port, addr=host, registry=served)
    except OSError as e:
        raise _bind_error(host, port, e) from None
    server, thread = started
    metrics = WorkerMetrics(totals, server, thread, host, now)
    log.info("serving Prometheus metrics on %s", metrics.url)
    return metrics


def _bind_error(host: str, port: int, e: OSError) -> JobschedError:
    where = f"cannot serve metrics on {host}:{port}"
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return UsageError(
            f"{where}: {host!r} is not an address of this host ({e.strerror or e}); give "
            "--metrics-host one of its addresses, such as 127.0.0.1 (this host only) or 0.0.0.0 "
            "(every interface)"
        )
    if e.errno == errno.EADDRINUSE:
        return UsageError(
            f"{where}: port {port} is in use (another worker, or another program, listens "
            "on it); give --metrics-port a free port"
        )
    if e.errno == errno.EACCES:
        return UsageError(
            f"{where}: port {port} needs privileges this process lacks (ports below 1024 "
            "do); give --metrics-port a port from 1024 up"
        )
    return JobschedError(f"{where}: {e.strerror or e}")


def _require_prometheus_client() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise UsageError(
            f"metrics need prometheus_client, which is not installed: {_INSTALL_HINT}"
        ) from None
