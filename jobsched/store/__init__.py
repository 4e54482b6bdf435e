"""Storage backends behind one interface (``Store``); ``open_store`` picks one for a URL."""

from __future__ import annotations

import sqlalchemy as sa

from jobsched.errors import UsageError
from jobsched.store.base import Claim, ClaimRequest, Cursor, Op, Store

__all__ = ["Claim", "ClaimRequest", "Cursor", "Op", "Store", "open_store"]

MEMORY_URL = "memory://"


def open_store(url: str | sa.Engine | None) -> Store:
    """A store for a database URL (default ``$JOBSCHED_DATABASE_URL``, else ``jobsched.db``),
    an existing SQLAlchemy Engine, or ``memory://`` for the pure-Python in-memory backend."""
    from jobsched.store.sql import SqlStore, create_engine, default_url

    if isinstance(url, sa.Engine):
        return SqlStore(url, owned=False)
    if url is None:
        url = default_url()
    if not isinstance(url, str):
        raise UsageError(f"a database URL must be a string or an Engine, got {type(url).__name__}")
    if url.split("?")[0].rstrip("/") in (MEMORY_URL.rstrip("/"), "memory:"):
        from jobsched.store.memory import MemoryStore

        return MemoryStore()
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise UsageError(f"cannot read the database URL {url!r}: {e}") from None
    return SqlStore(create_engine(parsed), owned=True)
