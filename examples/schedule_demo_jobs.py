"""Schedules the demo's jobs, all due now, on the database `jobsched` uses (the SQLite default).

RESCHEDULE mode replaces the jobs of an earlier run, so `make demo` can run again and again.
"""

from __future__ import annotations

from datetime import timedelta

import jobsched
from jobsched import Mode


def main() -> None:
    now = jobsched.now()
    jobs = [
        jobsched.JobSpec("welcome-ada", now, "send_welcome_email", {"email": "ada@example.com"}),
        jobsched.JobSpec("sync-berlin", now, "sync_inventory", {"warehouse": "berlin"}),
        jobsched.JobSpec(
            "flash-sale-reminder-7",
            now - timedelta(hours=2),
            "send_flash_sale_reminder",
            {"email": "grace@example.com"},
            expiry=now - timedelta(hours=1),  # the sale is over: it must not be sent now
        ),
        jobsched.JobSpec("poll-payment-99", now, "poll_payment", {"payment": 99}),
    ]
    count = jobsched.schedule_jobs(jobs, mode=Mode.RESCHEDULE)
    print(f"scheduled {count} jobs")


if __name__ == "__main__":
    main()
