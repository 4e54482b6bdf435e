"""An app module whose import raises inside a function it calls (a missing setting)."""

from __future__ import annotations

import os


def load_settings() -> dict[str, str]:
    return {"api_key": os.environ["RAISING_APP_API_KEY_THAT_IS_NOT_SET"]}  # raises KeyError


SETTINGS = load_settings()
