"""Schema extensions: limits from settings and masking of unexpected errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)

from db.settings import Settings
from graph.cost import QueryCost
from graph.document_limits import limits_rule
from graph.errors import ErrorCode
from graph.input_limits import InputLimits

log = logging.getLogger("partner_hub.errors")


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """Hide unexpected exceptions from clients; log them with the request id the client gets."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = getattr(self.execution_context.context, "request_id", None)
        log.error(
            "unexpected error",
            exc_info=error.original_error,
            extra={"request_id": request_id, "path": error.path},
        )
        return GraphQLError(
            message=f"Internal server error (request id {request_id}).",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id},
        )

    def on_operation(self) -> Iterator[None]:
        yield from super().on_operation()


_LIMIT_MARKERS = ("exceeds maximum operation depth", "aliases found", "tokens", "token limit")


def add_error_codes(errors: list[Any]) -> None:
    """Give every response error a machine-readable ``extensions.code`` (limits, syntax,
    validation, variables); errors raised by resolvers carry their own already."""
    for error in errors:
        extensions = error.setdefault("extensions", {}) or {}
        if not extensions.get("code"):
            extensions["code"] = _code_for(str(error.get("message", ""))).value
            error["extensions"] = extensions


def _code_for(message: str) -> ErrorCode:
    if any(marker in message for marker in _LIMIT_MARKERS):
        return ErrorCode.QUERY_TOO_COMPLEX
    if message.startswith("Syntax Error"):
        return ErrorCode.GRAPHQL_PARSE_FAILED
    if message.startswith("Variable '$"):
        return ErrorCode.BAD_USER_INPUT
    return ErrorCode.GRAPHQL_VALIDATION_FAILED


def limit_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Factories, never shared instances: every request gets fresh extension objects.

    The depth and alias rule (``graph.document_limits``) is built once per schema, not per
    request: a new rule class per request would change the ``ValidationCache`` key and
    revalidate every document (about half a request's CPU).
    """
    rules: list[type[ASTValidationRule]] = [
        limits_rule(settings.max_query_depth, settings.max_aliases),
    ]
    return [
        partial(AddValidationRules, rules),
        partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        partial(ParserCache, maxsize=settings.parser_cache_size),
        partial(ValidationCache, maxsize=settings.validation_cache_size),
        InputLimits,
        QueryCost,
        MaskUnexpectedErrors,
    ]
