"""The ``partner-hub`` command, run as a user runs it: a subprocess of the console script.

SQLite only: the command's own behaviour (argument handling, one-line errors, nothing written on
bad input) does not depend on the backend, and the database code it calls is tested on SQLite
and PostgreSQL by the rest of the suite. A handful of subprocesses keeps this module fast.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select
from sqlmodel import SQLModel

from db.engine import create_engine
from db.migrate import migrate
from db.settings import Settings
from tests.conftest import app_client
from tests.helpers import Factory

PARTNER_HUB = Path(sys.executable).with_name("partner-hub")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.splitlines()


@dataclass
class Workspace:
    """An empty working directory and the SQLite URL the command is pointed at."""

    cwd: Path
    url: str

    @property
    def db_file(self) -> Path:
        return self.cwd / "hub.db"

    async def run(self, *args: str, database_url: str | None = None) -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNER_HUB_")}
        env["PARTNER_HUB_DATABASE_URL"] = database_url or self.url
        process = await asyncio.create_subprocess_exec(
            str(PARTNER_HUB),
            *args,
            cwd=self.cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return Run(process.returncode, stdout.decode(), stderr.decode())

    async def row_counts(self) -> dict[str, int]:
        engine = create_engine(self.url, pool=False)
        try:
            async with engine.connect() as conn:
                return {
                    table.name: (
                        await conn.execute(select(func.count()).select_from(table))
                    ).scalar_one()
                    for table in SQLModel.metadata.sorted_tables
                }
        finally:
            await engine.dispose()


def assert_one_line_error(run: Run) -> None:
    assert run.code != 0, run
    assert len(run.error_lines) == 1, run.stderr
    assert run.error_lines[0].startswith("partner-hub: error: "), run.stderr
    assert "Traceback" not in run.stderr + run.stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(cwd=tmp_path, url=f"sqlite+aiosqlite:///{tmp_path}/hub.db")


@pytest.fixture
async def migrated(workspace: Workspace) -> AsyncIterator[Workspace]:
    """The workspace's database migrated (in-process, faster) with the partner Acme Partners."""
    engine = create_engine(workspace.url)
    try:
        await migrate(engine)
        await Factory(engine).partner("Acme Partners", "acme.example")
    finally:
        await engine.dispose()
    yield workspace


async def test_migrate_creates_the_schema(workspace: Workspace) -> None:
    # when
    run = await workspace.run("migrate")

    # then
    assert run.code == 0, run.stderr
    engine = create_engine(workspace.url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert {t.name for t in SQLModel.metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


@pytest.mark.parametrize(
    "args",
    [
        ["migrate", "--frobnicate"],
        ["token", "issue", "full@acme.example", "--frobnicate"],
    ],
)
async def test_unknown_flags_and_commands_are_one_line_errors(
    workspace: Workspace, args: list[str]
) -> None:
    # when
    run = await workspace.run(*args)

    # then
    assert_one_line_error(run)
    assert list(workspace.cwd.iterdir()) == []


@pytest.mark.parametrize("url", ["mysql://x", "not a url"])
async def test_a_bad_database_url_is_a_one_line_error_and_creates_nothing(
    workspace: Workspace, url: str
) -> None:
    # when
    run = await workspace.run("migrate", database_url=url)

    # then
    assert_one_line_error(run)
    assert "database URL" in run.stderr
    assert list(workspace.cwd.iterdir()) == []


async def test_token_issue_without_a_database_creates_none(workspace: Workspace) -> None:
    # when
    run = await workspace.run("token", "issue", "full@acme.example")

    # then
    assert_one_line_error(run)
    assert run.stdout == ""
    assert not workspace.db_file.exists()


async def test_token_issue_for_an_unknown_email_writes_nothing(migrated: Workspace) -> None:
    # given
    before = await migrated.row_counts()

    # when
    run = await migrated.run("token", "issue", "unknown@nowhere.example")

    # then
    assert_one_line_error(run)
    assert "unknown@nowhere.example" in run.stderr
    assert run.stdout == ""
    assert await migrated.row_counts() == before


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--role", "KING"], "KING"),
        (["--role", "FULL_ADMIN", "--email", "not-an-email"], "not-an-email"),
    ],
)
async def test_admin_create_with_bad_input_writes_nothing(
    migrated: Workspace, args: list[str], complaint: str
) -> None:
    # given
    before = await migrated.row_counts()
    defaults = {"--partner": "Acme Partners", "--email": "new@acme.example"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    options = [x for key, value in {**defaults, **given}.items() for x in (key, value)]

    # when
    run = await migrated.run("admin", "create", *options)

    # then
    assert_one_line_error(run)
    assert complaint in run.stderr
    assert await migrated.row_counts() == before


async def test_created_admin_gets_a_token_that_authenticates(migrated: Workspace) -> None:
    # given
    created = await migrated.run(
        "admin", "create", "--partner", "Acme Partners", "--email", "Ada@Acme.example",
        "--role", "PARTNER_ADMIN", "--name", "Ada Admin",
    )  # fmt: skip
    assert created.code == 0, created.stderr

    # when
    issued = await migrated.run("token", "issue", "ada@acme.example")

    # then: the token stands alone on the last line of stdout
    assert issued.code == 0, issued.stderr
    token = issued.stdout.splitlines()[-1]
    assert token and token == token.strip() and " " not in token
    # and it authenticates against an app over the same database
    async with app_client(Settings(database_url=migrated.url, secret_key="s")) as (_, client):
        response = await client.post(
            "/graphql",
            json={"query": "query Me { viewer { email name role partner { name } } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["viewer"] == {
        "email": "ada@acme.example",
        "name": "Ada Admin",
        "role": "PARTNER_ADMIN",
        "partner": {"name": "Acme Partners"},
    }
