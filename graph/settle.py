"""Sibling fields settle instead of being cancelled when one of them fails.

graphql-core runs sibling fields concurrently with ``gather_with_cancel``: the first error that
nulls their parent (a refused non-null root field, say) cancels the siblings still running.
Ours share one database session per request, and a sibling cancelled while its statement runs
leaves that connection broken: asyncpg then fails the session's close ("the underlying
connection is closed") after the answer was sent, aiosqlite answers "no active connection",
and the request escapes as an error (found by the generated-document leg,
``tests/test_fuzz_documents.py``). Waiting for the siblings costs a failed request the time of
its slowest sibling, keeps every statement whole, and reports the same first error.

The executor calls the module-level name, not a method of the execution context, so the name is
replaced there once, at import (``install``); ``tests/test_fail_alone.py`` checks it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from graphql.execution import executor


async def gather_settling(*awaitables: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather`` that, when one awaitable fails, lets the others finish before raising
    the first error (graphql-core's version cancels them)."""
    futures = [asyncio.ensure_future(aw) for aw in awaitables]
    try:
        return await asyncio.gather(*futures)
    except Exception:
        # The first error is kept; the siblings' outcomes are settled, not cancelled.
        await asyncio.gather(*futures, return_exceptions=True)
        raise


def install() -> None:
    executor.gather_with_cancel = gather_settling


install()
