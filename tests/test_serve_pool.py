"""A process's database pool (db/engine.py POOL_SIZES): SQLite keeps 4 connections and no
overflow (issue 17: 15 threads and 64 MB caches each made 32 connections slower than 8 and
the server's RSS reach 2 GB), so no request may need a second connection while it holds one.
"""

from __future__ import annotations

import asyncio

from db.engine import POOL_SIZES
from tests.authz_support import AuthzFactory, mutation_document
from tests.conftest import Api, _api_over
from tests.helpers import data_of, post_graphql, token_for

FULL = "full@acme.example"
ADD_RULE = mutation_document("addPolicyRule", "PolicyRuleChangeInput", "rule { role }")
TAG_WRITE = {"input": {"role": "READ_ONLY_ADMIN", "object": "tag", "action": "write"}}
VIEWER = "query { viewer { email } }"


async def test_many_requests_after_a_policy_change_never_wait_on_the_pool(
    api: Api, backend: str
) -> None:
    # given: two instances over one pool; the other instance has served (its policies loaded)
    f = AuthzFactory(api.engine)
    await f.admin(await f.partner(), FULL, "FULL_ADMIN")
    token = await token_for(api, FULL)
    async for two in _api_over(api.db):
        two.tokens = api.tokens
        await post_graphql(two, VIEWER, token=token)
        # when: a policy change through the first, then more requests than the pool holds at
        # once through the second (each reloads the policies)
        added = await post_graphql(api, ADD_RULE, TAG_WRITE, as_=FULL)
        assert data_of(added)["addPolicyRule"]["userErrors"] == []
        many = 3 * sum(POOL_SIZES[backend])
        bodies = await asyncio.wait_for(
            asyncio.gather(*(post_graphql(two, VIEWER, token=token) for _ in range(many))), 20
        )

        # then: every one served
        assert {data_of(b)["viewer"]["email"] for b in bodies} == {FULL}
