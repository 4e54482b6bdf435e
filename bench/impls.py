"""Which implementations run on which backend, and where each lives (imported only when used)."""

from __future__ import annotations

import importlib

from bench.base import Implementation

#: (backend, name) -> "module:Class", in the order the tables show them: floor, peer, jobsched.
IMPLEMENTATIONS: dict[tuple[str, str], str] = {
    ("mariadb", "floor"): "bench.floor_mariadb:MariaDBFloor",
    ("mariadb", "apscheduler"): "bench.with_apscheduler:APSchedulerImpl",
    ("mariadb", "jobsched"): "bench.with_jobsched:JobschedMariaDB",
    ("sqlite", "floor"): "bench.floor_sqlite:SQLiteFloor",
    ("sqlite", "huey"): "bench.with_huey:HueyImpl",
    ("sqlite", "jobsched"): "bench.with_jobsched:JobschedSQLite",
}
#: The peer each backend is compared with.
PEERS = {"mariadb": "apscheduler", "sqlite": "huey"}
LABELS = {
    "floor": "raw floor",
    "apscheduler": "APScheduler",
    "huey": "Huey",
    "jobsched": "jobsched",
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
