"""A small shop app's jobs, used by `make demo`: import it with `jobsched --app shop ...`."""

from __future__ import annotations

from datetime import timedelta

import jobsched


@jobsched.handler("send_welcome_email", timeout=30)
def send_welcome_email(job: jobsched.Job) -> None:
    print(f"  {job.job_id}: welcome email sent to {job.data['email']}")


@jobsched.handler("sync_inventory", timeout=60)
def sync_inventory(job: jobsched.Job) -> None:
    # The warehouse API is down today: the job is retried an hour later, twice at most.
    raise ConnectionError(f"warehouse {job.data['warehouse']} did not answer")


@jobsched.handler("send_flash_sale_reminder")
def send_flash_sale_reminder(job: jobsched.Job) -> None:
    print(f"  {job.job_id}: reminder sent to {job.data['email']}")


@jobsched.handler("poll_payment")
def poll_payment(job: jobsched.Job) -> bool:
    """Checks a payment every 10 minutes until it settles: it reschedules itself."""
    print(f"  {job.job_id}: payment still pending; checking again in 10 minutes")
    jobsched.schedule_job(
        job.job_id, timedelta(minutes=10), job.handler, job.data, mode=jobsched.Mode.RESCHEDULE
    )
    return False
