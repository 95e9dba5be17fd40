"""Error codes clients can rely on (``extensions.code``) and helpers that raise them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext


class ErrorCode(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    INVALID_ID = "INVALID_ID"
    INVALID_CURSOR = "INVALID_CURSOR"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
    SEARCH_TOO_LONG = "SEARCH_TOO_LONG"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    # The database refused a statement for contention, not for the request's content: a lock
    # wait or statement past a timeout the deployment set, a deadlock, a serialization
    # failure, SQLite's busy timeout. Its transaction was rolled back: ``retryable`` unless a
    # mutation of the request committed before (``graph.extensions.unexpected_error``).
    DATABASE_BUSY = "DATABASE_BUSY"
    # The HTTP envelope (graph/transport.py): refused before any GraphQL step.
    BAD_REQUEST = "BAD_REQUEST"
    BATCHING_NOT_SUPPORTED = "BATCHING_NOT_SUPPORTED"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    # Persisted queries (graph/persisted.py).
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
    PERSISTED_QUERY_NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"


class ApiError(GraphQLError):
    """An expected failure that reaches the client as-is, with ``extensions.code``."""

    def __init__(self, message: str, code: ErrorCode, **extra: Any) -> None:
        super().__init__(message, extensions={"code": code.value, **extra})
        self.code = code


# SQLSTATEs of contention (PostgreSQL): lock_not_available (``lock_timeout``), query_canceled
# (``statement_timeout``), deadlock_detected, serialization_failure.
CONTENTION_STATES = frozenset(("55P03", "57014", "40P01", "40001"))


def contention(error: BaseException | None) -> bool:
    """Whether ``error`` (or an error it was raised from) is the database's contention refusal:
    a SQLAlchemy ``DBAPIError`` whose driver error has one of ``CONTENTION_STATES``, or
    SQLite's SQLITE_BUSY ("database is locked" once its busy timeout has passed)."""
    seen = 0
    while error is not None and seen < 8:  # a chain of causes, bounded
        # The driver's error itself too: a statement run on the driver connection
        # (``db.driver_query.run_alone``, a provisional request's token lookup, from a statement
        # listener) raises asyncpg's own, which SQLAlchemy does not wrap.
        for driver in (getattr(error, "orig", None), error):
            if getattr(driver, "sqlstate", None) in CONTENTION_STATES:
                return True
            # Python names SQLite's extended codes (SQLITE_BUSY_SNAPSHOT, ..._RECOVERY).
            name = getattr(driver, "sqlite_errorname", None)
            if isinstance(name, str) and name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                return True
        error = error.__cause__ or getattr(error, "original_error", None)
        seen += 1
    return False


def is_coded(error: GraphQLError) -> bool:
    """Whether the error got its code where it was made (else it is unexpected)."""
    return bool((error.extensions or {}).get("code"))


def bad_input(message: str, code: ErrorCode = ErrorCode.BAD_USER_INPUT, **extra: Any) -> ApiError:
    return ApiError(message, code, **extra)


def forbidden(message: str = "You are not allowed to do this.") -> ApiError:
    return ApiError(message, ErrorCode.FORBIDDEN)


def caller_gone() -> ApiError:
    """The caller's own row is not there (its admin deleted or moved, its partner deleted).
    On a provisional request (``db.token_check``) the lookup riding along a statement that
    found no row has not answered: the request settles it and answers 401 (or runs again as
    the token's principal now). Coded, so that the answer thrown away logs no unexpected error
    with its traceback; on a request whose lookup ran first it is the client's 401 all the
    same, its token's admin gone since."""
    return ApiError("The token's administrator or partner is gone.", ErrorCode.UNAUTHENTICATED)


class Schema(strawberry.Schema):
    """Strawberry's schema without its error log (it logs every error, expected ones too, with
    a traceback; unexpected errors are logged once, where they are masked), its extensions'
    hooks looked up once per class (``graph.hooks``)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        return None

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        from graph.hooks import CachedHooksRunner  # (graph.hooks imports Strawberry only)

        return CachedHooksRunner(execution_context=execution_context, extensions=extensions)
