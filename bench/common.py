"""What every implementation of the benchmark shares: the no-op handler and its run log, job ids,
payloads and times, peak-RSS readings, and the exactly-once tally.

Imported by the parent and by every child process; it imports nothing beyond the standard library,
so the floors' children stay free of SQLAlchemy.
"""

from __future__ import annotations

import json
import resource
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

#: Every job id a handler ran in this process, in order (one entry per run; ``list.append`` is
#: atomic, so handlers running in threads can share it). The exactly-once checks count it.
RUNS: list[str] = []
#: Set by ``noop`` once ``len(RUNS)`` reaches ``EXPECTED[0]`` (peers' passes wait on it).
ALL_RAN = threading.Event()
EXPECTED = [0]

#: The handler name every implementation registers its no-op handler under.
HANDLER = "bench_noop"
#: Jobs the floors claim per transaction.
FLOOR_BATCH = 100


def noop(job_id: str, data: Any = None) -> None:
    """The no-op handler of every implementation: it only records that ``job_id`` ran."""
    RUNS.append(job_id)
    if EXPECTED[0] and len(RUNS) >= EXPECTED[0]:
        ALL_RAN.set()


def expect_runs(count: int) -> None:
    EXPECTED[0] = count
    if count and len(RUNS) >= count:
        ALL_RAN.set()


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:07d}" for i in range(count)]


def payload(i: int) -> dict[str, Any]:
    return {"n": i}


def payload_json(i: int) -> str:
    return json.dumps(payload(i))


def utcnow() -> datetime:
    return datetime.now(UTC)


def future_start(i: int, now: datetime | None = None) -> datetime:
    """When job ``i`` of a scheduling workload (W1, W1b, W6) is due: tomorrow, a second apart."""
    return (now or utcnow()) + timedelta(days=1, seconds=i)


#: Due jobs start this long before the pass; future jobs of W3 spread over the next year.
DUE_AGO = timedelta(seconds=1)
FUTURE_SPAN = timedelta(days=365)


def seed_start(k: int, seeds: int, now: datetime | None = None) -> datetime:
    """Start of W3's future seed ``k`` of ``seeds``: spread over the next year from tomorrow."""
    return (now or utcnow()) + timedelta(days=1) + FUTURE_SPAN * (k / max(seeds, 1))


def split_future(future: int) -> tuple[int, int]:
    """W3's future rows as ``seeds * factor``: a few seeds written through the implementation's own
    API, copied ``factor`` times over by SQL (1,000,000 = 1,000 seeds x 1,000)."""
    seeds = min(1000, max(1, future // 100))
    return seeds, max(1, future // seeds)


# -- memory -------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0), so the peak read after a
    pass is the pass's own. False if the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB (VmHWM, else ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# -- exactly once -------------------------------------------------------------------------------


def tally(runs: Iterable[str], expected: Iterable[str]) -> dict[str, int]:
    """How the recorded runs compare with the jobs that had to run exactly once."""
    counts = Counter(runs)
    wanted = set(expected)
    return {
        "ran": sum(counts.values()),
        "duplicates": sum(1 for job, n in counts.items() if job in wanted and n > 1),
        "extra_runs": sum(n - 1 for job, n in counts.items() if job in wanted and n > 1),
        "missing": sum(1 for job in wanted if job not in counts),
        "unexpected": sum(n for job, n in counts.items() if job not in wanted),
    }


# -- MariaDB URLs -------------------------------------------------------------------------------


def mysql_params(url: str) -> dict[str, Any]:
    """PyMySQL ``connect`` arguments for a ``mysql+pymysql://user:pw@host:port/db`` URL."""
    parts = urlsplit(url)
    params: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "charset": "utf8mb4",
    }
    database = parts.path.lstrip("/")
    if database:
        params["database"] = database
    return params


def mysql_database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")
