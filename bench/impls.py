"""Which implementations run on which backend, and where each lives (imported only when used)."""

from __future__ import annotations

import importlib

from bench.base import Implementation

#: (backend, name) -> "module:Class", in the order the tables show them: floor, peer, jobsched.
IMPLEMENTATIONS: dict[tuple[str, str], str] = {
    ("mariadb", "floor"): "bench.floor_mariadb:MariaDBFloor",
    ("mariadb", "apscheduler"): "bench.with_apscheduler:APSchedulerImpl",
    ("mariadb", "jobsched"): "bench.with_jobsched:JobschedMariaDB",
    ("mariadb", "jobsched-nohistory"): "bench.with_jobsched:JobschedMariaDBNoHistory",
    ("mariadb", "jobsched-run-due"): "bench.with_jobsched:JobschedMariaDBRunDue",
    ("mariadb", "jobsched-worker"): "bench.with_jobsched:JobschedMariaDBWorker",
    ("sqlite", "floor"): "bench.floor_sqlite:SQLiteFloor",
    ("sqlite", "huey"): "bench.with_huey:HueyImpl",
    ("sqlite", "jobsched"): "bench.with_jobsched:JobschedSQLite",
    ("sqlite", "jobsched-nohistory"): "bench.with_jobsched:JobschedSQLiteNoHistory",
    ("sqlite", "jobsched-run-due"): "bench.with_jobsched:JobschedSQLiteRunDue",
    ("sqlite", "jobsched-worker"): "bench.with_jobsched:JobschedSQLiteWorker",
}
#: The simulated year (W5, W5b) on the memory backend: implementation -> history on.
MEMORY: dict[str, bool] = {"jobsched": True, "jobsched-nohistory": False}
#: The peer each backend is compared with.
PEERS = {"mariadb": "apscheduler", "sqlite": "huey"}
LABELS = {
    "floor": "raw floor",
    "apscheduler": "APScheduler",
    "huey": "Huey",
    "jobsched": "jobsched",
    "jobsched-nohistory": "jobsched, history off",
    "jobsched-run-due": "jobsched run-due",
    "jobsched-worker": "jobsched worker",
}
BACKEND_LABELS = {"mariadb": "MariaDB", "sqlite": "SQLite file", "memory": "memory"}


def implementation(backend: str, name: str, target: str) -> Implementation:
    module, _, cls = IMPLEMENTATIONS[(backend, name)].partition(":")
    factory = getattr(importlib.import_module(module), cls)
    impl: Implementation = factory(target)
    return impl


def workloads_of(backend: str, name: str) -> frozenset[str]:
    module, _, cls = IMPLEMENTATIONS[(backend, name)].partition(":")
    workloads: frozenset[str] = getattr(importlib.import_module(module), cls).workloads
    return workloads


def tables_of(backend: str, name: str) -> str:
    """Whose tables ``name`` makes and loads (its own name unless it shares another's)."""
    module, _, cls = IMPLEMENTATIONS[(backend, name)].partition(":")
    tables: str | None = getattr(importlib.import_module(module), cls).tables
    return tables or name
