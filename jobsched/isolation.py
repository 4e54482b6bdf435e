"""Handlers in child processes: each attempt of an isolated handler runs in a process of its own,
killed once it runs past its timeout, so that a handler that hangs, crashes or exits costs its
own attempt and never its runner.

The child comes from multiprocessing's ``forkserver`` (a clean process forked from a server
that imported jobsched once, never from the runner itself, whose threads make a plain fork
unsafe). It finds the handler by importing the function's module (``sys.path`` and the working
directory are the runner's, so ``--app`` modules import) and looking the function up by name,
else by the handler's name in ``jobsched.handlers.registry``.

Only plain data crosses the boundary, never an exception or a handler's return value:

- to the child: the job's fields (JSON data, strings, numbers, datetimes);
- back: ``False`` or not (the handler's result), or an error as text (its class name, the
  ``last_error`` it makes, its traceback's frames, whether it is a ``PermanentError``);
- ``jobsched.progress(...)`` and the module-level scheduler calls (``jobsched.schedule_job``...),
  which the child forwards to the runner over a pipe: their arguments and results are jobsched's
  plain records; an error comes back as the same jobsched (or built-in) class where it can.

How an attempt ends is told apart (``IsolatedAttemptError.cause``): the handler raised, was
killed after its timeout, its process died (a signal, an exit code), or it could not be started.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import importlib
import inspect
import json
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn, cast

from jobsched import errors
from jobsched.current import set_scheduler
from jobsched.errors import (
    HandlerProcessDiedError,
    HandlerRaisedError,
    HandlerStartError,
    HandlerTimeoutError,
    IsolatedAttemptError,
    JobschedError,
    PermanentError,
    ProcessBoundaryError,
    RunnerCallError,
    cut_text,
)
from jobsched.handlers import Handler
from jobsched.model import Job, Progress
from jobsched.progress import sink as progress_sink
from jobsched.rules import describe_error

log = logging.getLogger("jobsched")

#: Seconds a child killed for its timeout has between SIGTERM and SIGKILL (to clean up).
KILL_GRACE = 5.0
#: The scheduler methods an isolated handler may call (``jobsched.schedule_job`` and the other
#: module-level functions): each is carried out by the runner, on its scheduler.
FORWARDED = frozenset(
    {
        "schedule_job",
        "schedule_jobs",
        "add_job",
        "get_job",
        "job_exists",
        "remove_job",
        "now",
        "time",
        "status",
        "retry",
        "get_job_info",
        "list_jobs",
        "list_job_infos",
        "count_jobs",
        "next_due",
        "history",
        "failed_jobs",
        "stats",
        "backlog",
    }
)
#: Most bytes of a child's traceback kept (the log line's frames).
MAX_TRACEBACK_BYTES = 64 * 1024

_children: set[BaseProcess] = set()
_children_lock = threading.Lock()
_context: Any = None  # the multiprocessing context, made on first use
#: How the runner tells its fork server what to import (see ``_start_context``).
_PRELOAD_ENV = "JOBSCHED_ISOLATION_PRELOAD"


def run_isolated(
    handler: Handler,
    job: Job,
    *,
    on_progress: Callable[[Progress], None],
    api: object | None = None,
) -> object:
    """Run ``handler.fn(job)`` in a child process and return False if it returned False (the
    job is kept), else None; raise an ``IsolatedAttemptError`` if it did not return.

    Past ``handler.timeout`` the child gets SIGTERM, then SIGKILL ``KILL_GRACE`` seconds later.
    ``on_progress`` receives the handler's ``jobsched.progress`` reports; its scheduler calls
    are carried out on ``api`` (None: ``jobsched.get_scheduler()``).
    """
    fields = _job_fields(job)
    try:
        target = _target(handler)
        pickle.dumps(fields)
    except HandlerStartError as e:
        raise _logged(job, e) from None
    except Exception as e:  # the data came from JSON: not expected, but said clearly
        raise _logged(
            job,
            HandlerStartError(
                f"the handler could not be started: the job could not be sent to its child "
                f"process ({type(e).__name__}: {e})"
            ),
        ) from None
    context = _get_context()
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_child_main,
        args=(theirs, target, fields),
        name=f"jobsched-isolated-{handler.name}",
    )
    try:
        with _children_lock:
            process.start()
            _children.add(process)
    except Exception as e:
        ours.close()
        raise _logged(
            job,
            HandlerStartError(
                f"the handler could not be started: its child process did not start "
                f"({type(e).__name__}: {e})"
            ),
        ) from None
    finally:
        theirs.close()
    try:
        return _supervise(handler, job, process, ours, on_progress, api)
    finally:
        if process.exitcode is None:
            process.kill()
        process.join()
        with _children_lock:
            _children.discard(process)
        ours.close()
        process.close()


def kill_children() -> int:
    """SIGKILL every child process running an isolated handler now (a runner's hard exit);
    returns how many there were."""
    with _children_lock:
        children = list(_children)
    killed = 0
    for child in children:
        try:
            child.kill()
            killed += 1
        except (OSError, ValueError):  # gone already, or closed
            pass
    return killed


def _supervise(
    handler: Handler,
    job: Job,
    process: BaseProcess,
    conn: Connection,
    on_progress: Callable[[Progress], None],
    api: object | None,
) -> object:
    """Serve the child's calls until it reports how the handler ended, dies, or times out."""
    timeout = handler.timeout.total_seconds()
    deadline = time.monotonic() + timeout
    pipe_open = True
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _logged(job, _kill_for_timeout(process, handler.timeout), pid=process.pid)
        ready = wait([conn, process.sentinel] if pipe_open else [process.sentinel], left)
        if conn in ready:
            try:
                message = conn.recv()
            except EOFError:  # the child closed its end: it is ending
                pipe_open = False
                continue
            except Exception as e:  # a call whose arguments the runner cannot read
                _reply(conn, _error_reply(_boundary(f"its arguments could not be read: {e}")))
                continue
            end = _serve(message, conn, on_progress, api)
            if end is not None:
                return _outcome(end, job, process)
        elif process.sentinel in ready:
            if pipe_open and conn.poll():  # a last message came with the exit
                continue
            process.join()
            raise _logged(job, _died(process.exitcode), pid=process.pid)


def _serve(
    message: tuple[Any, ...],
    conn: Connection,
    on_progress: Callable[[Progress], None],
    api: object | None,
) -> tuple[Any, ...] | None:
    """Carry out one message from the child; returns it if it says how the handler ended."""
    kind = message[0]
    if kind == "progress":
        on_progress(Progress(*message[1:]))
        return None
    if kind == "call":
        _, method, args, kwargs = message
        try:
            scheduler = api
            if scheduler is None:
                from jobsched.current import get_scheduler

                scheduler = get_scheduler()
            value = getattr(scheduler, method)(*args, **kwargs)
        except Exception as e:
            _reply(conn, _error_reply(e))
        else:
            _reply(conn, ("ok", value))
        return None
    return message


def _reply(conn: Connection, reply: tuple[Any, ...]) -> None:
    try:
        data = pickle.dumps(reply)
    except Exception as e:  # the result (or the error) cannot cross
        data = pickle.dumps(_error_reply(_boundary(f"its result could not be sent back: {e}")))
    with contextlib.suppress(OSError):  # the child is gone; the sentinel says how
        conn.send_bytes(data)


def _boundary(problem: str) -> ProcessBoundaryError:
    return ProcessBoundaryError(f"a jobsched call from an isolated handler failed: {problem}")


def _error_reply(exc: Exception) -> tuple[Any, ...]:
    """An error of a forwarded call as plain data: its class, message and plain attributes."""
    attrs = {
        k: v
        for k, v in vars(exc).items()
        if isinstance(v, str | int | float | bool | type(None)) and not k.startswith("_")
    }
    return ("error", type(exc).__module__, type(exc).__name__, str(exc), attrs)


def _outcome(end: tuple[Any, ...], job: Job, process: BaseProcess) -> object:
    """What the handler's end means: False (kept), None (done), or an error raised."""
    process.join(KILL_GRACE)  # it exits at once after its report
    kind = end[0]
    if kind == "returned":
        return False if end[1] else None
    if kind == "raised":
        _, error_type, text, frames, permanent = end
        raise HandlerRaisedError(
            text, error_type=error_type, child_traceback=frames, permanent=permanent
        )
    if kind == "not-started":
        raise _logged(job, HandlerStartError(f"the handler could not be started: {end[1]}"))
    raise _logged(job, HandlerStartError(f"the child process sent an unknown report: {kind!r}"))


def _kill_for_timeout(process: BaseProcess, timeout: timedelta) -> HandlerTimeoutError:
    """Stop a child past its timeout: SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds."""
    process.terminate()
    process.join(KILL_GRACE)
    how = "SIGTERM"
    if process.exitcode is None:
        process.kill()
        process.join()
        how = f"SIGKILL: it was still running {_seconds(KILL_GRACE)} after SIGTERM"
    return HandlerTimeoutError(f"killed after its timeout of {_duration(timeout)} ({how})")


def _died(exitcode: int | None) -> HandlerProcessDiedError:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (perhaps out of memory, or killed by someone)" if name == "SIGKILL" else ""
        text = f"the handler's process was killed by {name}{why} before the handler returned"
    else:
        text = f"the handler's process exited with code {exitcode} before the handler returned"
    return HandlerProcessDiedError(text, exitcode=exitcode)


def _logged(job: Job, exc: IsolatedAttemptError, pid: int | None = None) -> IsolatedAttemptError:
    """Log how an isolated attempt ended (the runner logs the attempt's verdict after)."""
    log.warning(
        "job %r: isolated attempt %d: %s",
        job.job_id,
        job.attempts,
        exc,
        extra={
            "job_id": job.job_id,
            "handler": job.handler,
            "attempt": job.attempts,
            "error": str(exc),
            "cause": exc.cause,
            "pid": pid,
        },
    )
    return exc


def _duration(value: timedelta) -> str:
    """``5m``, ``1s``, ``1m30s``, ``0.5s``: a timeout as people write it."""
    seconds = value.total_seconds()
    if seconds >= 60 and seconds == int(seconds):
        hours, rest = divmod(int(seconds), 3600)
        minutes, secs = divmod(rest, 60)
        parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
        return "".join(f"{n}{unit}" for n, unit in parts if n)
    return _seconds(seconds)


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def _target(handler: Handler) -> tuple[str, str, str]:
    """Where the child finds the handler: its function's module and name, and its own name."""
    fn = handler.fn
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise HandlerStartError(
            f"the handler could not be started: {fn!r} has no module and name to import it "
            "by in a child process (an isolated handler must be a module-level function)"
        )
    return module, qualname, handler.name


def _job_fields(job: Job) -> tuple[Any, ...]:
    return (
        job.job_id,
        job.handler,
        job.data,
        job.start,
        job.expiry,
        job.attempts,
        job.max_attempts,
        job.created_at,
        job.last_error,
    )


def _get_context() -> Any:
    """The forkserver context (spawn where there is none), its server started on first use."""
    global _context
    if _context is None:
        with _children_lock:
            if _context is None:
                _context = _start_context()
    return _context


def _start_context() -> Any:
    """Start the fork server, with jobsched and the runner's main module imported once there
    (else every child would import them again: some 250 ms for the ``jobsched`` command)."""
    try:
        context: Any = multiprocessing.get_context("forkserver")
    except ValueError:  # no forkserver on this platform
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver, spawn

    context.set_forkserver_preload(["jobsched.isolation"])
    main_path = spawn.get_preparation_data("jobsched").get("init_main_from_path")
    # The server learns the main module (and sys.path) from its environment: multiprocessing's
    # own "__main__" preload does nothing before Python 3.13 (it reads a key that is never set).
    os.environ[_PRELOAD_ENV] = json.dumps({"main": main_path, "sys_path": sys.path})
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(_PRELOAD_ENV, None)
    return context


def _preload_in_server() -> None:
    """In the fork server only (it alone has the variable): import the runner's main module,
    as each child would, so that children find it imported already."""
    spec = os.environ.pop(_PRELOAD_ENV, None)
    if spec is None or multiprocessing.parent_process() is not None:
        return
    from multiprocessing import process, spawn

    try:
        data = json.loads(spec)
        sys.path[:] = data["sys_path"]
        main = sys.modules.get("__main__")
        if data["main"] and getattr(main, "__file__", None) != data["main"]:
            cast(Any, process.current_process())._inheriting = True
            try:
                spawn.import_main_path(data["main"])
            finally:
                del cast(Any, process.current_process())._inheriting
    except BaseException:  # each child imports it again, and says why it failed
        pass


# --- In the child ----------------------------------------------------------------------------


def _child_main(conn: Connection, target: tuple[str, str, str], fields: tuple[Any, ...]) -> None:
    """The child: run the handler once, report how it ended over ``conn``, and exit."""
    # Ctrl-C reaches the whole process group: the runner decides (its grace) how its handlers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    try:
        fn = _resolve(*target)
        job = Job(*fields)
    except _NotStarted as e:
        _exit(conn, ("not-started", str(e)))
    except BaseException as e:
        _exit(conn, ("not-started", f"{type(e).__name__}: {e}"))
    calls = _Calls(conn)
    set_scheduler(cast(Any, _ForwardingScheduler(calls)))
    progress_sink.set(calls.progress)
    try:
        value = fn(job)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
    except BaseException as e:
        frames = cut_text("".join(traceback.format_tb(e.__traceback__)), MAX_TRACEBACK_BYTES)
        report: tuple[Any, ...] = (
            "raised",
            type(e).__name__,
            describe_error(e),
            f"Traceback (most recent call last) in the child process:\n{frames}".rstrip(),
            isinstance(e, PermanentError),
        )
        _exit(conn, report, calls.lock)
    _exit(conn, ("returned", value is False), calls.lock)


async def _awaited(value: Any) -> Any:
    return await value


class _NotStarted(Exception):
    pass


def _resolve(module_name: str, qualname: str, name: str) -> Callable[[Job], Any]:
    """The handler's function in this child: the function of that module and name, else the
    one registered under the handler's name when the module was imported."""
    try:
        module = importlib.import_module(module_name)
    except BaseException as e:
        raise _NotStarted(
            f"its module {module_name!r} could not be imported in the child process "
            f"({type(e).__name__}: {e})"
        ) from None
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if callable(found):
        return cast(Callable[[Job], Any], found)
    from jobsched.handlers import registry

    entry = registry.get(name)
    if entry is not None:
        return cast(Callable[[Job], Any], entry.fn)
    raise _NotStarted(
        f"{module_name}.{qualname} was not found in the child process, nor a handler named "
        f"{name!r} registered on importing {module_name!r} (an isolated handler must be a "
        "module-level function, or registered when its module is imported)"
    )


def _exit(
    conn: Connection, report: tuple[Any, ...], lock: threading.Lock | None = None
) -> NoReturn:
    """Send the report and end the process at once (threads the handler left are not waited
    for, nor atexit hooks run)."""
    try:
        if lock is not None:
            lock.acquire(timeout=KILL_GRACE)  # a call under way in another thread: let it end
        conn.send(report)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)


