"""``partner-hub admin create`` is ``createAdmin`` run by the system (issue 14, finding 8): the
same checks refuse the same input, and a created admin leaves the same audit entry. The other
writing commands (``ingest calls``, ``token issue`` / ``revoke``) are audited by the system too.

The command runs against the test database of each backend, beside an app over that database:
as a user runs it (a subprocess of the console script) where it writes, and in this process
(``graph.cli.main`` on a thread, much faster) for the many refusals.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from graph.cli import main
from tests.authz_support import (
    CREATE_ADMIN,
    AuthzFactory,
    changed_tables,
    create_role,
    gid,
    snapshot,
    user_error_codes,
)
from tests.conftest import NOW, Api
from tests.helpers import data_of, post_graphql, token_for
from tests.test_ingest import record, write_csv

PARTNER_HUB = Path(sys.executable).with_name("partner-hub")
FULL, OTHER_FULL = "full@acme.example", "full@globex.example"
AUDIT = """
query Audit($operation: String) {
  auditLog(first: 10, filter: {operation: $operation}) {
    nodes { adminId operation objectType objectId before after }
  }
}
"""


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


async def admin_create(api: Api, *options: str) -> Run:
    """``partner-hub admin create OPTIONS`` against the api's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNER_HUB_")}
    env["PARTNER_HUB_DATABASE_URL"] = api.db.url
    process = await asyncio.create_subprocess_exec(
        str(PARTNER_HUB),
        "admin",
        "create",
        *options,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


async def in_process(capsys: pytest.CaptureFixture[str], api: Api, *options: str) -> Run:
    """``graph.cli.main`` on a thread (it runs its own event loop), output captured."""
    capsys.readouterr()
    argv = ["--database-url", api.db.url, "admin", "create", *options]
    code = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    return Run(code, out, err)


async def acme_and_globex(api: Api) -> tuple[int, int]:
    """Acme and Globex with a full admin each; a custom role at each partner. Their pks."""
    f = AuthzFactory(api.engine)
    acme = await f.partner()
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(acme, FULL, "FULL_ADMIN")
    await f.admin(globex, OTHER_FULL, "FULL_ADMIN")
    assert data_of(await create_role(api, FULL, "AUDITOR", [("audit", "read", "all")]))
    assert data_of(await create_role(api, OTHER_FULL, "GLOBEX_ONLY", [("tag", "read", "all")]))
    await token_for(api, FULL)
    return acme, globex


def options(email: str, role: str = "READ_ONLY_ADMIN", name: str = "Nina New") -> list[str]:
    return ["--partner", "Acme Partners", "--email", email, "--role", role, "--name", name]


def api_input(email: str, role: str = "READ_ONLY_ADMIN", name: str = "Nina New") -> dict[str, Any]:
    return {"input": {"email": email, "name": name, "role": role}}


async def test_the_command_refuses_what_create_admin_refuses_and_writes_nothing(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: inputs the old command took (its email check only wanted an inner "@")
    await acme_and_globex(api)
    cases = [
        (("a@b.c",), "INVALID_EMAIL"),
        (("nobody@localhost",), "INVALID_EMAIL"),
        (("two@@acme.example",), "INVALID_EMAIL"),
        (("sp ace@acme.example",), "INVALID_EMAIL"),
        (("x" * 65 + "@acme.example",), "INVALID_EMAIL"),
        (("new@acme.example", "READ_ONLY_ADMIN", "n" * 201), "INVALID_NAME"),
        (("new@acme.example", "READ_ONLY_ADMIN", "   "), "INVALID_NAME"),
        (("new@acme.example", "KING"), "UNKNOWN_ROLE"),
        (("new@acme.example", "GLOBEX_ONLY"), "UNKNOWN_ROLE"),  # another partner's role
        ((OTHER_FULL.upper(),), "EMAIL_TAKEN"),  # emails are unique across partners
    ]
    before = await snapshot(api.engine)
    for args, code in cases:
        # when
        run = await in_process(capsys, api, *options(*args))
        body = await post_graphql(api, CREATE_ADMIN, api_input(*args), as_=FULL)

        # then: the API and the command agree, with one line and no traceback
        assert user_error_codes(body, "createAdmin") == [code], (args, body)
        assert run.code == 1, (args, run)
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("partner-hub: error: "), (args, run)
        assert code in lines[0], (args, run)
        assert run.stdout == ""
    assert changed_tables(before, await snapshot(api.engine)) == []


async def test_an_unknown_partner_is_a_one_line_error(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    await acme_and_globex(api)
    before = await snapshot(api.engine)

    # when
    run = await in_process(capsys, api, "--partner", "Nobody Inc", "--email", "n@acme.example",
                             "--role", "FULL_ADMIN")  # fmt: skip

    # then
    assert run.code == 1
    assert run.stderr.splitlines() == ["partner-hub: error: no partner named 'Nobody Inc'"]
    assert changed_tables(before, await snapshot(api.engine)) == []


async def test_a_created_admin_is_audited_as_create_admin_is(api: Api) -> None:
    # given: one admin created through the API by Acme's full admin
    await acme_and_globex(api)
    by_api = await post_graphql(api, CREATE_ADMIN, api_input("api@acme.example"), as_=FULL)
    assert user_error_codes(by_api, "createAdmin") == []

    # when: one through the command line, with the partner's custom role
    run = await admin_create(api, *options(" Ada@Acme.Example ", "AUDITOR", " Ada Admin "))

    # then
    assert run.code == 0, run.stderr
    assert run.stdout.strip() == "admin ada@acme.example created in Acme Partners with role AUDITOR"
    listed = data_of(await post_graphql(api, AUDIT, {"operation": "createAdmin"}, as_=FULL))
    entries = listed["auditLog"]["nodes"]
    assert len(entries) == 2
    cli, api_made = entries  # newest first
    admins = "query { admins(first: 10) { nodes { id email name role active } } }"
    nodes = data_of(await post_graphql(api, admins, as_=FULL))["admins"]["nodes"]
    ada = next(n for n in nodes if n["email"] == "ada@acme.example")
    assert (ada["name"], ada["role"], ada["active"]) == ("Ada Admin", "AUDITOR", True)
    # the same entry as the API writes, by no admin: the system
    assert cli == {
        "adminId": None,
        "operation": "createAdmin",
        "objectType": "admin",
        "objectId": ada["id"],
        "before": None,
        "after": {
            "email": "ada@acme.example",
            "name": "Ada Admin",
            "role": "AUDITOR",
            "active": True,
        },
    }
    assert api_made["adminId"] is not None
    assert {k: v for k, v in api_made.items() if k not in ("adminId", "objectId", "after")} == {
        k: v for k, v in cli.items() if k not in ("adminId", "objectId", "after")
    }
    assert set(api_made["after"]) == set(cli["after"])
    # Globex's log does not have it
    other = data_of(await post_graphql(api, AUDIT, {"operation": "createAdmin"}, as_=OTHER_FULL))
    assert other["auditLog"]["nodes"] == []


async def test_a_command_line_load_is_audited_in_each_partner_apart(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a file with three calls of an Acme customer and one of a Globex customer
    monkeypatch.setenv("PARTNER_HUB_NOW", NOW.isoformat())
    acme, globex = await acme_and_globex(api)
    f = AuthzFactory(api.engine)
    acme_customer = gid("Customer", await f.customer(acme, "One Corp"))
    globex_customer = gid("Customer", await f.customer(globex, "Globex Corp"))
    rows = [record(f"a{i}", acme_customer) for i in range(3)] + [record("g1", globex_customer)]
    path = write_csv(tmp_path / "calls.csv", rows)

    # when
    argv = ["--database-url", api.db.url, "ingest", "calls", str(path), "--no-progress"]
    code = await asyncio.to_thread(main, argv)

    # then: each partner's log has its own entry, by the system, with its own count only
    assert code == 0, capsys.readouterr().err
    variables = {"operation": "ingestCallRecords"}
    for caller, records in ((FULL, 3), (OTHER_FULL, 1)):
        entries = data_of(await post_graphql(api, AUDIT, variables, as_=caller))["auditLog"]
        assert entries["nodes"] == [
            {
                "adminId": None,
                "operation": "ingestCallRecords",
                "objectType": "call_record",
                "objectId": None,
                "before": None,
                "after": {"records": records},
            }
        ], caller


async def test_tokens_minted_or_revoked_at_the_command_line_are_audited(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    await acme_and_globex(api)
    me = data_of(await post_graphql(api, "query { viewer { id } }", as_=FULL))["viewer"]["id"]
    base = ["--database-url", api.db.url, "token"]

    # when: a token is issued, then revoked
    capsys.readouterr()
    assert await asyncio.to_thread(main, [*base, "issue", FULL, "--label", "laptop"]) == 0
    token = capsys.readouterr().out.strip()
    assert await asyncio.to_thread(main, [*base, "revoke", token]) == 0
    again = await asyncio.to_thread(main, [*base, "revoke", token])

    # then: both are in Acme's log, by the system, on the admin; the secret is not
    assert again == 1
    entries = []
    for operation in ("issueToken", "revokeToken"):
        body = await post_graphql(api, AUDIT, {"operation": operation}, as_=FULL)
        entries += data_of(body)["auditLog"]["nodes"]
    assert entries == [
        {
            "adminId": None,
            "operation": "issueToken",
            "objectType": "admin",
            "objectId": me,
            "before": None,
            "after": {"label": "laptop"},
        },
        {
            "adminId": None,
            "operation": "revokeToken",
            "objectType": "admin",
            "objectId": me,
            "before": None,
            "after": None,
        },
    ]
    assert token not in str(entries)
    other = await post_graphql(api, AUDIT, {"operation": "issueToken"}, as_=OTHER_FULL)
    assert data_of(other)["auditLog"]["nodes"] == []
