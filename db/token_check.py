"""The token lookup riding along a query's first statement (issue 17: one round trip fewer).

Every request looked its bearer token up first, alone, then ran its statements: two round
trips on PostgreSQL for a detail, three for a directory page, against PostGraphile's one. Under
load each trip costs the worker a send and a wake-up (~150 us of CPU here, py-spy), and the
database a statement of its own. The lookup must stay on every request: a revoked token, a
deactivated admin, a new role or policy is honoured at once on every instance (DESIGN.md).

So a query whose token this process has seen runs *provisionally* as the principal last seen
with it, and the lookup rides along with the request's first statement: one more column
(``TOKEN_CHECK_COLUMN``, the lookup as one array of texts) added to that statement. Nothing the
provisional run produced leaves the request before the check has its answer, and the answer
must be the principal the run assumed, field for field (role, partner, policy and data
versions, ...); otherwise the run is thrown away and the request answered again as before
(``graph.endpoint``). The check is enforced on the connection, not by the callers:

- ``TokenCheck`` is attached to every connection the request's session takes (the session's
  ``after_begin``, ``attach``), as an execution option;
- ``db.driver_query`` carries it on a statement that has a checked form (a directory page, a
  walked page, the detail, a page's relationships);
- any other statement on that connection first runs the lookup alone
  (``db.driver_query.guard_riders``, the engine's first ``before_cursor_execute`` listener),
  and no statement runs once the check has failed;
- before anything is answered the endpoint settles it (``TokenCheck.settle``): a request that
  ran no statement (a cached answer, a refusal) looks the token up then, as before.

PostgreSQL only (SQLite's lookup is no round trip), queries only (a mutation never runs on a
principal it has not looked up), POST only.
"""

from __future__ import annotations

import contextlib
import enum
from collections import OrderedDict
from typing import Any

import orjson
from sqlalchemy import Text, bindparam, cast, event, func
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util.concurrency import greenlet_spawn

from db.driver_query import RIDER, guard_riders, run_alone
from db.engine import RequestSession
from db.queries.admins import AUTHENTICATE, LOOKUP, TK, Principal, hash_token, principal_from

# The lookup as one column: its values as one JSON text, in ``LOOKUP``'s order (NULL when the
# token is unknown, revoked or its admin inactive). A text, not an array: the column repeats on
# every row of a page, and an array of ten texts cost the server decoding and processing ten
# values a row (a directory page of 51 rows: ~0.3 ms of CPU, measured over HTTP). Never
# correlated to the statement it rides on (which may read admins too).
TOKEN_CHECK_COLUMN = (
    LOOKUP.with_only_columns(cast(func.json_build_array(*LOOKUP.selected_columns), Text))
    .where(TK.token_hash == bindparam("partner_hub_token_hash"))
    .correlate(None)
    .scalar_subquery()
    .label("partner_hub_token_check")
)
# The lookup alone, for a statement without a checked form (and at the end, ``settle``): the
# request's own lookup (one prepared statement a connection for both).
_ALONE = AUTHENTICATE


def with_token_check(statement: Any) -> Any:
    """``statement`` (a Core SELECT) with the token check as its last column."""
    return statement.add_columns(TOKEN_CHECK_COLUMN)


class PrincipalChanged(Exception):
    """The token's principal is not the one the request ran as: its work is thrown away.

    Coded (GraphQL takes an original error's ``extensions``): raised in a resolver, it was an
    uncoded error, masked and logged as an unexpected error with its traceback, for every
    rerun, though the answer it is in is never sent."""

    extensions = {"code": "UNAUTHENTICATED"}


class State(enum.Enum):
    PENDING = "pending"
    VERIFIED = "verified"
    CHANGED = "changed"


