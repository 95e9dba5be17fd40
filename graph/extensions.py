"""Schema extensions: limits from settings, documents cached within bounds, masked unexpected
errors.

An error reaching a client is either coded where it was made (``ApiError`` in resolvers, the
parse/validation/variable steps of ``graph.documents``, the limit rules, the query cost) or it
is unexpected: masked as ``INTERNAL_SERVER_ERROR`` and logged once, with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache, partial
from typing import Any

from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from db.settings import Settings
from graph.cost import CostMeter, selected_operation
from graph.document_limits import limits_rule
from graph.documents import DocumentCache, coded_rule, variable_errors
from graph.errors import ApiError, ErrorCode, contention, is_coded
from graph.input_limits import refuse_out_of_bounds

log = logging.getLogger("partner_hub.errors")
Rules = tuple[type[ASTValidationRule], ...]
EXECUTED = "ph_executed"


# Where graphql-core coerces a field's arguments: an error raised there is the request's (an
# explicit null for a non-null argument that has a default, ``first: $first`` with ``$first:
# Int`` given null), a field error by the specification, not a fault of the server.
_COERCION = frozenset(("graphql.execution.values", "graphql.utilities.validate_input_value"))


def _raised_in(error: BaseException) -> str | None:
    trace = error.__traceback__
    if trace is None:
        return None
    while trace.tb_next is not None:
        trace = trace.tb_next
    name = trace.tb_frame.f_globals.get("__name__")
    return name if isinstance(name, str) else None


def input_error(error: GraphQLError) -> GraphQLError | None:
    """``error`` coded BAD_USER_INPUT when graphql-core raised it coercing the field's argument
    values, else None."""
    original = error.original_error
    if type(original) is not GraphQLError or original.original_error is not None:
        return None
    if _raised_in(original) not in _COERCION:
        return None
    return GraphQLError(
        message=original.message,
        nodes=error.nodes,
        path=error.path,
        extensions={"code": ErrorCode.BAD_USER_INPUT.value},
    )


def unexpected_error(
    error: GraphQLError, request_id: str | None, committed: bool = False
) -> GraphQLError:
    """The masked form of an error nobody gave a code, logged here (once) with its traceback;
    an argument graphql-core refused is the client's error, coded as such (``input_error``).
    ``committed``: a mutation of the request committed already (``Context.committed``)."""
    refused = input_error(error)
    if refused is not None:
        log.info(
            "argument refused: %s",
            refused.message,
            extra={"request_id": request_id, "path": error.path, "code": "BAD_USER_INPUT"},
        )
        return refused
    original = error.original_error or error
    if contention(original):
        # Expected under load or a deployment's timeouts: one line, no traceback, coded so
        # that a client retries (a mutation's transaction was rolled back: nothing written),
        # unless a mutation of the request committed before (its payload's reads, the
        # caller's reload, a later mutation of the document): retried, it would write twice.
        log.warning(
            "database busy: %s",
            type(original).__name__,
            extra={"request_id": request_id, "path": error.path, "code": "DATABASE_BUSY"},
        )
        message = (
            "The database is busy; a mutation of this request was written before. Check "
            "before retrying."
            if committed
            else "The database is busy; nothing was written. Retry the request."
        )
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            path=error.path,
            extensions={
                "code": ErrorCode.DATABASE_BUSY.value,
                "retryable": not committed,
                "requestId": request_id,
            },
        )
    log.error(
        "unexpected error: %s",
        type(original).__name__,
        exc_info=(type(original), original, original.__traceback__),
        extra={"request_id": request_id, "path": error.path},
    )
    return GraphQLError(
        message=f"Internal server error (request id {request_id}).",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id},
    )


class Guards(MaskErrors):
    """Every step Partner Hub adds to Strawberry's, in one extension, in this order:

    - operation: the document limits' validation rule joins the validation rules; once the
      operation is over, every error without a code is masked (``unexpected_error``);
    - parsing and validation through the bounded ``DocumentCache``, each step's errors coded and
      stopping the request before execution; the name the client sent chooses the operation;
    - execution: argument values out of bounds refuse it (``graph.input_limits``), then its
      cost is priced, checked and spent (``graph.cost.CostMeter``; ``extensions.cost``), then,
      when nothing refused it, the request's scope records that execution started (the response
      keeps ``data`` only then); the actual cost is counted after.

    These were six extensions (AddValidationRules, Documents, InputLimits, QueryCost,
    MaskUnexpectedErrors, ExecutionStarted) until issue 17: each was an object a request, and
    each of their seven hooks a context manager entered and left through Strawberry's exit
    stacks (about 60 us of a ``{ __typename }``'s CPU). The order of their steps is theirs."""

    def __init__(
        self, rules: tuple[type[ASTValidationRule], ...], documents: DocumentCache
    ) -> None:
        super().__init__(should_mask_error=_uncoded)
        self.rules = rules
        self.documents = documents
        self.cost = CostMeter()
        self._masking: Iterator[None] = iter(())

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        return unexpected_error(
            error,
            getattr(context, "request_id", None),
            bool(getattr(context, "committed", False)),
        )

    def _process_result(self, result: object) -> None:
        # Strawberry's test, ``isinstance(result, _ResultWithErrors) and result.errors``, is a
        # runtime-checkable Protocol's, which gathers the Protocol's attributes through its MRO
        # on every call (about 7 us a request, errors or not) to check that ``errors`` exists
        # on the result; reading the attribute says the same.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    # Each hook is the step methods below around its ``yield``: ``graph.operation.Schema`` runs
    # the same steps in the same order without Strawberry's hook machinery.

    def on_operation(self) -> Iterator[None]:
        self.begin_operation()
        yield
        self.end_operation()

    def begin_operation(self) -> None:
        ec = self.execution_context
        ec.validation_rules = ec.validation_rules + self.rules
        # ``MaskErrors``' own hook, driven step by step: up to its ``yield`` now, the rest (the
        # result's errors masked) in ``end_operation``.
        self._masking = super().on_operation()
        next(self._masking)

    def end_operation(self) -> None:
        next(self._masking, None)

    def on_parse(self) -> Iterator[None]:
        self.parse()
        yield

    def parse(self) -> None:
        ec = self.execution_context
        if ec.query is not None:
            ec.graphql_document = self.documents.parse(ec.query)

    def on_validate(self) -> Iterator[None]:
        self.validate()
        yield

    def validate(self) -> None:
        ec = self.execution_context
        document, schema = ec.graphql_document, ec.schema._schema
        if document is not None and ec.query is not None:
            errors = self.documents.validate(schema, ec.query, document, ec.validation_rules)
            # The name the client sent (strawberry's ``operation_name`` falls back to the first
            # operation's, which would run one of several operations nobody chose).
            provided = getattr(ec, "_provided_operation_name", None)
            operation = selected_operation(document, provided)
            if not errors and operation is None:
                errors = [
                    ApiError(
                        "The document has several operations: name one in `operationName`.",
                        ErrorCode.OPERATION_RESOLUTION_FAILURE,
                    )
                ]
            elif not errors and operation is not None:
                errors = variable_errors(schema, document, operation, ec.variables)
            ec.pre_execution_errors = list(errors)

    async def on_execute(self) -> AsyncIterator[None]:
        await self.begin_execution()
        yield
        self.end_execution()

    async def begin_execution(self) -> None:
        ec = self.execution_context
        refuse_out_of_bounds(ec)
        await self.cost.before(ec)
        request = getattr(ec.context, "request", None)
        if ec.result is None and request is not None:
            request.scope.setdefault("state", {})[EXECUTED] = True

    def end_execution(self) -> None:
        self.cost.after(self.execution_context)

    def get_results(self) -> dict[str, Any]:
        return self.cost.get_results()


def _uncoded(error: GraphQLError) -> bool:
    return not is_coded(error)


@cache
def _documents(chars: int, tokens: int, parsed: int, validated: int, mb: int) -> DocumentCache:
    return DocumentCache(
        max_chars=chars, max_tokens=tokens, parsed=parsed, validated=validated, max_bytes=mb << 20
    )


def document_cache(settings: Settings) -> DocumentCache:
    """The process's document cache for these limits (shared by the schema and the app)."""
    return _documents(
        settings.max_document_chars,
        settings.max_tokens,
        settings.parser_cache_size,
        settings.validation_cache_size,
        settings.document_cache_mb,
    )


def limit_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Factories, never shared instances: every request gets a fresh extension object.

    The depth and alias rule (``graph.document_limits``) is built once per schema, not per
    request: a new rule class per request would change the ``ValidationCache`` key and
    revalidate every document (about half a request's CPU).
    """
    rules: Rules = (
        coded_rule(
            limits_rule(settings.max_query_depth, settings.max_aliases),
            ErrorCode.QUERY_TOO_COMPLEX,
        ),
    )
    return [partial(Guards, rules, document_cache(settings))]
