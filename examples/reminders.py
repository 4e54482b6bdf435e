"""An events app's reminders: the worked example of docs/testing.md and of the README.

A user who signs up for an event gets a reminder 24 hours before it starts. If the mail service
is down, jobsched retries the reminder an hour later (up to three attempts in all), and the
reminder is never sent once the event has started: its job expires at the event's start.

The web app calls ``sign_up``; cron runs ``jobsched --app reminders run-due`` every minute.
tests/test_reminder_example.py simulates it all in virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jobsched
from jobsched import Mode

#: How long before the event its reminder goes out.
REMINDER_LEAD = timedelta(hours=24)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    sent_at: datetime


class MailServiceDown(ConnectionError):
    """The mail service did not answer (the reminder is retried an hour later)."""


class Mailer:
    """Stands in for the app's mail service: it keeps what it sent, and can be down for a while.

    It reads the time from ``jobsched.now()``, so in a simulation it lives in virtual time.
    """

    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.down_until: datetime | None = None

    def clear(self) -> None:
        self.sent.clear()
        self.down_until = None

    def send(self, to: str, subject: str) -> None:
        now = jobsched.now()
        if self.down_until is not None and now < self.down_until:
            raise MailServiceDown(f"the mail service is down until {self.down_until.isoformat()}")
        self.sent.append(Mail(to, subject, now))


mailer = Mailer()


def reminder_id(user: int, event: str) -> str:
    return f"reminder-{event}-{user}"


def sign_up(user: int, event: str, event_start: datetime) -> jobsched.Job:
    """The web app's side: schedule (or move, if the event moved) the user's reminder."""
    return jobsched.schedule_job(
        reminder_id(user, event),
        event_start - REMINDER_LEAD,
        "send_reminder",
        {"user": user, "event": event, "starts": event_start.isoformat()},
        expiry=event_start,  # a reminder after the event has started is worse than none
        mode=Mode.RESCHEDULE,
    )


def cancel(user: int, event: str) -> bool:
    """The user cancelled: no reminder. True if one was still to be sent."""
    return jobsched.remove_job(reminder_id(user, event))


@jobsched.handler("send_reminder", timeout=timedelta(minutes=2))
def send_reminder(job: jobsched.Job) -> None:
    """Send the reminder; an exception (the mail service is down) has it retried an hour later."""
    mailer.send(
        f"user-{job.data['user']}@example.com",
        f"Reminder: {job.data['event']} starts at {job.data['starts']}",
    )
