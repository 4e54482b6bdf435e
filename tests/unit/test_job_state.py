"""Where a job stands at a given time: the pure rule behind show, list and JobInfo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobsched import Job, JobState
from jobsched.rules import DEFERRED_PREFIX, job_state

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DEFERRED = f"{DEFERRED_PREFIX}'h' (is the module that defines it imported?)"


def state(
    *,
    start: datetime = NOW,
    last_error: str | None = None,
    claimed_until: datetime | None = None,
    started_at: datetime | None = None,
) -> JobState:
    job = Job("a", "h", None, start, last_error=last_error)
    return job_state(job, claimed_until=claimed_until, started_at=started_at, now=NOW)


def test_a_job_whose_start_is_to_come_is_scheduled() -> None:
    assert state(start=NOW + MINUTE) is JobState.SCHEDULED


def test_a_job_whose_start_has_come_is_due() -> None:
    assert state(start=NOW) is JobState.DUE
    assert state(start=NOW - MINUTE) is JobState.DUE


def test_a_held_claim_not_started_is_claimed() -> None:
    assert state(claimed_until=NOW + MINUTE) is JobState.CLAIMED


def test_a_held_claim_whose_handler_started_is_running() -> None:
    assert state(claimed_until=NOW + MINUTE, started_at=NOW - MINUTE) is JobState.RUNNING


def test_a_claim_that_ran_out_after_its_handler_started_is_lost() -> None:
    assert state(claimed_until=NOW, started_at=NOW - MINUTE) is JobState.LOST


def test_a_claim_that_ran_out_before_its_handler_started_no_longer_counts() -> None:
    assert state(claimed_until=NOW - MINUTE) is JobState.DUE
    assert state(start=NOW + MINUTE, claimed_until=NOW - MINUTE) is JobState.SCHEDULED


@pytest.mark.parametrize("start", [NOW - MINUTE, NOW + timedelta(hours=1)])
def test_a_job_deferred_for_want_of_a_handler_is_deferred_whenever_it_starts(
    start: datetime,
) -> None:
    assert state(start=start, last_error=DEFERRED) is JobState.DEFERRED


def test_a_claim_outranks_a_deferral() -> None:
    assert state(last_error=DEFERRED, claimed_until=NOW + MINUTE) is JobState.CLAIMED


def test_another_last_error_does_not_make_a_job_deferred() -> None:
    assert state(last_error="RuntimeError: no handler registered for 'h'") is JobState.DUE
