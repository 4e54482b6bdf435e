"""The app of the worker fault tests (imported with ``--app``): the recorder's handlers
(``fault.work`` and the others, see ``recorder``) and the isolated ones of the isolation tests
(``iso_hang``, ``iso_segfault``, ``iso_os_exit``, ... see ``isolated``), in one worker.

``$FAULTS_BOOKKEEPING_PATIENCE`` (seconds) shortens how long the worker's bookkeeping retries a
database that went away (``jobsched.store.sql.BOOKKEEPING_PATIENCE``, a minute), so that a test
can outlast it in seconds.
"""

from __future__ import annotations

import os

from faults.apps import isolated, recorder
from jobsched.store import sql

__all__ = ["isolated", "recorder"]

if os.environ.get("FAULTS_BOOKKEEPING_PATIENCE"):
    sql.BOOKKEEPING_PATIENCE = float(os.environ["FAULTS_BOOKKEEPING_PATIENCE"])