def _die_with_parent() -> None:
    """End this child soon after its runner dies (kill -9 included): a thread waits on the
    runner's sentinel; on Linux the kernel also kills it when its forkserver exits."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        sentinel = parent.sentinel

        def watch() -> None:
            wait([sentinel])
            os._exit(1)

        threading.Thread(target=watch, name="jobsched-parent-watch", daemon=True).start()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            # The server exits once no process holds its "alive" pipe: not this child either.
            from multiprocessing import forkserver

            server = cast(Any, forkserver)._forkserver
            alive = server._forkserver_alive_fd
            if isinstance(alive, int):
                os.close(alive)
                server._forkserver_alive_fd = None
        except Exception:  # the watch thread is enough
            pass


class _Calls:
    """The child's end of the pipe: progress reports, and scheduler calls carried out by the
    runner (one at a time: a call waits for its reply)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def progress(self, report: Progress) -> None:
        with self.lock:
            self.conn.send(("progress", report.done, report.total, report.note))

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs.get("conn") is not None:
            raise ProcessBoundaryError(
                f"jobsched.{method}(conn=...) cannot be called from an isolated handler: a "
                "database connection cannot cross the process boundary (leave conn out: the "
                "runner carries out the call on its own connection)"
            )
        message = ("call", method, args, kwargs)
        try:
            data = pickle.dumps(message)
        except Exception as e:
            raise ProcessBoundaryError(
                f"jobsched.{method}(...) from an isolated handler: its arguments cannot cross the "
                f"process boundary ({type(e).__name__}: {e}); pass plain data"
            ) from None
        with self.lock:
            self.conn.send_bytes(data)
            reply = self.conn.recv()
        if reply[0] == "ok":
            return reply[1]
        raise _rebuilt(method, *reply[1:])


