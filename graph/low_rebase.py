"""``serve`` moves the low-allocation reference to the current medians every
``PARTNER_HUB_LOW_REBASE_SECONDS`` (0: never; ``partner-hub rebase-low-allocation`` then).

The dashboards' low-allocation figures are exact at any reference (``db.low_reference``): this
only keeps their correction small as licence writes move the deployment's medians. Each turn
first looks, in a read-only transaction, whether any total's flag would change; only then does
it take the write lock (SQLite's ``begin_write``; PostgreSQL's partner locks inside
``set_low_reference``) and rebuild the spans of the customers concerned, moving their
partners' versions. Every worker and instance may run it: a turn that finds the work done
writes nothing. A failed turn is logged as one line and the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import session_factory
from db.low_reference import RebaseResult, rebase_low_reference
from db.queries.writes import begin_write

log = logging.getLogger("partner_hub.low_rebase")
FIRST_TURN_SECONDS = 5.0


async def rebase_turn(engine: AsyncEngine, now: datetime) -> RebaseResult:
    """One turn: a read-only look, then the move under the write lock when it changes a flag."""
    sessions = session_factory(engine)
    async with sessions() as session:
        looked = await rebase_low_reference(session, now=now, look_only=True)
    if not looked.written:
        return looked
    async with sessions() as session, session.begin():
        await begin_write(session)
        return await rebase_low_reference(session, now=now)


class LowRebaser:
    """The turns as a task of the app's lifespan: the first a few seconds after start, then
    ``seconds`` apart (+-10 %, so that workers started together drift apart)."""

    def __init__(self, engine: AsyncEngine, seconds: float, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.seconds = seconds
        self.now = now
        self.turns = 0
        self.task = asyncio.create_task(self._run(), name="low-allocation-rebase")

    async def _run(self) -> None:
        # The first turn soon after start: a database migrated to 0033 has no reference yet.
        pause = min(self.seconds, FIRST_TURN_SECONDS)
        while True:
            await asyncio.sleep(pause * random.uniform(0.9, 1.1))
            pause = self.seconds
            try:
                result = await rebase_turn(self.engine, self.now())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("low-allocation rebase failed", extra={"error": type(exc).__name__})
            else:
                if result.written:
                    log.info(
                        "low-allocation reference moved",
                        extra={"customers": result.customers, "bands": len(result.halves)},
                    )
            self.turns += 1

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
