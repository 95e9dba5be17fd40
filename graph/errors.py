"""Error codes clients can rely on (``extensions.code``) and helpers that raise them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from graphql import GraphQLError


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


class ApiError(GraphQLError):
    """An expected failure that reaches the client as-is, with ``extensions.code``."""

    def __init__(self, message: str, code: ErrorCode, **extra: Any) -> None:
        super().__init__(message, extensions={"code": code.value, **extra})
        self.code = code


def bad_input(message: str, code: ErrorCode = ErrorCode.BAD_USER_INPUT, **extra: Any) -> ApiError:
    return ApiError(message, code, **extra)


def forbidden(message: str = "You are not allowed to do this.") -> ApiError:
    return ApiError(message, ErrorCode.FORBIDDEN)
