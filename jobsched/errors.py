"""Every error jobsched raises: one root class, each subclass with a message a user can act on.

A class's docstring is its default message, so ``raise SchemaError()`` already says what to do.
"""

from __future__ import annotations


def cut_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character, and marked."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")  # lone surrogates (unstorable) became "?"
    marker = " [cut]"
    kept = data[: max_bytes - len(marker)].decode("utf-8", errors="ignore")
    return kept + marker


class JobschedError(Exception):
    """jobsched failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class InvalidJobError(JobschedError, ValueError):
    """The job is invalid; nothing was written.

    ``field`` names the wrong argument. In a batch (``schedule_jobs``), ``item`` is the index
    (from 0) of the wrong job and ``item_id`` its id (None when it has no string id); the message
    starts with them: ``item 3 (id 'x'): invalid start: ...``.
    """

    def __init__(
        self, field: str, problem: str, *, item: int | None = None, item_id: str | None = None
    ) -> None:
        self.field = field
        self.problem = problem
        self.item = item
        self.item_id = item_id
        where = ""
        if item is not None:
            where = f"item {item}" + ("" if item_id is None else f" (id {_short(item_id)})") + ": "
        super().__init__(f"{where}invalid {field}: {problem}")

    def in_item(self, item: int, item_id: object) -> InvalidJobError:
        """This error, placed at ``item`` (index from 0) of a batch whose job has ``item_id``."""
        return InvalidJobError(
            self.field,
            self.problem,
            item=item,
            item_id=item_id if isinstance(item_id, str) else None,
        )


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


class JobExistsError(JobschedError):
    """A job with this id exists already; nothing was written.

    Use mode=Mode.IGNORE_IF_EXISTS to keep it, or Mode.RESCHEDULE to replace it.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"job {job_id!r} exists already; nothing was written "
            "(use mode IGNORE_IF_EXISTS to keep it or RESCHEDULE to replace it)"
        )


class SchemaError(JobschedError):
    """The database has no jobsched schema, or an older one: run `jobsched migrate`."""


class DatabaseError(JobschedError):
    """The database is unreachable, busy or failing; see the cause."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message)


class PermanentError(JobschedError):
    """Raised by a handler to fail its job at once, without a retry."""


class RealDatabaseWarning(UserWarning):
    """Under pytest, the module-level API made its default scheduler on a real database.

    The default scheduler comes from ``$JOBSCHED_DATABASE_URL`` (else ``sqlite:///jobsched.db``):
    a test that reaches it without the ``jobsched_sim`` fixture or a scheduler of its own
    (``set_scheduler``/``use_scheduler``) writes real jobs. Silence it for a test that means to
    with ``@pytest.mark.filterwarnings("ignore::jobsched.RealDatabaseWarning")``, or make it an
    error with ``-W error::jobsched.RealDatabaseWarning``.
    """


class UsageError(JobschedError):
    """An argument is malformed (a CLI or API caller's mistake); nothing was done."""


class NoHandlersError(JobschedError):
    """A pass was asked to run with no handler registered: it would only defer every job."""

    def __init__(self) -> None:
        super().__init__(
            "no handlers registered: pass --app or set JOBSCHED_APP (from Python, import the "
            "modules that define the handlers before running a pass)"
        )


class MissingJobError(JobschedError):
    """No job has this id (the command line's ``show``, ``remove`` and ``reschedule``)."""


class AppImportError(JobschedError):
    """An app module given with --app (or $JOBSCHED_APP) could not be imported."""


class IsolatedAttemptError(JobschedError):
    """An attempt run in a child process (``isolate=True``) ended without its handler returning.

    Its message is the job's ``last_error`` as it is; ``cause`` says how the attempt ended:
    ``"raised"``, ``"timeout"``, ``"died"`` or ``"not-started"`` (the subclasses).
    """

    #: How the attempt ended (the ``cause`` field of the runner's log line).
    cause = "isolated"
    #: The handler raised ``PermanentError`` in its child: the job fails at once.
    permanent = False


class HandlerRaisedError(IsolatedAttemptError):
    """The handler raised in its child process.

    The message is what it would be in-process (``ValueError: boom``, ``the handler called
    sys.exit(3)``); ``error_type`` names the exception's class and ``child_traceback`` holds the
    child's frames (the exception itself stays in the child: only this text crosses).
    """

    cause = "raised"

    def __init__(
        self, message: str, *, error_type: str, child_traceback: str, permanent: bool
    ) -> None:
        self.error_type = error_type
        self.child_traceback = child_traceback
        self.permanent = permanent
        super().__init__(message)


class HandlerTimeoutError(IsolatedAttemptError):
    """The handler ran past its timeout: its child process was killed (SIGTERM, then SIGKILL)."""

    cause = "timeout"


class HandlerProcessDiedError(IsolatedAttemptError):
    """The handler's child process died before the handler returned (a signal or an exit code).

    ``exitcode`` is the process's exit code, or minus the number of the signal that killed it.
    """

    cause = "died"

    def __init__(self, message: str, *, exitcode: int | None) -> None:
        self.exitcode = exitcode
        super().__init__(message)


class HandlerStartError(IsolatedAttemptError):
    """The handler could not be started in a child process (its module could not be imported
    there, the handler was not found in it, or the job could not be sent to it)."""

    cause = "not-started"


class ProcessBoundaryError(JobschedError):
    """A value cannot cross the process boundary between an isolated handler and its runner.

    Only plain data crosses (the job, the arguments and results of ``jobsched`` calls: strings,
    numbers, JSON values, datetimes, jobsched's own records); database connections, functions
    and other live objects cannot.
    """


class RunnerCallError(JobschedError):
    """A ``jobsched`` call that an isolated handler made failed in its runner process with an
    error that cannot be raised again in the child as its own class (the message names it)."""
