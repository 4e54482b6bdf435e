"""RunReport's summary line (what run-due prints): it names what the pass took, how many of those
ran and why the others did not, and it adds up."""

from __future__ import annotations

import re

from jobsched import Outcome, RunReport


def test_the_summary_says_an_expired_job_did_not_run() -> None:
    report = RunReport(ran=3, succeeded=1, kept=1, retried=1, expired=1, duration=0.04)
    assert report.summary() == (
        "took 4 jobs (succeeded 1, kept 1, retried 1, expired 1): ran 3, "
        "1 expired without running in 0.04s"
    )


def test_the_summary_of_a_pass_that_took_nothing() -> None:
    assert RunReport().summary() == "took 0 jobs: ran 0 in 0.00s"


def test_a_job_failed_by_a_lost_last_attempt_is_failed_without_running() -> None:
    report = RunReport(ran=1, succeeded=1, failed=1, lost=1)
    assert report.summary() == (
        "took 2 jobs (succeeded 1, failed 1): ran 1, 1 failed without running; "
        "lost 1 (attempts of stopped runners) in 0.00s"
    )


def test_deferred_jobs_did_not_run_and_released_ones_were_not_taken() -> None:
    report = RunReport(ran=1, succeeded=1, deferred=2, released=3)
    assert report.summary() == (
        "took 3 jobs (succeeded 1, deferred 2): ran 1, 2 deferred without running; "
        "released 3 (given back unstarted) in 0.00s"
    )


def test_each_count_reads_back_as_ran_n_and_outcome_n() -> None:
    # The fault suite reads counts with r"\b{outcome} (\d+)".
    report = RunReport(
        ran=4, succeeded=1, kept=1, retried=1, failed=2, expired=1, deferred=1, lost=1, released=1
    )
    line = report.summary()
    for name in ["ran"] + [o.value for o in Outcome]:
        match = re.search(rf"\b{name} (\d+)", line)
        assert match, (name, line)
        assert int(match.group(1)) == getattr(report, name), (name, line)


def test_the_summary_adds_up() -> None:
    report = RunReport(
        ran=4, succeeded=1, kept=1, retried=1, failed=2, expired=1, deferred=1, lost=1, released=1
    )
    line = report.summary()
    taken = int(re.match(r"took (\d+) jobs", line).group(1))  # type: ignore[union-attr]
    not_run = sum(int(n) for n in re.findall(r"(\d+) [a-z]+ without running", line))
    assert taken == report.taken == report.ran + not_run
