"""How many jobs a pass claims at a time (``rules.next_batch_size``), and when a claimed job may
still start (``rules.start_by``): pure rules, checked without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobsched.rules import (
    BATCH_GROWTH,
    BATCH_SECONDS,
    FIRST_BATCH,
    MAX_BATCH,
    next_batch_size,
    start_by,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_the_first_batch_holds_at_least_twice_the_concurrency() -> None:
    assert FIRST_BATCH >= 2


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_the_batch_grows_eightfold_while_handlers_are_fast(concurrency: int) -> None:
    size = FIRST_BATCH
    sizes = []
    for _ in range(6):
        size = next_batch_size(
            size, handler_seconds=size * 0.00001, jobs=size, concurrency=concurrency
        )
        sizes.append(size)
    assert BATCH_GROWTH == 8
    assert sizes == [FIRST_BATCH * 8] + [MAX_BATCH] * 5  # 16, 128, the cap, and there it stays


def test_the_batch_never_grows_more_than_eightfold_at_once() -> None:
    assert next_batch_size(16, handler_seconds=0.0, jobs=16, concurrency=1) == 128
    assert next_batch_size(2, handler_seconds=0.0, jobs=2, concurrency=1) == 16


@pytest.mark.parametrize("per_job", [0.001, 0.003, 0.01, 0.02, 0.04])
@pytest.mark.parametrize("concurrency", [1, 2, 4, 8])
def test_slow_handlers_get_about_a_tenth_of_a_second_of_work_per_handler_slot(
    per_job: float, concurrency: int
) -> None:
    jobs = 50
    size = next_batch_size(MAX_BATCH, per_job * jobs, jobs, concurrency)
    work = BATCH_SECONDS * concurrency
    # As many jobs as fit in BATCH_SECONDS per slot (but at least twice the concurrency)...
    assert size * per_job <= work * 1.001 or size == 2 * concurrency
    # ... and no fewer.
    assert (size + 1) * per_job > work * 0.999


@pytest.mark.parametrize("concurrency", [1, 3, 16])
def test_a_batch_of_very_slow_handlers_is_twice_the_concurrency(concurrency: int) -> None:
    for per_job in (0.2, 5.0, 600.0):
        size = next_batch_size(MAX_BATCH, per_job * 10, 10, concurrency)
        assert size == 2 * concurrency


def test_a_batch_shrinks_at_once_when_handlers_turn_slow() -> None:
    assert next_batch_size(MAX_BATCH, handler_seconds=20 * 0.2, jobs=20, concurrency=1) == 2


def test_after_a_batch_where_no_handler_ran_the_size_stays() -> None:
    # Every job expired, was deferred or given back: nothing to learn from.
    assert next_batch_size(64, handler_seconds=0.0, jobs=0, concurrency=2) == 64
    assert next_batch_size(1, handler_seconds=0.0, jobs=0, concurrency=2) == 4
    assert next_batch_size(5000, handler_seconds=0.0, jobs=0, concurrency=2) == MAX_BATCH


@given(
    current=st.integers(1, 2 * MAX_BATCH),
    per_job=st.one_of(st.just(0.0), st.floats(1e-9, 3600)),  # monotonic clocks tick in ns
    jobs=st.integers(0, 2000),
    concurrency=st.integers(1, 1000),
)
def test_a_batch_is_never_below_twice_the_concurrency_nor_above_the_cap(
    current: int, per_job: float, jobs: int, concurrency: int
) -> None:
    size = next_batch_size(current, per_job * jobs, jobs, concurrency)
    floor = 2 * concurrency
    assert size >= floor
    assert size <= max(MAX_BATCH, floor)
    assert size <= max(BATCH_GROWTH * current, floor, min(current, MAX_BATCH))


# -- when a claimed job may still start -----------------------------------------------------------

LEASE = timedelta(seconds=30)


def may_start(now: datetime, confirmed_until: datetime, lease: timedelta) -> bool:
    return now < start_by(confirmed_until, lease)


def test_a_claim_confirmed_far_enough_ahead_may_start() -> None:
    assert may_start(NOW, NOW + LEASE, LEASE)
    assert may_start(NOW, NOW + LEASE / 3 + timedelta(microseconds=1), LEASE)


def test_a_claim_within_a_third_of_its_lease_of_its_end_may_not_start() -> None:
    # A third of the lease is a heartbeat's interval: a claim the heartbeat could not renew
    # in time may be taken over before the handler's start mark is out.
    assert not may_start(NOW, NOW + LEASE / 3, LEASE)
    assert not may_start(NOW, NOW + timedelta(seconds=1), LEASE)


def test_a_claim_that_ran_out_may_not_start() -> None:
    assert not may_start(NOW, NOW, LEASE)
    assert not may_start(NOW, NOW - timedelta(seconds=1), LEASE)