def _rebuilt(method: str, module: str, name: str, message: str, attrs: dict[str, Any]) -> Exception:
    """The runner's error of a forwarded call, as the same class where it can be."""
    cls = getattr(errors, name, None) if module == "jobsched.errors" else None
    if module == "builtins":
        cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, JobschedError):
        exc: Exception = cls.__new__(cls)
        Exception.__init__(exc, message)
        vars(exc).update(attrs)
        return exc
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:
            pass
    return RunnerCallError(
        f"jobsched.{method}(...) failed in the runner process: {name}: {message}"
    )


class _ForwardingScheduler:
    """The child's current scheduler: each call is carried out by the runner's scheduler."""

    def __init__(self, calls: _Calls) -> None:
        self._calls = calls

    def __repr__(self) -> str:
        return "<jobsched scheduler of the runner process, through a pipe>"

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        if method not in FORWARDED:
            raise ProcessBoundaryError(
                f"Scheduler.{method} cannot be used from an isolated handler (only "
                f"{', '.join(sorted(FORWARDED))} are carried out by the runner); run the "
                "handler without isolate, or open a Scheduler of its own in the handler"
            )

        def forwarded(*args: Any, **kwargs: Any) -> Any:
            return self._calls.call(method, args, kwargs)

        forwarded.__name__ = method
        return forwarded


_preload_in_server()
