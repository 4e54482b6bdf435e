"""The worked example of docs/testing.md: the example app's reminders, simulated in virtual time.

The app code (examples/reminders.py) is used unchanged: it calls ``jobsched.schedule_job`` and
``jobsched.now()``, and the ``jobsched_sim`` fixture makes those act on a simulated scheduler.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

import jobsched
from jobsched import Outcome
from jobsched.pytest_plugin import DEFAULT_START
from jobsched.testing import Simulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example_app() -> ModuleType:
    # As `jobsched --app reminders` finds it: the example app's directory on the path.
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module("reminders")


reminders = _example_app()


@pytest.fixture
def mailer() -> Iterator[reminders.Mailer]:
    reminders.mailer.clear()
    yield reminders.mailer
    reminders.mailer.clear()


def at(hours: float) -> datetime:
    """``hours`` after the simulation's start."""
    return DEFAULT_START + timedelta(hours=hours)


def test_the_reminder_is_sent_24_hours_before_the_event(
    jobsched_sim: Simulator, mailer: reminders.Mailer
) -> None:
    event_start = at(72)
    reminders.sign_up(42, "launch-party", event_start)

    log = jobsched_sim.run_until(event_start)

    assert [(e.at, e.job_id, e.attempt, e.outcome) for e in log] == [
        (at(48), "reminder-launch-party-42", 1, Outcome.SUCCEEDED)
    ]
    assert [(m.to, m.sent_at) for m in mailer.sent] == [("user-42@example.com", at(48))]
    assert not jobsched.job_exists("reminder-launch-party-42")


def test_a_reminder_that_fails_once_is_retried_an_hour_later(
    jobsched_sim: Simulator, mailer: reminders.Mailer
) -> None:
    event_start = at(72)
    reminders.sign_up(42, "launch-party", event_start)
    mailer.down_until = at(48.5)  # down when the reminder is due, back half an hour later

    log = jobsched_sim.run_until_idle()

    assert log.idle
    assert [(e.at, e.attempt, e.outcome) for e in log] == [
        (at(48), 1, Outcome.RETRIED),
        (at(49), 2, Outcome.SUCCEEDED),
    ]
    assert "MailServiceDown" in (log[0].error or "")
    assert [m.sent_at for m in mailer.sent] == [at(49)]


def test_a_reminder_whose_retry_comes_after_the_event_expires_unsent(
    jobsched_sim: Simulator, mailer: reminders.Mailer
) -> None:
    # A late sign-up: the event starts in 45 minutes, so the reminder is due at once.
    event_start = at(0.75)
    reminders.sign_up(7, "standup", event_start)
    mailer.down_until = at(5)

    log = jobsched_sim.run_until_idle()

    # Fails at the first tick; its retry an hour later finds the event started: expired.
    assert log.idle
    assert [(e.at, e.attempt, e.outcome) for e in log] == [
        (at(0) + timedelta(minutes=1), 1, Outcome.RETRIED),
        (at(1) + timedelta(minutes=1), 1, Outcome.EXPIRED),
    ]
    assert mailer.sent == []


def test_a_reminder_gives_up_after_three_attempts(
    jobsched_sim: Simulator, mailer: reminders.Mailer
) -> None:
    event_start = at(26.5)  # reminder due at 2.5 h
    reminders.sign_up(7, "standup", event_start)
    mailer.down_until = at(30)  # down until after the event

    log = jobsched_sim.run_until(at(48))

    assert [(e.at, e.attempt, e.outcome) for e in log] == [
        (at(2.5), 1, Outcome.RETRIED),
        (at(3.5), 2, Outcome.RETRIED),
        (at(4.5), 3, Outcome.FAILED),
    ]
    assert mailer.sent == []
    assert not jobsched.job_exists(reminders.reminder_id(7, "standup"))


def test_moving_the_event_moves_its_reminder(
    jobsched_sim: Simulator, mailer: reminders.Mailer
) -> None:
    reminders.sign_up(42, "launch-party", at(72))
    jobsched_sim.run_until(at(24))
    reminders.sign_up(42, "launch-party", at(96))  # the party moved a day later

    jobsched_sim.run_until(at(96))

    assert [m.sent_at for m in mailer.sent] == [at(72)]


def test_a_cancelled_reminder_is_not_sent(
    jobsched_sim: Simulator, mailer: reminders.Mailer
) -> None:
    reminders.sign_up(42, "launch-party", at(72))
    assert reminders.cancel(42, "launch-party")

    log = jobsched_sim.run_until_idle()

    assert log.idle
    assert list(log) == []
    assert mailer.sent == []
