"""A connection's ``totalCount`` is counted only when the document selects it (every connection
alike: customers, helpdesk cases and the analytics' lists already were; the admins and the
audit log counted on every page, the audit log over the partner's whole history)."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.helpers import Factory, data_of, post_graphql

FULL = "full@acme.example"
LISTS = {
    "admins": ("admins(first: 2)", "admin"),
    "auditLog": ("auditLog(first: 2)", "audit_log"),
}


def counts(statements: list[str], table: str) -> int:
    return sum("count(" in sql.lower() and f"FROM {table}" in sql for sql in statements)


@pytest.mark.parametrize("field", sorted(LISTS))
async def test_total_count_is_counted_only_when_selected(uncached_api: Api, field: str) -> None:
    # given: three admins, and three audited changes (tags created)
    api = uncached_api
    f = Factory(api.engine)
    partner = await f.partner()
    await f.admin(partner, FULL, "FULL_ADMIN")
    for n in range(2):
        await f.admin(partner, f"a{n}@acme.example", "READ_ONLY_ADMIN")
    for name in ("Gold", "Silver", "Bronze"):
        created = f'mutation {{ createTag(input: {{name: "{name}"}}) {{ tag {{ id }} }} }}'
        assert data_of(await post_graphql(api, created, as_=FULL))["createTag"]["tag"]
    call, table = LISTS[field]

    # when
    with api.counter.counting() as without:
        page = data_of(
            await post_graphql(api, f"{{ {call} {{ nodes {{ __typename }} }} }}", as_=FULL)
        )
    with api.counter.counting() as with_total:
        total = data_of(
            await post_graphql(
                api, f"{{ {call} {{ totalCount nodes {{ __typename }} }} }}", as_=FULL
            )
        )

    # then: the same page; the count only when asked, and right
    assert len(page[field]["nodes"]) == 2
    assert total[field]["nodes"] == page[field]["nodes"]
    assert total[field]["totalCount"] == 3
    assert counts(without, table) == 0
    assert counts(with_total, table) == 1
