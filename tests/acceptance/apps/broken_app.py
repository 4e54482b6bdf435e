"""An app module whose import fails, as a deploy with a missing dependency would."""

from __future__ import annotations

import jobsched_no_such_dependency  # noqa: F401
