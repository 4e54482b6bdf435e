"""Every error jobsched raises: one root class, each subclass with a message a user can act on.

A class's docstring is its default message, so ``raise SchemaError()`` already says what to do.
"""

from __future__ import annotations


class JobschedError(Exception):
    """jobsched failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class InvalidJobError(JobschedError, ValueError):
    """The job is invalid; nothing was written."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"invalid {field}: {problem}")


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


class UsageError(JobschedError):
    """An argument is malformed (a CLI or API caller's mistake); nothing was done."""


class NoHandlersError(JobschedError):
    """A pass was asked to run with no handler registered: it would only defer every job."""

    def __init__(self) -> None:
        super().__init__(
            "no handlers registered: pass --app or set JOBSCHED_APP (from Python, import the "
            "modules that define the handlers before running a pass)"
        )
