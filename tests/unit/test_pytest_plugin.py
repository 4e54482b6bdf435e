"""The pytest plugin: the ``jobsched_sim`` fixture, the ``jobsched`` marker, ``--jobsched-url``.

Each test writes a small test file and runs pytest on it (``pytester``), as an app's test suite
would use the plugin: found through the ``pytest11`` entry point, nothing to configure. Runs on
SQL databases use a subprocess (an in-process run would unload and reload SQLAlchemy modules).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]


def test_the_fixture_captures_app_code_that_schedules_jobs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import timedelta
        import jobsched
        from jobsched import Outcome
        from jobsched.pytest_plugin import DEFAULT_START

        sent = []

        @jobsched.handler("plugin_test_remind")
        def remind(job):
            sent.append((job.data, jobsched.now()))

        def app_code():  # knows nothing of tests
            jobsched.schedule_job("r-1", timedelta(hours=2), "plugin_test_remind", {"user": 1})

        def test_reminder(jobsched_sim):
            assert jobsched.get_scheduler() is jobsched_sim.scheduler
            assert jobsched.now() == DEFAULT_START
            app_code()
            log = jobsched_sim.advance(timedelta(days=1))
            assert log.outcomes() == [Outcome.SUCCEEDED]
            assert sent == [({"user": 1}, DEFAULT_START + timedelta(hours=2))]
            assert jobsched_sim.scheduler.store.describe() == "memory://"
        """
    )

    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_the_fixture_starts_at_the_documented_time() -> None:
    from datetime import UTC, datetime

    from jobsched.pytest_plugin import DEFAULT_START

    assert datetime(2030, 1, 1, tzinfo=UTC) == DEFAULT_START


def test_each_test_gets_a_fresh_scheduler(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import jobsched

        def test_one(jobsched_sim):
            jobsched.schedule_job("a", jobsched.now(), "h")

        def test_two(jobsched_sim):
            assert not jobsched.job_exists("a")
            assert jobsched_sim.scheduler.count_jobs() == 0
        """
    )

    pytester.runpytest().assert_outcomes(passed=2)


def test_the_previous_scheduler_is_restored_even_when_the_test_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import jobsched
        from jobsched import FakeClock, Scheduler
        from jobsched.pytest_plugin import DEFAULT_START

        BEFORE = Scheduler("memory://", clock=FakeClock(DEFAULT_START))
        jobsched.set_scheduler(BEFORE)

        def test_fails(jobsched_sim):
            assert jobsched.get_scheduler() is jobsched_sim.scheduler
            raise AssertionError("this test fails on purpose")

        def test_errors_in_teardown_of_its_own_fixture(jobsched_sim, request):
            def boom():
                raise RuntimeError("teardown fails on purpose")
            request.addfinalizer(boom)

        def test_the_scheduler_from_before_is_back():
            assert jobsched.get_scheduler() is BEFORE
        """
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["E   *AssertionError: this test fails on purpose"])


def test_the_marker_points_the_fixture_at_sqlite(pytester: pytest.Pytester) -> None:
    url = f"sqlite:///{pytester.path / 'app.db'}"
    pytester.makepyfile(
        f"""
        from datetime import timedelta
        import pytest
        import jobsched

        # A job left over from an earlier run (the migration is done here in the subprocess:
        # pytester would unload the modules it imports in this one).
        leftover = jobsched.Scheduler({url!r})
        leftover.migrate()
        leftover.schedule_job("from-an-earlier-run", timedelta(0), "h")
        leftover.close()

        @jobsched.handler("h")
        def h(job):
            pass

        @pytest.mark.jobsched(url={url!r})
        def test_on_sqlite(jobsched_sim):
            store = jobsched_sim.scheduler.store
            assert store.shared and store.describe() == {url!r}
            assert jobsched_sim.scheduler.count_jobs() == 0  # emptied for the test
            jobsched.schedule_job("a", jobsched.now(), "h")
            assert not jobsched_sim.scheduler.is_real
            assert not jobsched_sim.scheduler.run_jobs_remotely
            log = jobsched_sim.advance(60)
            assert log.outcomes() == [jobsched.Outcome.SUCCEEDED]
        """
    )

    pytester.runpytest_subprocess("--strict-markers").assert_outcomes(passed=1)


def test_the_marker_sets_the_start_and_the_tick(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import UTC, datetime, timedelta
        import pytest
        import jobsched

        @pytest.mark.jobsched(start=datetime(2031, 6, 1, 12, tzinfo=UTC), tick=timedelta(hours=1))
        def test_marked(jobsched_sim):
            assert jobsched.now() == datetime(2031, 6, 1, 12, tzinfo=UTC)
            assert jobsched_sim.tick == timedelta(hours=1)
            assert jobsched_sim.scheduler.store.describe() == "memory://"
        """
    )

    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_the_command_line_option_points_the_fixture_at_a_database(
    pytester: pytest.Pytester,
) -> None:
    url = f"sqlite:///{pytester.path / 'option.db'}"
    pytester.makepyfile(
        f"""
        def test_on_the_option_database(jobsched_sim):
            assert jobsched_sim.scheduler.store.describe() == {url!r}
        """
    )

    pytester.runpytest_subprocess("--jobsched-url", url).assert_outcomes(passed=1)


def test_the_marker_points_the_fixture_at_mariadb(
    pytester: pytest.Pytester, mysql_url: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        import jobsched

        @jobsched.handler("h")
        def h(job):
            pass

        @pytest.mark.jobsched(url={mysql_url!r})
        def test_on_mariadb(jobsched_sim):
            assert jobsched_sim.scheduler.store.shared
            assert jobsched_sim.scheduler.count_jobs() == 0
            jobsched.schedule_job("a", jobsched.now(), "h")
            assert jobsched_sim.advance(60).outcomes() == [jobsched.Outcome.SUCCEEDED]
        """
    )

    pytester.runpytest_subprocess("--strict-markers").assert_outcomes(passed=1)


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")

    result.stdout.fnmatch_lines(["@pytest.mark.jobsched(url=None, start=None, tick=None):*"])


def test_the_plugin_imports_no_database_library_driver_or_simulator() -> None:
    code = (
        "import sys, jobsched.pytest_plugin\n"
        "heavy = [m for m in ('jobsched.testing', 'jobsched.store.sql', 'sqlalchemy', 'alembic',"
        " 'pymysql', 'click') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
