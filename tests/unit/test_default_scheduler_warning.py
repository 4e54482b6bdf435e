"""Under pytest, the module-level API's default scheduler warns when it is on a real database.

A test that calls ``jobsched.schedule_job`` without the ``jobsched_sim`` fixture or a scheduler
of its own would write real jobs into ``$JOBSCHED_DATABASE_URL`` (or ``./jobsched.db``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta

import pytest

import jobsched
from jobsched import RealDatabaseWarning, Scheduler

pytest_plugins = ["pytester"]

SECRET_URL = "mysql+pymysql://app:s3cret@db.invalid:3306/shop"  # never connected to


@pytest.fixture
def no_scheduler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No current scheduler, as in an app's test run before anything set one; restored after."""
    monkeypatch.setenv("JOBSCHED_DATABASE_URL", SECRET_URL)
    previous = jobsched.set_scheduler(None)
    try:
        yield
    finally:
        made = jobsched.set_scheduler(previous)
        if made is not None and made is not previous:
            made.close()


def test_the_default_scheduler_warns_under_pytest_naming_the_database(no_scheduler: None) -> None:
    with pytest.warns(RealDatabaseWarning) as record:
        scheduler = jobsched.get_scheduler()
    [warning] = record
    message = str(warning.message)
    assert "app:***@db.invalid:3306/shop" in message and "s3cret" not in message
    assert "$JOBSCHED_DATABASE_URL" in message and "jobsched_sim" in message
    assert warning.filename == __file__  # points at the test's own line
    assert scheduler.store.describe() in message


def test_the_warning_points_at_the_app_code_that_reached_the_default(no_scheduler: None) -> None:
    with pytest.warns(RealDatabaseWarning) as record:
        jobsched.now()  # through the module-level API (and no database needed)
    assert [w.filename for w in record] == [__file__]


def test_the_default_scheduler_warns_once(no_scheduler: None) -> None:
    with pytest.warns(RealDatabaseWarning):
        jobsched.get_scheduler()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jobsched.get_scheduler()


def test_the_warning_names_the_default_database_when_the_environment_has_none(
    no_scheduler: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSCHED_DATABASE_URL")
    with pytest.warns(RealDatabaseWarning, match=r"sqlite:///jobsched\.db \(the default"):
        jobsched.get_scheduler()


def test_a_warning_made_an_error_leaves_no_default_scheduler(no_scheduler: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RealDatabaseWarning)
        for _ in range(2):
            with pytest.raises(RealDatabaseWarning):
                jobsched.get_scheduler()
    assert jobsched.set_scheduler(None) is None


def test_no_warning_outside_pytest(no_scheduler: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jobsched.get_scheduler()


def test_no_warning_for_the_in_memory_backend(
    no_scheduler: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBSCHED_DATABASE_URL", "memory://")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jobsched.schedule_job("a", timedelta(0), "h")


def test_no_warning_with_an_explicit_scheduler(no_scheduler: None) -> None:
    with warnings.catch_warnings(), jobsched.use_scheduler(Scheduler("memory://")):
        warnings.simplefilter("error")
        jobsched.schedule_job("a", timedelta(0), "h")


def test_an_apps_test_suite_sees_the_warning_without_the_fixture_only(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{pytester.path / 'app.db'}"
    pytester.makepyfile(
        f"""
        from datetime import timedelta
        import jobsched

        jobsched.Scheduler({url!r}).migrate()  # the app's real database

        def test_with_the_fixture(jobsched_sim):
            jobsched.schedule_job("simulated", timedelta(0), "h")

        def test_without_the_fixture():
            jobsched.schedule_job("real", timedelta(0), "h")  # lands in app.db
        """
    )

    monkeypatch.setenv("JOBSCHED_DATABASE_URL", url)
    result = pytester.runpytest_subprocess("-p", "no:randomly")

    result.assert_outcomes(passed=2, warnings=1)
    warned = "RealDatabaseWarning: jobsched's default scheduler writes to the real database"
    result.stdout.fnmatch_lines(
        [
            "*test_without_the_fixture*",
            f"*{warned} {url} (*",
        ]
    )
