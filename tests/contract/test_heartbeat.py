"""The heartbeat's write (``Store.heartbeat``): it extends a claim only while the row still
carries that claim's token. A stale runner (paused past its claim, cut off from the database)
must never extend a claim it lost: it would keep a job nobody runs unclaimable, or stretch the
claim of the runner that took the job over."""

from __future__ import annotations

from datetime import timedelta

import storeops

from jobsched import FakeClock, Scheduler
from jobsched.model import OpKind
from jobsched.store.base import Claim, Op

MINUTE = timedelta(minutes=1)


def claimed_until(scheduler: Scheduler, job_id: str) -> object:
    info = scheduler.get_job_info(job_id)
    assert info is not None
    return info.claimed_until


def claim_one(scheduler: Scheduler, clock: FakeClock, runner: str) -> Claim:
    [claim] = storeops.claim(scheduler.store, clock.now(), runner=runner, lease=MINUTE, limit=1)
    return claim


def test_a_heartbeat_extends_a_claim_its_runner_still_holds(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    claim = claim_one(scheduler, clock, "r1")
    clock.advance(timedelta(seconds=40))
    until = clock.now() + MINUTE
    assert scheduler.store.heartbeat([(claim, until)]) == {"a"}
    assert claimed_until(scheduler, "a") == until
    # Extended: a pass when the first claim would have run out finds nothing to take.
    clock.advance(timedelta(seconds=30))
    assert storeops.claim(scheduler.store, clock.now(), runner="r2") == []


def test_a_heartbeat_does_not_extend_a_claim_another_runner_took_over(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    stale = claim_one(scheduler, clock, "r1")
    clock.advance(2 * MINUTE)  # r1 paused past its claim: r2 takes the job over
    taker = claim_one(scheduler, clock, "r2")
    assert taker.taken_from == "r1"

    assert scheduler.store.heartbeat([(stale, clock.now() + 10 * MINUTE)]) == set()
    info = scheduler.get_job_info("a")
    assert info is not None
    assert (info.claimed_by, info.claimed_until) == ("r2", taker.until)


def test_a_heartbeat_does_not_claim_a_job_given_back(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    stale = claim_one(scheduler, clock, "r1")
    clock.advance(2 * MINUTE)
    taker = claim_one(scheduler, clock, "r2")
    assert scheduler.store.apply([Op(OpKind.RELEASE, taker)]) == [True]  # r2 stopped (SIGTERM)

    assert scheduler.store.heartbeat([(stale, clock.now() + MINUTE)]) == set()
    assert claimed_until(scheduler, "a") is None
    # Nobody holds it, so the next pass takes it at once.
    assert [c.job.job_id for c in storeops.claim(scheduler.store, clock.now(), runner="r3")] == [
        "a"
    ]


def test_a_heartbeat_does_not_claim_a_job_whose_attempt_ended(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h")
    stale = claim_one(scheduler, clock, "r1")
    clock.advance(2 * MINUTE)
    taker = claim_one(scheduler, clock, "r2")
    kept = Op(OpKind.KEEP, taker, attempts=1)  # r2 ran it; its handler kept the job
    assert scheduler.store.apply([kept]) == [True]

    assert scheduler.store.heartbeat([(stale, clock.now() + MINUTE)]) == set()
    assert claimed_until(scheduler, "a") is None
    assert len(storeops.claim(scheduler.store, clock.now(), runner="r3")) == 1


def test_a_heartbeat_does_not_claim_a_job_removed_and_scheduled_anew(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    scheduler.schedule_job("a", timedelta(0), "h", "old")
    stale = claim_one(scheduler, clock, "r1")
    scheduler.remove_job("a")
    scheduler.schedule_job("a", timedelta(0), "h", "new")

    assert scheduler.store.heartbeat([(stale, clock.now() + MINUTE)]) == set()
    assert claimed_until(scheduler, "a") is None


def test_a_heartbeat_extends_only_the_claims_still_held_among_those_it_beats_for(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    for job_id in ("a", "b", "c", "d"):
        scheduler.schedule_job(job_id, timedelta(0), "h")
    held = storeops.claim(scheduler.store, clock.now(), runner="r1", lease=MINUTE)
    claims = {claim.job.job_id: claim for claim in held}
    assert sorted(claims) == ["a", "b", "c", "d"]
    # b is given back and taken by r2; d is removed by the app.
    assert scheduler.store.apply([Op(OpKind.RELEASE, claims["b"])]) == [True]
    [other] = storeops.claim(scheduler.store, clock.now(), runner="r2", lease=MINUTE)
    assert other.job.job_id == "b"
    scheduler.remove_job("d")

    clock.advance(timedelta(seconds=20))
    until = clock.now() + MINUTE
    extended = scheduler.store.heartbeat([(claim, until) for claim in held])
    assert extended == {"a", "c"}
    assert claimed_until(scheduler, "a") == claimed_until(scheduler, "c") == until
    assert claimed_until(scheduler, "b") == other.until
