"""The token lookup on the driver's own connection (``db.driver_query``): the same row as
SQLAlchemy's path, SQLAlchemy's path wherever the driver's would differ, and SQLAlchemy's
errors when the driver fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Float,
    Numeric,
    String,
    TypeDecorator,
    bindparam,
    cast,
    exc,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from db.driver_query import DriverQuery
from db.engine import session_factory
from db.models import Admin, ApiToken
from db.queries.admins import AUTHENTICATE, authenticate_token, hash_token, issue_token
from db.types import UTCDateTime
from tests.conftest import NOW, Api, postgresql_only
from tests.helpers import Factory, data_of, post_graphql, token_for

AD = Admin.__table__.c  # type: ignore[attr-defined]
TK = ApiToken.__table__.c  # type: ignore[attr-defined]
AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


@pytest.fixture
async def token(api: Api) -> str:
    factory = Factory(api.engine)
    partner = await factory.partner("Acme Partners", "acme.example")
    admin = await factory.admin(partner, "full@acme.example", "FULL_ADMIN", name="Fiona Full")
    async with session_factory(api.engine)() as session:
        token = await issue_token(session, admin_id=admin, now=NOW)
        await session.commit()
    return token


class SqlAlchemyPath:
    """Counts the statements that went through ``AsyncConnection.execute``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = AsyncConnection.execute

        async def execute(connection: AsyncConnection, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await original(connection, *args, **kwargs)

        monkeypatch.setattr(AsyncConnection, "execute", execute)


async def query_connection(session: Any, backend: str) -> AsyncConnection:
    """The connection as a query's request takes it (``graph.endpoint``)."""
    options = AUTOCOMMIT if backend == "postgresql" else {}
    return await session.connection(execution_options=options)


async def test_driver_path_gives_sqlalchemys_row(
    api: Api, token: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    params = {"token_hash": hash_token(token)}
    async with session_factory(api.engine)() as session:
        connection = await query_connection(session, backend)
        expected = (await connection.execute(AUTHENTICATE.statement, params)).first()
        sqlalchemy_path = SqlAlchemyPath(monkeypatch)

        # when
        with api.counter.counting() as statements:
            row = await AUTHENTICATE.first(connection, params)
            missing = await AUTHENTICATE.first(connection, {"token_hash": hash_token("nope")})

    # then: the same values, without SQLAlchemy's execution, and the engine's listeners saw
    # both statements
    assert expected is not None
    assert tuple(row) == tuple(expected)
    assert missing is None
    assert sqlalchemy_path.calls == 0
    assert len(statements) == 2 and all("api_token" in s for s in statements)


@postgresql_only  # SQLite's reads open no transaction on either path
async def test_a_transactions_first_statement_takes_sqlalchemys_path(
    api: Api, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a mutation's connection on PostgreSQL (SQLAlchemy sends BEGIN before the lookup)
    sqlalchemy_path = SqlAlchemyPath(monkeypatch)
    async with session_factory(api.engine)() as session:
        connection = await session.connection()

        # when
        principal = await authenticate_token(session, token=token)

        # then
        assert principal is not None and principal.email == "full@acme.example"
        assert sqlalchemy_path.calls == 1
        assert connection.sync_connection is not None
        assert connection.sync_connection.connection.dbapi_connection._transaction is not None


async def test_a_driver_failure_raises_sqlalchemys_error(
    api: Api, token: str, backend: str
) -> None:
    # given: the request's driver connection closed under it (a server restart)
    async with session_factory(api.engine)() as session:
        connection = await query_connection(session, backend)
        assert connection.sync_connection is not None
        adapter = connection.sync_connection.connection.dbapi_connection
        await adapter.driver_connection.close()

        # when / then: as SQLAlchemy's path raised it, the connection invalidated
        with pytest.raises(exc.DBAPIError):
            await authenticate_token(session, token=token)
        assert connection.invalidated


async def test_processed_parameters_and_columns_get_sqlalchemys_processors(
    api: Api, token: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a typed parameter (UTCDateTime, a TypeDecorator) and columns SQLAlchemy converts
    # (a Boolean and UTCDateTimes, stored as integers and text on SQLite)
    since = bindparam("since", type_=UTCDateTime())
    statement = select(AD.email, AD.active, AD.created_at, TK.created_at, TK.revoked_at).join(
        ApiToken, TK.admin_id == AD.id
    )
    statement = statement.where(TK.created_at >= since, TK.token_hash == bindparam("h"))
    query = DriverQuery(statement)
    params = {"since": NOW - timedelta(days=1), "h": hash_token(token)}
    async with session_factory(api.engine)() as session:
        connection = await query_connection(session, backend)
        expected = (await connection.execute(statement, params)).all()
        sqlalchemy_path = SqlAlchemyPath(monkeypatch)

        # when
        rows = await query.all(connection, params)
        first = await query.first(connection, params)
        none = await query.all(connection, {**params, "since": NOW + timedelta(days=1)})

    # then: the very values SQLAlchemy's path gave (types included), without its execution
    assert len(expected) == 1
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    assert [type(v) for v in rows[0]] == [type(v) for v in expected[0]]
    assert rows[0][1] is True and rows[0][2].tzinfo is not None
    assert first == rows[0]
    assert none == []
    assert sqlalchemy_path.calls == 0


def test_a_statement_with_expanding_parameters_is_left_to_sqlalchemy(
    api: Api, backend: str
) -> None:
    # given: an IN list, which SQLAlchemy expands into one parameter per value when it runs
    statement = select(AD.id).where(AD.id.in_(bindparam("ids", expanding=True)))

    # when
    compiled = DriverQuery(statement)._compile(api.engine.dialect)

    # then
    assert compiled is None
    assert AUTHENTICATE._compile(api.engine.dialect) is not None


async def test_a_parameter_whose_name_sqlalchemy_escapes_runs_as_on_sqlalchemys_path(
    api: Api, backend: str
) -> None:
    # given: a parameter named with characters SQLAlchemy escapes in the compiled statement
    statement = select(AD.email).where(AD.email == bindparam("admin.email[0]"))
    params = {"admin.email[0]": "nobody@example.com"}
    async with session_factory(api.engine)() as session:
        connection = await query_connection(session, backend)
        expected = (await connection.execute(statement, params)).all()

        # when
        rows = await DriverQuery(statement).all(connection, params)

    # then
    assert rows == expected == []


DIRECTORY = """query {
  customers(first: 10) {
    nodes { id name createdAt statuses tags { name }
      subscriptions { subscriptionId startDate licenses { product purchased } }
      partnerAdmins { role admin { name } } }
  }
}"""
DETAIL = """query($id: ID!) {
  customer(id: $id) { name lastAdminSignInAt
    subscriptions { subscriptionId endDate licenses { product } }
    partnerAdmins { admin { email } } }
}"""


async def test_directory_and_detail_reads_take_the_drivers_path(
    uncached_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a customer with a subscription and an assigned admin
    api = uncached_api
    f = Factory(api.engine)
    partner = await f.partner("Acme Partners", "acme.example")
    admin = await f.admin(partner, "full@acme.example", "FULL_ADMIN", name="Fiona Full")
    token = await token_for(api, "full@acme.example")
    customer = await f.customer(partner, "Alpha")
    await f.subscription(customer)
    await f.assign(customer, admin)
    # the app has started, both documents are known (an unknown one keeps its transaction)
    page = data_of(await post_graphql(api, DIRECTORY, token=token))["customers"]["nodes"]
    await post_graphql(api, DETAIL, {"id": page[0]["id"]}, token=token)
    sqlalchemy_path = SqlAlchemyPath(monkeypatch)

    # when
    with api.counter.counting() as statements:
        page = data_of(await post_graphql(api, DIRECTORY, token=token))["customers"]["nodes"]
        found = await post_graphql(api, DETAIL, {"id": page[0]["id"]}, token=token)

    # then: every statement (token lookups, the page with its relationships, the detail) ran
    # on the driver, the engine's listeners saw each, and the answers carry the converted
    # values; on PostgreSQL the token lookups rode along the page's and the detail's statements
    # (db.token_check)
    assert sqlalchemy_path.calls == 0
    if api.db.backend == "postgresql":
        assert len(statements) == 2
        assert sum("partner_hub_token_check" in sql for sql in statements) == 2
    else:
        assert len(statements) == 4
    assert page[0]["subscriptions"][0]["licenses"] == [{"product": "MEETINGS", "purchased": 10}]
    assert page[0]["partnerAdmins"] == [{"role": "FULL_ADMIN", "admin": {"name": "Fiona Full"}}]
    detail = data_of(found)["customer"]
    assert detail["name"] == "Alpha" and detail["lastAdminSignInAt"].endswith("+00:00")
    assert detail["partnerAdmins"] == [{"admin": {"email": "full@acme.example"}}]


async def test_columns_whose_processor_depends_on_the_drivers_column_type(
    api: Api, token: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a Float and a Numeric column, whose processors on asyncpg depend on the type the
    # cursor reports (float8 or numeric), which the driver's path does not have when it compiles
    statement = select(
        cast(AD.id, Float).label("f"), cast(AD.id, Numeric(10, 2)).label("n"), AD.email
    ).where(AD.email == bindparam("email"))
    query = DriverQuery(statement)
    params = {"email": "full@acme.example"}
    async with session_factory(api.engine)() as session:
        connection = await query_connection(session, backend)
        expected = (await connection.execute(statement, params)).all()

        # when
        rows = await query.all(connection, params)

    # then: the values SQLAlchemy's path gives, whichever path ran
    assert len(expected) == 1
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    assert [type(v) for v in rows[0]] == [type(v) for v in expected[0]]


class Absent(TypeDecorator[str]):
    """A type whose processors give NULL a value (as a TypeDecorator may)."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> str:
        return "absent" if value is None else value


async def test_null_parameters_and_columns_are_processed_as_sqlalchemy_processes_them(
    api: Api, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a JSON parameter given None (SQLAlchemy sends the JSON text 'null') and a NULL
    # column of a type that reads NULL as a value
    statement = select(
        func.length(cast(bindparam("j", type_=JSON), String)).label("j"),
        type_coerce(literal_column("NULL"), Absent).label("a"),
    )
    query = DriverQuery(statement)
    async with session_factory(api.engine)() as session:
        connection = await query_connection(session, backend)
        expected = (await connection.execute(statement, {"j": None})).all()
        sqlalchemy_path = SqlAlchemyPath(monkeypatch)

        # when
        rows = await query.all(connection, {"j": None})

    # then
    assert [tuple(row) for row in expected] == [(4, "absent")]
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    assert sqlalchemy_path.calls == 0
