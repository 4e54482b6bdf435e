"""How much a pass holds unstarted: its claims adapt to how long handlers take, so a pass over
slow handlers never sits on many claimed jobs that other runners could be running."""

from __future__ import annotations

import time
from datetime import timedelta

from jobsched import Job, JobState, Scheduler
from jobsched.rules import FIRST_BATCH

#: Seconds each handler takes: slow enough that a batch is the smallest one allowed.
HANDLER_SECONDS = 0.1


def test_after_the_first_batch_a_pass_over_slow_handlers_holds_few_unstarted_claims(
    scheduler: Scheduler,
) -> None:
    waiting: dict[str, int] = {}

    def slow(job: Job) -> None:
        time.sleep(0.06)  # the pass's writes of the job before have gone out by now
        waiting[job.job_id] = sum(
            1
            for info in scheduler.list_job_infos()
            if info.state is JobState.CLAIMED and info.job.job_id != job.job_id
        )
        time.sleep(HANDLER_SECONDS - 0.06)

    scheduler.registry.register("slow", slow)
    count = FIRST_BATCH + 5
    for i in range(count):
        scheduler.schedule_job(f"job-{i:02d}", timedelta(seconds=i - count), "slow")

    report = scheduler.run_due_jobs()

    assert report.succeeded == count
    # The first batch is taken before any handler ran...
    assert waiting["job-00"] == FIRST_BATCH - 1
    # ... then about 0.1 s of handler time per handler slot, and at least twice the
    # concurrency: two jobs at a time here, the one running and one waiting (0.2 s of work).
    later = {job_id: n for job_id, n in waiting.items() if int(job_id[4:]) >= FIRST_BATCH}
    assert max(later.values()) <= 1, later
