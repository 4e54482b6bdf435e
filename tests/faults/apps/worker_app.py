"""The app of the worker fault tests (imported with ``--app``): the recorder's handlers
(``fault.work`` and the others, see ``recorder``) and the isolated ones of the isolation tests
(``iso_hang``, ``iso_segfault``, ``iso_os_exit``, ... see ``isolated``), in one worker."""

from __future__ import annotations

from faults.apps import isolated, recorder

__all__ = ["isolated", "recorder"]
