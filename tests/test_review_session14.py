"""Session 14's review of provisional queries (db/token_check.py): a statement issued while the
check's lookup waits for the driver does not pass as if it were that lookup (it ran after the
check had failed), and a rerun answered from the response cache charges the token's budget
once."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from sqlalchemy import text

from db.queries.admins import hash_token
from db.token_check import PrincipalChanged, TokenCheck, attach
from graph.endpoint import AUTOCOMMIT
from tests.conftest import Api, postgresql_only
from tests.helpers import data_of, post_graphql, token_for
from tests.test_attack_session14 import FULL, PAGE, acme
from tests.test_attack_session14_guard import executed, hub_of, revoke


@postgresql_only
async def test_a_statement_beside_the_lookup_in_flight_never_runs_after_it_failed(
    uncached_api: Api,
) -> None:
    # given: a seen token, revoked since; a request's check settling (its lookup alone waiting
    # for the driver) while another task of the request issues a statement
    api = uncached_api
    await acme(api)
    token = await token_for(api, FULL)
    data_of(await post_graphql(api, PAGE, token=token))
    hub = hub_of(api)
    expected = hub.principals.get(hash_token(token))
    assert expected is not None
    await revoke(api)
    async with hub.sessions() as session:
        check = TokenCheck(hash_token(token), expected, hub.principals)
        attach(session, check)
        check.connection = await session.connection(execution_options=AUTOCOMMIT)
        sync = check.connection.sync_connection
        assert sync is not None
        held = sync.connection.dbapi_connection._execute_mutex  # type: ignore[union-attr]
        await held.acquire()
        try:
            settling = asyncio.ensure_future(check.settle())
            await asyncio.sleep(0.05)  # the lookup waits for the driver
            with executed(api) as statements:
                other = asyncio.ensure_future(session.execute(text("SELECT 'beside'")))
                await asyncio.sleep(0.05)
                held.release()
                # when: the lookup answers (the token is revoked)
                assert await settling is False
                outcome = await asyncio.gather(other, return_exceptions=True)
        finally:
            if held.locked() and not settling.done():
                held.release()
    # then: the other statement never ran; it asked the token itself and was stopped
    assert isinstance(outcome[0], PrincipalChanged), outcome
    assert not any("beside" in sql for sql in statements), statements


async def test_a_rerun_answered_from_the_cache_charges_the_budget_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a page answered and cached; the token's memo holding a principal since gone (a
    # data version another instance moved), so that the next request runs provisionally,
    # misses the cache, spends, and is run again as the token's principal, a cache hit
    await acme(api)
    token = await token_for(api, FULL)
    data_of(await post_graphql(api, PAGE, token=token))
    data_of(await post_graphql(api, PAGE, token=token))
    hub = hub_of(api)
    key = hash_token(token)
    current = hub.principals.get(key)
    assert current is not None
    hub.principals.put(key, dataclasses.replace(current, data_version="stale.0"))
    limiter = hub.services.limiter
    spends: list[tuple[int, int]] = []
    spend = limiter.spend

    async def counted(token_id: int, cost: int) -> Any:
        spends.append((token_id, cost))
        return await spend(token_id, cost)

    monkeypatch.setattr(limiter, "spend", counted)
    # when
    body = await post_graphql(api, PAGE, token=token)
    # then: one request, one spend
    assert data_of(body)["customers"]["nodes"]
    assert len(spends) == 1, spends
