"""A handler never starts on a claim whose lease may have run out (issue 12, invariant 7).

A runner starts a handler only while the claim's end, as the database last confirmed it (at the
claim, or at the last heartbeat), is more than a third of the lease away: the claim cannot run
out, and another runner take the job over, before the start mark is out. A runner whose
heartbeat could not renew its claims (the database was locked or away, the runner was frozen)
gives the jobs it had not started back instead (RELEASED: no attempt spent). The "fault.work"
claims last 2 s, so the margin is 0.67 s.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import storeops

from faults.conftest import FaultDb, Run, wait_until

pytestmark = pytest.mark.faults

#: Claim length of "fault.work" jobs, in seconds.
CLAIM = 2.0


def starts_in_file(path: Path) -> list[tuple[str, int, int]]:
    """The handler starts a ``"file"`` job data recorded: (job id, attempt, pid)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(job, int(attempt), int(pid)) for job, attempt, pid in map(str.split, lines)]


def assert_never_two_at_once(runs: list[Run], *, except_for: tuple[str, ...] = ()) -> None:
    """No job's runs overlap in time across processes (a run without an end never ended)."""
    by_job: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for run in runs:
        if run.phase != "start" or run.job_id in except_for:
            continue
        end = next(
            (
                r.at
                for r in runs
                if r.phase == "end"
                and (r.job_id, r.attempt, r.pid) == (run.job_id, run.attempt, run.pid)
            ),
            float("inf"),
        )
        by_job[run.job_id].append((run.at, end, run.pid))
    for job_id, intervals in by_job.items():
        intervals.sort()
        for (_, end, pid), (start, _, other) in itertools.pairwise(intervals):
            assert start >= end, f"{job_id} ran in {pid} and {other} at once"


def test_a_runner_cut_off_from_its_database_gives_back_the_jobs_whose_claims_near_their_end(
    fdb: FaultDb, tmp_path: Path
) -> None:
    started = tmp_path / "started.txt"
    gate = tmp_path / "gate"
    # The first job runs until the test opens the gate; the others wait their turn. Each
    # handler writes its start to a file (the database is locked while they would start).
    first = {"wait_for": str(gate), "file": str(started), "no_record": True}
    ids = fdb.add(5, datas=[first] + [{"file": str(started)}] * 4, prefix="margin")
    runner = fdb.runner()
    wait_until(lambda: starts_in_file(started), 30, "the first handler to start")
    wait_until(lambda: fdb.row(ids[0]).started_at is not None, 5, "its start mark")
    # Lock the database just after a heartbeat renewed the waiting claims: they stay
    # confirmed until 2 s from now at most, and cannot be renewed while the lock lasts.
    beat = fdb.row(ids[1]).claimed_until
    wait_until(lambda: fdb.row(ids[1]).claimed_until != beat, 5, "a heartbeat", step=0.002)
    with fdb.engine.connect() as conn:
        conn.begin()
        if fdb.backend == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the whole file: nobody else can write
        else:
            conn.exec_driver_sql("SELECT job_id FROM jobs FOR UPDATE")  # every row
        locked = time.monotonic()
        # When the first handler returns, 1.6 s later, less than the margin (0.67 s) is left
        # of the waiting claims: each must be given back, not started.
        time.sleep(1.6)
        gate.touch()
        wait_until(
            lambda: (
                len(starts_in_file(started)) > 1
                or runner.stderr.count("given back unstarted: its claim may run out") == 4
            ),
            10,
            "the waiting jobs to be decided",
        )
        print(f"{fdb.backend}: decided {time.monotonic() - locked:.2f}s after the lock")
        conn.rollback()
    runner.expect(0)

    assert starts_in_file(started) == [(ids[0], 1, runner.pid)], (
        "a handler started on a claim near its end"
    )
    assert (runner.summary("succeeded"), runner.summary("released")) == (1, 4)
    rows = fdb.rows()
    assert sorted(rows) == ids[1:]
    assert {(r.claim_token, r.claimed_until, r.started_at, r.attempts) for r in rows.values()} == {
        (None, None, None, 0)
    }
    # Given back, due at once: the next pass runs each of them once.
    after = fdb.run_pass()
    assert after.summary("succeeded") == 4
    assert fdb.starts() == {job_id: 1 for job_id in ids[1:]}
    assert_never_two_at_once(fdb.runs())


