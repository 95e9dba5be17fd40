"""Fails the test that leaves an app's hub running or a cost budget pool open.

A hub left running keeps its cost budget's pool (on PostgreSQL, connections of its own) and the
engine it made when given none. Such pools, a couple of connections each held until they idle
out, once added up to ~75 and ran CI's PostgreSQL out of connections ("too many clients"),
failing whichever test came next. Checked after each test, the failure names the test that
leaked; the guard then terminates the pools itself, so the tests after it start clean.
Tests make their apps with ``tests.conftest.app_client`` (or run the app's lifespan), which
stops the hub whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from graph.hub import PartnerHub

_pools: list[asyncpg.Pool] = []  # every asyncpg pool opened (the budget's PostgresStore's)
_running: set[PartnerHub] = set()  # hubs started and not stopped since


@pytest.fixture(scope="session", autouse=True)
def record_apps_and_pools() -> Iterator[None]:
    create_pool, start, stop = asyncpg.create_pool, PartnerHub._start, PartnerHub.stop

    def recorded_pool(*args: Any, **kwargs: Any) -> asyncpg.Pool:
        pool = create_pool(*args, **kwargs)
        _pools.append(pool)
        return pool

    async def recorded_start(hub: PartnerHub) -> Any:
        services = await start(hub)  # once per hub (``start`` answers later calls itself)
        _running.add(hub)
        return services

    async def recorded_stop(hub: PartnerHub) -> None:
        _running.discard(hub)
        await stop(hub)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncpg, "create_pool", recorded_pool)
        patch.setattr(PartnerHub, "_start", recorded_start)
        patch.setattr(PartnerHub, "stop", recorded_stop)
        yield


@pytest.fixture(autouse=True)
def nothing_left_running() -> Iterator[None]:
    """After the test and its fixtures: no hub still running, no pool still open."""
    yield
    hubs, pools = len(_running), [pool for pool in _pools if not pool.is_closing()]
    _running.clear()
    _pools.clear()
    for pool in pools:
        pool.terminate()
    if hubs or pools:
        pytest.fail(
            f"left running: {hubs} app hub(s), {len(pools)} cost budget pool(s); make apps"
            " with tests.conftest.app_client, or stop each hub (and close each budget store)"
        )
