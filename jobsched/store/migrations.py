"""Running jobsched's Alembic revisions from code, with no alembic.ini and no checkout."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from jobsched.model import MigrateResult
from jobsched.schema import SCHEMA_REVISION


def migrations_dir() -> Path:
    """The revisions: inside the wheel (``jobsched/_migrations``) or the checkout's top level."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_migrations"
    if packaged.is_dir():
        return packaged
    return package.parent / "migrations"


def upgrade(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def result_of(before: str | None) -> MigrateResult:
    """What an upgrade to the newest revision did, given the revision it found (None: none)."""
    if before is None:
        return MigrateResult.CREATED
    if before == SCHEMA_REVISION:
        return MigrateResult.CURRENT
    return MigrateResult.UPGRADED