def test_a_runner_frozen_past_its_claims_starts_none_of_the_jobs_taken_over_meanwhile(
    fdb: FaultDb,
) -> None:
    # The first job's first attempt runs 1.5 s in the runner we freeze; the others wait for it.
    ids = fdb.add(5, datas=[{"by_attempt": {"1": {"sleep": 1.5}}}] + [{}] * 4, prefix="frozen")
    frozen = fdb.runner()
    wait_until(lambda: fdb.count_runs("start"), 30, "the first handler to start")
    # Freeze it just after a heartbeat committed (no transaction of its own open), past its
    # claims: another runner takes every job over meanwhile and runs it.
    beat = fdb.row(ids[1]).claimed_until
    wait_until(lambda: fdb.row(ids[1]).claimed_until != beat, 5, "a heartbeat", step=0.002)
    frozen.signal(signal.SIGSTOP)
    try:
        until = fdb.row(ids[1]).claimed_until
        wait_until(lambda: datetime.now(UTC) > until, 5, "the frozen runner's claims to run out")
        taker = fdb.run_pass()
        assert (taker.summary("lost"), taker.summary("succeeded")) == (1, 5)
    finally:
        frozen.signal(signal.SIGCONT)
    frozen.expect(0)

    # Woken up, the frozen runner's first handler finishes (its outcome loses to the taker's);
    # it starts none of the jobs it still thought it held.
    frozen_starts = [r.job_id for r in fdb.runs() if r.pid == frozen.pid and r.phase == "start"]
    assert frozen_starts == [ids[0]]
    assert frozen.summary("released") == 4
    assert fdb.count_jobs() == 0
    assert fdb.starts() == {ids[0]: 2} | {job_id: 1 for job_id in ids[1:]}
    # The frozen handler of the first job overlapped the taker's run of it (at least once: the
    # documented cost of a runner frozen past its claim); no other job ran twice at once.
    assert_never_two_at_once(fdb.runs(), except_for=(ids[0],))


def test_a_suspect_whose_start_mark_waited_past_its_claim_is_not_started(
    fdb: FaultDb, tmp_path: Path
) -> None:
    # Two jobs a dead runner held unstarted, its claims run out: the next runner runs each
    # alone, after writing its start mark (with a renewed claim) before the handler. If that
    # write waits on the database for longer than the claim lasts, the claim it renews has run
    # out (or nearly) when it commits: the handler must not start on it, as another runner can
    # take the job over at once.
    started = tmp_path / "started.txt"
    gate = tmp_path / "gate"
    first = {"wait_for": str(gate), "file": str(started), "no_record": True}
    ids = fdb.add(2, datas=[first, {"sleep": 1.0, "file": str(started)}], prefix="suspect")
    dead = storeops.claim(
        fdb.scheduler.store,
        datetime.now(UTC) - timedelta(seconds=10),
        runner="dead-host:1",
        lease=timedelta(seconds=CLAIM),
    )
    assert [claim.job.job_id for claim in dead] == ids  # ran out 8 s ago
    runner = fdb.runner()
    wait_until(lambda: starts_in_file(started), 30, "the first suspect to start")
    with fdb.engine.connect() as conn:
        conn.begin()
        if fdb.backend == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the whole file: nobody else can write
        else:
            conn.exec_driver_sql("SELECT * FROM jobs WHERE job_id = %s FOR UPDATE", (ids[1],))
        gate.touch()  # the first returns; the second's start mark waits on our lock
        time.sleep(CLAIM + 0.6)
        conn.rollback()
    wait_until(
        lambda: fdb.row(ids[1]).started_at is not None or runner.poll() is not None,
        10,
        "the start mark",
    )
    taken = storeops.claim(
        fdb.scheduler.store,
        datetime.now(UTC),
        runner="other-host:2",
        lease=timedelta(seconds=CLAIM),
    )
    runner.expect(0)
    in_runner = [job for job, _, pid in starts_in_file(started) if pid == runner.pid]
    assert in_runner == [ids[0]], (
        f"the second suspect started on a claim that had run out (another runner took it over "
        f"while it ran: {[c.job.job_id for c in taken]})"
    )