class TokenCheck:
    """A provisional request's pending token lookup (``expected``: the principal it runs as)."""

    __slots__ = (
        "carrier",
        "connection",
        "expected",
        "fresh",
        "looking_up",
        "memo",
        "state",
        "token_hash",
    )

    def __init__(self, token_hash: str, expected: Principal, memo: PrincipalMemo) -> None:
        self.token_hash, self.expected, self.memo = token_hash, expected, memo
        self.state = State.PENDING
        self.fresh: Principal | None = None  # the lookup's answer (None: 401)
        self.carrier: str | None = None  # the statement text carrying the check right now
        self.looking_up = False  # the lookup alone is about to run (``look_up``)
        self.connection: AsyncConnection | None = None  # the request's (``settle``)

    @property
    def pending(self) -> bool:
        return self.state is State.PENDING

    def params(self) -> dict[str, Any]:
        return {"partner_hub_token_hash": self.token_hash}

    def arrived(self, text: Any) -> None:
        """The check column's value (or None: no such token): raises ``PrincipalChanged``
        unless it is the expected principal."""
        self.arrived_row(None if text is None else orjson.loads(text))

    def arrived_row(self, row: Any) -> None:
        self.fresh = None if row is None else principal_from(row)
        self.state = State.VERIFIED if self.fresh == self.expected else State.CHANGED
        if self.state is State.CHANGED:
            self.memo.put(self.token_hash, self.fresh)
        self.raise_if_changed()

    def raise_if_changed(self) -> None:
        if self.state is State.CHANGED:
            raise PrincipalChanged("the token's principal changed")

    async def settle(self) -> bool:
        """Whether the request ran as the token's principal: the lookup runs now (on the
        request's connection) if no statement carried it."""
        if self.pending:
            assert self.connection is not None, "a check settles on its request's connection"
            with contextlib.suppress(PrincipalChanged):
                await greenlet_spawn(self.look_up, self.connection.sync_connection)
        return self.state is State.VERIFIED

    def look_up(self, sync: Connection) -> None:
        """Run the lookup alone on ``sync`` (in SQLAlchemy's greenlet) and take its answer."""
        # Its own statement passes ``before``: the first the guard sees from now on, before
        # anything awaits (a flag up while the lookup waited let another task's statement pass
        # unchecked and run after a failed check).
        self.looking_up = True
        try:
            row = run_alone(sync, _ALONE, {"token_hash": self.token_hash})
        finally:
            self.looking_up = False
        self.arrived_row(row)

    def before(self, conn: Connection, statement: str) -> None:
        """No statement runs on a provisional request's connection before the check has
        answered (it rides along the statement itself, or runs alone first) or after it
        failed."""
        if self.looking_up:
            self.looking_up = False  # the lookup's own statement (``look_up``)
            return
        if self.state is State.VERIFIED:
            return
        self.raise_if_changed()
        if statement != self.carrier:
            self.look_up(conn)


def attach(session: Any, check: TokenCheck) -> None:
    """Make every connection ``session`` (an ``AsyncSession``) takes from now on carry
    ``check``, on an engine whose statements it sees (``db.driver_query.guard_riders``, which
    ``db.engine.create_engine`` installs first on a PostgreSQL engine)."""
    engine = session.bind.sync_engine
    if not event.contains(engine, "before_cursor_execute", guard_riders):
        event.listen(engine, "before_cursor_execute", guard_riders, insert=True, retval=True)
    session.sync_session.info[RIDER] = check
    bind = session.bind
    if isinstance(bind, AsyncConnection):
        # A query's kept connection (db.query_lane), which the session may never begin on;
        # the lane clears the rider before the connection serves another request.
        sync = bind.sync_connection
        assert sync is not None
        sync.execution_options(**{RIDER: check})


@event.listens_for(RequestSession, "after_begin")
def _attach(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    check = session.info.get(RIDER)
    if check is not None:
        connection.execution_options(**{RIDER: check})


class PrincipalMemo:
    """The principal last seen with each token (by hash), at most ``size``: what a request runs
    as provisionally. Only tokens that were valid enter; a token found invalid leaves."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: OrderedDict[str, Principal] = OrderedDict()

    def get(self, token_hash: str) -> Principal | None:
        return self._seen.get(token_hash)

    def put(self, token_hash: str, principal: Principal | None) -> None:
        if principal is None:
            self._seen.pop(token_hash, None)
            return
        self._seen[token_hash] = principal
        self._seen.move_to_end(token_hash)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)


__all__ = [
    "TOKEN_CHECK_COLUMN",
    "PrincipalChanged",
    "PrincipalMemo",
    "TokenCheck",
    "attach",
    "hash_token",
    "with_token_check",
]
