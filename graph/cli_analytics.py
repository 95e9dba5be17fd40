"""``partner-hub rebase-low-allocation``: move the kept low-allocation spans' reference to the
current medians (migration 0033, ``db.low_reference``).

The dashboards' low-allocation figures are exact whatever the reference; a dashboard reads, on
top of the kept spans, the subscriptions whose flag the medians have moved since the reference
was taken. ``serve`` moves it every ``PARTNER_HUB_LOW_REBASE_SECONDS`` (graph.low_rebase);
this command does it once (``seed`` runs it at its end). It rebuilds the spans of the
customers whose flag the move changes (``--full``: every customer's, a repair), under every
partner's write lock on PostgreSQL, and changes no figure.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import session_factory
from db.low_reference import PartnersBusy, RebaseResult, rebase_low_reference
from db.queries.writes import begin_write
from graph.cli import CliError, _now, _open, _settings


def register(subparsers: Any) -> None:
    """Add ``rebase-low-allocation`` to the ``partner-hub`` parser."""
    rebase = subparsers.add_parser(
        "rebase-low-allocation",
        help="move the kept low-allocation spans to the current medians (speed; no figure changes)",
    )
    rebase.add_argument(
        "--full",
        action="store_true",
        help="rebuild every customer's low-allocation spans, not only those the move changes",
    )
    rebase.set_defaults(func=cmd_rebase_low_allocation)


async def rebase(engine: AsyncEngine, now: datetime, *, full: bool = False) -> RebaseResult:
    """``rebase_low_reference`` in a transaction of its own."""
    async with session_factory(engine)() as session, session.begin():
        await begin_write(session)
        return await rebase_low_reference(session, now=now, full=full)


async def cmd_rebase_low_allocation(args: argparse.Namespace) -> None:
    settings = _settings(args)
    engine = await _open(settings, create=False)
    try:
        result = await rebase(engine, _now(settings), full=args.full)
    except PartnersBusy as exc:
        raise CliError(str(exc)) from None
    finally:
        await engine.dispose()
    if not result.written:
        print("low-allocation reference: no flag changes, nothing written")
        return
    print(
        f"low-allocation reference: {len(result.halves)} size bands with a median, "
        f"{result.customers} customers' spans rebuilt"
    )
