"""What the installed package offers besides the API: its exports and its entry points."""

from __future__ import annotations

import jobsched
from jobsched import errors


def test_usage_error_is_exported() -> None:
    assert jobsched.UsageError is errors.UsageError
    assert "UsageError" in jobsched.__all__


def test_every_error_class_is_exported() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.JobschedError)
    }
    assert classes <= set(jobsched.__all__)
    for name in classes:
        assert getattr(jobsched, name) is getattr(errors, name)
