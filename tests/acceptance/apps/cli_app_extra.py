"""A second app module, for ``JOBSCHED_APP=cli_app,cli_app_extra``."""

from __future__ import annotations

import jobsched


@jobsched.handler("extra")
def extra(job: jobsched.Job) -> None:
    """Succeeds."""
