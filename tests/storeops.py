"""Store calls as a runner makes them, for tests that drive a store directly."""

from __future__ import annotations

from datetime import datetime, timedelta

from jobsched.model import OpKind
from jobsched.rules import lost_attempt_error
from jobsched.store.base import Claim, ClaimRequest, Cursor, Op, Store


def claim(
    store: Store,
    now: datetime,
    *,
    runner: str = "r",
    lease: timedelta = timedelta(minutes=1),
    limit: int = 10,
    after: Cursor | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` due jobs as ``runner``, with claims of ``lease``."""
    request = ClaimRequest(
        now=now,
        limit=limit,
        runner=runner,
        lease_for=lambda handler: lease,
        lost_error=lost_attempt_error,
        after=after,
    )
    claims, _ = store.claim(request)
    return claims


def start(claim: Claim, at: datetime) -> Op:
    """The write that marks ``claim``'s attempt started at ``at``."""
    return Op(OpKind.START, claim, at=at, attempts=claim.job.attempts + 1)
