"""Fifty callers schedule one job id at the same moment: one row, and no error reaches a caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from jobsched import Job, Mode, Scheduler

pytestmark = pytest.mark.faults

CALLERS = 50


@pytest.fixture
def schedulers(backend: str, request: pytest.FixtureRequest) -> Iterator[list[Scheduler]]:
    """One scheduler (own engine, own connections) per caller; one shared one in memory."""
    if backend == "memory":
        shared = Scheduler("memory://")
        yield [shared] * CALLERS
        shared.close()
        return
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "mysql_url")
    made = [Scheduler(url) for _ in range(CALLERS)]
    for scheduler in made:
        scheduler.count_jobs()  # connected and schema checked before the race starts
    yield made
    for scheduler in made:
        scheduler.close()


@pytest.mark.parametrize("mode", [Mode.IGNORE_IF_EXISTS, Mode.RESCHEDULE], ids=lambda m: m.value)
def test_fifty_callers_scheduling_one_id_at_once_make_one_row(
    schedulers: list[Scheduler], mode: Mode
) -> None:
    barrier = threading.Barrier(CALLERS)
    returned: list[Job] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        barrier.wait()
        try:
            job = schedulers[i].schedule_job(
                "the-one", timedelta(hours=1), "fault.work", {"caller": i}, mode=mode
            )
        except BaseException as e:
            with lock:
                errors.append(e)
        else:
            with lock:
                returned.append(job)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == [], f"{len(errors)} caller(s) got an error, first: {errors[0]!r}"
    assert len(returned) == CALLERS
    assert schedulers[0].count_jobs() == 1
    stored = schedulers[0].get_job("the-one")
    assert stored is not None
    assert stored.data["caller"] in range(CALLERS)
    if mode is Mode.IGNORE_IF_EXISTS:
        # Everyone is told about the one job that was created first, exactly as stored.
        assert {job.data["caller"] for job in returned} == {stored.data["caller"]}
