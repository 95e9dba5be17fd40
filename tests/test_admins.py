"""Admin management by full admins: create, update, deactivate, and the admins list."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from db.queries import admin_management
from tests.authz_support import (
    CREATE_ADMIN,
    AuthzFactory,
    changed_tables,
    create_role,
    gid,
    mutation_document,
    snapshot,
    user_error_codes,
)
from tests.conftest import Api
from tests.helpers import assert_forbidden, data_of, error_codes, post_graphql, token_for

FULL, PARTNER, RO = "full@acme.example", "partner@acme.example", "readonly@acme.example"
OTHER_FULL = "full@globex.example"

ADMIN = "admin { id email name role roles active }"
UPDATE_ADMIN = mutation_document("updateAdmin", "UpdateAdminInput", ADMIN)
DEACTIVATE_ADMIN = mutation_document("deactivateAdmin", "DeactivateAdminInput", ADMIN)
GRANT = mutation_document("grantRole", "GrantRoleInput", ADMIN)
ADMINS = """
query Admins($first: Int!, $after: String) {
  admins(first: $first, after: $after) {
    totalCount
    nodes { id email name role roles active }
    pageInfo { hasNextPage endCursor }
  }
}
"""
VIEWER = "query { viewer { id email role roles } }"
CREATE_TAG = mutation_document("createTag", "CreateTagInput", "tag { id }")


async def acme_and_globex(api: Api) -> dict[str, int]:
    """Acme (full, partner, read-only admins) and Globex (a full admin); pks by email."""
    f = AuthzFactory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex Reseller", "globex.example")
    pks = {
        FULL: await f.admin(acme, FULL, "FULL_ADMIN", name="Fiona Full"),
        PARTNER: await f.admin(acme, PARTNER, "PARTNER_ADMIN", name="Pat Partner"),
        RO: await f.admin(acme, RO, "READ_ONLY_ADMIN", name="Rita Reader"),
        OTHER_FULL: await f.admin(globex, OTHER_FULL, "FULL_ADMIN"),
    }
    await post_graphql(api, VIEWER, as_=FULL)  # the app has started (policies seeded)
    return pks


def new_admin(email: str, role: str = "READ_ONLY_ADMIN", name: str = "Nina New") -> dict[str, Any]:
    return {"input": {"email": email, "name": name, "role": role}}


async def test_create_admin_and_the_admins_list(api: Api) -> None:
    # given
    await acme_and_globex(api)

    # when
    body = await post_graphql(
        api, CREATE_ADMIN, new_admin("  Nina@ACME.example ", "PARTNER_ADMIN"), as_=FULL
    )

    # then
    payload = data_of(body)["createAdmin"]
    assert payload["userErrors"] == []
    admin = payload["admin"]
    assert admin["email"] == "nina@acme.example"
    assert (admin["name"], admin["role"], admin["roles"], admin["active"]) == (
        "Nina New",
        "PARTNER_ADMIN",
        ["PARTNER_ADMIN"],
        True,
    )
    # the new admin can work with a token
    viewer = data_of(await post_graphql(api, VIEWER, as_="nina@acme.example"))["viewer"]
    assert viewer == {
        "id": admin["id"],
        "email": "nina@acme.example",
        "role": "PARTNER_ADMIN",
        "roles": ["PARTNER_ADMIN"],
    }
    # the admins list has it, with Acme's admins only, by creation
    listed = data_of(await post_graphql(api, ADMINS, {"first": 50}, as_=RO))["admins"]
    assert [n["email"] for n in listed["nodes"]] == [FULL, PARTNER, RO, "nina@acme.example"]
    assert listed["totalCount"] == 4
    assert listed["nodes"][3] == {**admin}


async def test_admins_list_pages_and_shows_granted_roles(api: Api) -> None:
    # given: four admins, one with a granted custom role
    pks = await acme_and_globex(api)
    await create_role(api, FULL, "AUDITOR", [("audit", "read", "all")])
    await post_graphql(api, CREATE_ADMIN, new_admin("nina@acme.example"), as_=FULL)
    grant = {"input": {"adminId": gid("Admin", pks[RO]), "role": "AUDITOR"}}
    assert data_of(await post_graphql(api, GRANT, grant, as_=FULL))["grantRole"]["userErrors"] == []

    # when: pages of two
    first = data_of(await post_graphql(api, ADMINS, {"first": 2}, as_=PARTNER))["admins"]
    cursor = first["pageInfo"]["endCursor"]
    second = data_of(await post_graphql(api, ADMINS, {"first": 2, "after": cursor}, as_=PARTNER))[
        "admins"
    ]

    # then
    assert first["totalCount"] == second["totalCount"] == 4
    assert first["pageInfo"]["hasNextPage"] is True
    assert second["pageInfo"]["hasNextPage"] is False
    nodes = first["nodes"] + second["nodes"]
    assert [(n["email"], n["roles"]) for n in nodes] == [
        (FULL, ["FULL_ADMIN"]),
        (PARTNER, ["PARTNER_ADMIN"]),
        (RO, ["READ_ONLY_ADMIN", "AUDITOR"]),
        ("nina@acme.example", ["READ_ONLY_ADMIN"]),
    ]


async def test_create_admin_with_a_custom_role(api: Api) -> None:
    # given
    await acme_and_globex(api)
    await create_role(api, FULL, "TAGGER", [("tag", "write", "all"), ("tag", "read", "all")])

    # when
    body = await post_graphql(api, CREATE_ADMIN, new_admin("tina@acme.example", "TAGGER"), as_=FULL)

    # then: its rules apply at once
    assert data_of(body)["createAdmin"]["admin"]["role"] == "TAGGER"
    tag = await post_graphql(api, CREATE_TAG, {"input": {"name": "vip"}}, as_="tina@acme.example")
    assert data_of(tag)["createTag"]["userErrors"] == []
    assert_forbidden(await post_graphql(api, ADMINS, {"first": 5}, as_="tina@acme.example"))


async def test_create_admin_refuses_bad_input_and_writes_nothing(api: Api) -> None:
    # given
    await acme_and_globex(api)
    await create_role(api, OTHER_FULL, "GLOBEX_ONLY", [("tag", "read", "all")])
    cases = [
        (new_admin("PARTNER@acme.example"), "EMAIL_TAKEN"),
        (new_admin(OTHER_FULL), "EMAIL_TAKEN"),  # emails sign in: unique across partners
        (new_admin("not-an-email"), "INVALID_EMAIL"),
        (new_admin("two@@acme.example"), "INVALID_EMAIL"),
        (new_admin("nobody@localhost"), "INVALID_EMAIL"),
        (new_admin(""), "INVALID_EMAIL"),
        (new_admin("new@acme.example", "NOPE"), "UNKNOWN_ROLE"),
        (new_admin("new@acme.example", "full_admin"), "UNKNOWN_ROLE"),
        (new_admin("new@acme.example", "GLOBEX_ONLY"), "UNKNOWN_ROLE"),
        (new_admin("new@acme.example", name="  "), "INVALID_NAME"),
    ]
    before = await snapshot(api.engine)
    for variables, code in cases:
        # when
        body = await post_graphql(api, CREATE_ADMIN, variables, as_=FULL)

        # then
        assert user_error_codes(body, "createAdmin") == [code], (variables, body)
        assert body["data"]["createAdmin"]["admin"] is None
    assert changed_tables(before, await snapshot(api.engine)) == []


async def test_update_admin_renames_and_changes_the_role_at_once(api: Api) -> None:
    # given
    pks = await acme_and_globex(api)
    assert_forbidden(await post_graphql(api, CREATE_TAG, {"input": {"name": "vip"}}, as_=RO))
    variables = {
        "input": {"id": gid("Admin", pks[RO]), "name": " Rita Writer ", "role": "PARTNER_ADMIN"}
    }

    # when
    body = await post_graphql(api, UPDATE_ADMIN, variables, as_=FULL)

    # then
    admin = data_of(body)["updateAdmin"]["admin"]
    assert (admin["name"], admin["role"], admin["roles"]) == (
        "Rita Writer",
        "PARTNER_ADMIN",
        ["PARTNER_ADMIN"],
    )
    assert data_of(await post_graphql(api, VIEWER, as_=RO))["viewer"]["role"] == "PARTNER_ADMIN"
    tag = await post_graphql(api, CREATE_TAG, {"input": {"name": "vip"}}, as_=RO)
    assert data_of(tag)["createTag"]["userErrors"] == []


async def test_update_admin_refuses_bad_input_and_writes_nothing(api: Api) -> None:
    # given
    pks = await acme_and_globex(api)
    full, other, ro = (gid("Admin", pks[e]) for e in (FULL, OTHER_FULL, RO))
    cases = [
        ({"id": other, "name": "Taken over"}, "NOT_FOUND"),
        ({"id": gid("Admin", 999_999), "name": "Ghost"}, "NOT_FOUND"),
        ({"id": ro, "role": "NOPE"}, "UNKNOWN_ROLE"),
        ({"id": ro, "name": ""}, "INVALID_NAME"),
        ({"id": full, "role": "READ_ONLY_ADMIN"}, "LAST_FULL_ADMIN"),  # demoting oneself
    ]
    before = await snapshot(api.engine)
    for input_, code in cases:
        # when
        body = await post_graphql(api, UPDATE_ADMIN, {"input": input_}, as_=FULL)

        # then
        assert user_error_codes(body, "updateAdmin") == [code], (input_, body)
    assert changed_tables(before, await snapshot(api.engine)) == []


async def test_demoting_the_last_full_admin_is_refused_but_not_when_another_remains(
    api: Api,
) -> None:
    # given: a second full admin
    pks = await acme_and_globex(api)
    second = await post_graphql(
        api, CREATE_ADMIN, new_admin("fred@acme.example", "FULL_ADMIN"), as_=FULL
    )
    fred = data_of(second)["createAdmin"]["admin"]["id"]
    demote_fiona = {"input": {"id": gid("Admin", pks[FULL]), "role": "PARTNER_ADMIN"}}

    # when: Fred demotes Fiona, then tries to demote himself
    first = await post_graphql(api, UPDATE_ADMIN, demote_fiona, as_="fred@acme.example")
    last = await post_graphql(
        api, UPDATE_ADMIN, {"input": {"id": fred, "role": "PARTNER_ADMIN"}}, as_="fred@acme.example"
    )

    # then
    assert data_of(first)["updateAdmin"]["admin"]["role"] == "PARTNER_ADMIN"
    assert user_error_codes(last, "updateAdmin") == ["LAST_FULL_ADMIN"]
    # Fiona is a partner admin now: she may no longer manage admins
    refused = await post_graphql(api, UPDATE_ADMIN, {"input": {"id": fred, "name": "x"}}, as_=FULL)
    assert_forbidden(refused)


async def test_deactivated_admins_token_is_refused_at_once(api: Api) -> None:
    # given: the partner admin is working
    pks = await acme_and_globex(api)
    assert data_of(await post_graphql(api, VIEWER, as_=PARTNER))["viewer"]["email"] == PARTNER
    variables = {"input": {"id": gid("Admin", pks[PARTNER])}}

    # when
    body = await post_graphql(api, DEACTIVATE_ADMIN, variables, as_=FULL)

    # then: the very next request with its token is a 401
    assert data_of(body)["deactivateAdmin"]["admin"]["active"] is False
    refused = await post_graphql(api, VIEWER, as_=PARTNER, expect_status=401)
    assert error_codes(refused) == ["UNAUTHENTICATED"]
    # a token issued afterwards is refused too: the admin is inactive, not just its tokens
    api.tokens.pop(PARTNER)
    await post_graphql(api, VIEWER, token=await token_for(api, PARTNER), expect_status=401)
    listed = data_of(await post_graphql(api, ADMINS, {"first": 10}, as_=FULL))["admins"]["nodes"]
    assert [n["active"] for n in listed if n["email"] == PARTNER] == [False]
    again = await post_graphql(api, DEACTIVATE_ADMIN, variables, as_=FULL)
    assert user_error_codes(again, "deactivateAdmin") == ["ALREADY_DEACTIVATED"]


async def test_deactivate_admin_refuses_bad_input_and_writes_nothing(api: Api) -> None:
    # given
    pks = await acme_and_globex(api)
    cases = [
        (gid("Admin", pks[FULL]), "LAST_FULL_ADMIN"),  # oneself, the last full admin
        (gid("Admin", pks[OTHER_FULL]), "NOT_FOUND"),
        (gid("Admin", 999_999), "NOT_FOUND"),
        ("not-an-id", "INVALID_ID"),
    ]
    before = await snapshot(api.engine)
    for admin_id, code in cases:
        # when
        body = await post_graphql(api, DEACTIVATE_ADMIN, {"input": {"id": admin_id}}, as_=FULL)

        # then
        assert user_error_codes(body, "deactivateAdmin") == [code], (admin_id, body)
    assert changed_tables(before, await snapshot(api.engine)) == []
    assert data_of(await post_graphql(api, VIEWER, as_=FULL))["viewer"]["email"] == FULL


async def test_a_full_admin_may_deactivate_itself_when_another_remains(api: Api) -> None:
    # given
    await acme_and_globex(api)
    await post_graphql(api, CREATE_ADMIN, new_admin("fred@acme.example", "FULL_ADMIN"), as_=FULL)
    me = data_of(await post_graphql(api, VIEWER, as_=FULL))["viewer"]["id"]

    # when
    body = await post_graphql(api, DEACTIVATE_ADMIN, {"input": {"id": me}}, as_=FULL)

    # then
    assert data_of(body)["deactivateAdmin"]["userErrors"] == []
    await post_graphql(api, VIEWER, as_=FULL, expect_status=401)
    assert data_of(await post_graphql(api, VIEWER, as_="fred@acme.example"))["viewer"]


async def test_non_full_admins_may_not_manage_admins(api: Api) -> None:
    # given
    pks = await acme_and_globex(api)
    await post_graphql(api, VIEWER, as_=PARTNER)
    await post_graphql(api, VIEWER, as_=RO)
    before = await snapshot(api.engine)
    target = gid("Admin", pks[RO])
    for caller in (PARTNER, RO):
        for document, variables in (
            (CREATE_ADMIN, new_admin("sneaky@acme.example", "FULL_ADMIN")),
            (UPDATE_ADMIN, {"input": {"id": target, "role": "FULL_ADMIN"}}),
            (DEACTIVATE_ADMIN, {"input": {"id": target}}),
        ):
            # when
            body = await post_graphql(api, document, variables, as_=caller)

            # then
            assert_forbidden(body)
            assert body["data"] is None
    assert changed_tables(before, await snapshot(api.engine)) == []


async def test_two_full_admins_deactivating_each_other_at_once_leave_one(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: two full admins, and a server that takes its time between checking who would be
    # left to manage the partner and writing the change (so both requests check first)
    await acme_and_globex(api)
    read_active_admins = admin_management.active_admin_roles

    async def slowly(*args: Any, **kwargs: Any) -> Any:
        found = await read_active_admins(*args, **kwargs)
        await asyncio.sleep(0.2)
        return found

    monkeypatch.setattr(admin_management, "active_admin_roles", slowly)
    await post_graphql(api, CREATE_ADMIN, new_admin("fred@acme.example", "FULL_ADMIN"), as_=FULL)
    fiona = data_of(await post_graphql(api, VIEWER, as_=FULL))["viewer"]["id"]
    fred = data_of(await post_graphql(api, VIEWER, as_="fred@acme.example"))["viewer"]["id"]

    async def deactivate(target: str, as_: str) -> str:
        token = await token_for(api, as_)
        response = await api.client.post(
            "/graphql",
            json={"query": DEACTIVATE_ADMIN, "variables": {"input": {"id": target}}},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code == 401:  # the other one was done before this one began
            return "401"
        if "FORBIDDEN" in error_codes(response.json()):  # ... before this one took the lock
            return "FORBIDDEN"
        return str(user_error_codes(response.json(), "deactivateAdmin"))

    # when: each deactivates the other, concurrently
    outcomes = await asyncio.gather(deactivate(fred, FULL), deactivate(fiona, "fred@acme.example"))

    # then: one wins; the other is told it would leave nobody to manage the partner (or, when
    # it came second, finds its own token refused, or itself deactivated once it held the lock)
    assert sorted(outcomes) in (
        ["401", "[]"],
        ["['LAST_FULL_ADMIN']", "[]"],
        ["FORBIDDEN", "[]"],
    ), outcomes
    active = await post_graphql(api, ADMINS, {"first": 10}, as_=RO)
    full_admins = [
        n for n in data_of(active)["admins"]["nodes"] if n["role"] == "FULL_ADMIN" and n["active"]
    ]
    assert len(full_admins) == 1


async def test_one_email_claimed_by_two_partners_at_once_is_taken_for_one(api: Api) -> None:
    # given
    await acme_and_globex(api)
    await post_graphql(api, VIEWER, as_=OTHER_FULL)

    # when: both partners create an admin with the same email, concurrently
    bodies = await asyncio.gather(
        post_graphql(api, CREATE_ADMIN, new_admin("sam@shared.example"), as_=FULL),
        post_graphql(api, CREATE_ADMIN, new_admin("sam@shared.example"), as_=OTHER_FULL),
    )

    # then: no internal error; one has the admin, the other a clear EMAIL_TAKEN
    assert all(not b.get("errors") for b in bodies), bodies
    codes = sorted(str(user_error_codes(b, "createAdmin")) for b in bodies)
    assert codes == ["['EMAIL_TAKEN']", "[]"]
