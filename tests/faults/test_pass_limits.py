"""What bounds a pass (--max-seconds), and what a pass survives (a megabyte error message)."""

from __future__ import annotations

import time

import pytest

from faults.apps.recorder import MEGABYTE_OF_EMOJI
from faults.conftest import FaultDb
from jobsched.rules import MAX_ERROR_BYTES

pytestmark = pytest.mark.faults


def test_max_seconds_stops_claiming_new_jobs(fdb: FaultDb) -> None:
    ids = fdb.add(40, {"sleep": 0.1})
    began = time.monotonic()
    runner = fdb.run_pass("--max-seconds", 1)
    took = time.monotonic() - began

    ran = runner.summary("succeeded")
    assert 3 <= ran < 15, runner.stdout
    assert took < 4, f"the pass took {took:.1f}s"
    assert fdb.count_runs("start") == ran
    rows = fdb.rows()
    assert sorted(rows) == ids[ran:]  # oldest first; the rest left due and unclaimed
    assert {(r.claim_token, r.attempts) for r in rows.values()} == {(None, 0)}


def test_a_megabyte_error_message_full_of_emoji_is_stored_cut_and_the_pass_goes_on(
    fdb: FaultDb,
) -> None:
    ids = fdb.add(3, datas=[{}, {"fail": "1MB-emoji"}, {}])
    runner = fdb.run_pass()

    assert (runner.summary("succeeded"), runner.summary("retried")) == (2, 1)
    [row] = fdb.rows().values()
    assert row.job_id == ids[1]
    assert row.attempts == 1
    error = row.last_error
    assert len(error.encode("utf-8")) <= MAX_ERROR_BYTES
    assert error.startswith("RuntimeError: " + MEGABYTE_OF_EMOJI[:100])
    assert error.endswith(" [cut]")
    assert "\ufffd" not in error  # not cut inside a character
    assert fdb.scheduler.get_job(ids[1]).last_error == error
