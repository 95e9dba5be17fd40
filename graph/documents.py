"""Documents parsed, validated and their variables coerced, each step giving its errors a code.

Every distinct document a client sends could stay in memory: its text, its parsed tree (about
600 bytes per token, measured with tracemalloc on graphql-core 3.3) and its validation result.
The caches here are LRUs bounded in entries *and* bytes (``PARTNER_HUB_DOCUMENT_CACHE_MB``), a
document longer than ``PARTNER_HUB_MAX_DOCUMENT_CHARS`` is refused before it is read, and the
token limit counts every token the lexer reads, comments included.

Codes are attached where an error is made, never guessed from a message: the limits of this
module raise ``QUERY_TOO_COMPLEX``, the parser's own errors become ``GRAPHQL_PARSE_FAILED``,
errors of the validation step ``GRAPHQL_VALIDATION_FAILED`` (the limit rules wrapped by
:func:`coded_rule` keep theirs) and those of variable coercion ``BAD_USER_INPUT``.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Source,
    TypeInfo,
    ValidationContext,
    get_variable_values,
)
from graphql.language import TokenKind
from graphql.language.parser import Parser

from graph.errors import ApiError, ErrorCode

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Parsed tree per token (FieldNode, NameNode, Location, Token...): 450-610 bytes measured for
# field-heavy documents, ~190 for comment tokens; above the largest, so the bound holds.
AST_BYTES_PER_TOKEN = 700
ENTRY_OVERHEAD = 256


class ByteLRU(Generic[K, V]):
    """An LRU holding at most ``max_entries`` values and ``max_bytes`` of their weights."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: K, value: V, weight: int) -> None:
        weight += ENTRY_OVERHEAD
        if weight > self.max_bytes:
            return
        self.pop(key)
        self._entries[key] = (value, weight)
        self.bytes += weight
        while self.bytes > self.max_bytes or len(self._entries) > self.max_entries:
            self.pop(next(iter(self._entries)))

    def pop(self, key: K) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= found[1]

    def __len__(self) -> int:
        return len(self._entries)


def too_complex(message: str, **extra: Any) -> ApiError:
    return ApiError(message, ErrorCode.QUERY_TOO_COMPLEX, **extra)


class _CountingParser(Parser):
    """graphql-core's parser, counting every token it reads (each comment too) against a limit
    whose error is raised here with its code."""

    def __init__(self, source: Source, max_tokens: int) -> None:
        super().__init__(source)
        self.max_tokens = max_tokens
        self.tokens = 0

    def advance_lexer(self) -> None:
        previous = self._lexer.token
        super().advance_lexer()
        current = self._lexer.token
        node = previous.next
        while node is not None:  # the comments skipped, then the new token
            if node.kind is not TokenKind.EOF:
                self.tokens += 1
            if node is current:
                break
            node = node.next
        if self.tokens > self.max_tokens:
            raise too_complex(
                f"Document contains more than {self.max_tokens} tokens (comments count too).",
                limit=self.max_tokens,
            )


def _coded(error: GraphQLError, code: ErrorCode) -> GraphQLError:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code.value}
    return error


def coded_rule(rule: type[ASTValidationRule], code: ErrorCode) -> type[ASTValidationRule]:
    """``rule`` reporting its errors with ``code`` (the limit rules: ``QUERY_TOO_COMPLEX``)."""

    class Coded(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(_CodingContext(context, code))

    Coded.__name__ = Coded.__qualname__ = f"Coded{rule.__name__}"
    return Coded


class _CodingContext:
    """A validation context whose ``report_error`` gives each error the rule's code."""

    def __init__(self, context: ValidationContext, code: ErrorCode) -> None:
        self._context = context
        self._code = code

    def report_error(self, error: GraphQLError) -> None:
        self._context.report_error(_coded(error, self._code))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def digest(*parts: str | bytes | None) -> bytes:
    """A short key standing for long texts (documents, variables) in a cache."""
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else (part or b"")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


MAX_REPEATED_FIELD = 10


def repeated_fields(document: DocumentNode) -> None:
    """Refuse a selection set whose fields answer one response key more than
    ``MAX_REPEATED_FIELD`` times, fragments expanded: validation (OverlappingFieldsCanBeMerged)
    compares every pair of fields answering the same key, and their sub-selections pair by pair,
    so 990 copies of ``partner { name }`` in one selection set (within the token limit) took
    1.2-1.6 s of CPU to validate, and so did 280 fragments holding one copy each. No real
    document repeats a field that often. Each fragment's keys are counted once (memoised), so
    the check is linear in the document."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, dict[str, int]] = {}

    def keys_of(node: SelectionSetNode, visiting: frozenset[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        spread: set[str] = set()  # a fragment spread twice is compared with itself once
        for selection in node.selections:
            if isinstance(selection, FragmentSpreadNode) and selection.name.value in spread:
                continue
            if isinstance(selection, FieldNode):
                inner = {(selection.alias or selection.name).value: 1}
            elif isinstance(selection, InlineFragmentNode):
                inner = keys_of(selection.selection_set, visiting)
            elif isinstance(selection, FragmentSpreadNode):
                spread.add(selection.name.value)
                inner = fragment_keys(selection.name.value, visiting)
            else:  # pragma: no cover - the three kinds of selection are all there is
                continue
            for key, n in inner.items():
                counts[key] = counts.get(key, 0) + n
                if counts[key] > MAX_REPEATED_FIELD:
                    raise too_complex(
                        f"Field '{key}' is selected more than {MAX_REPEATED_FIELD} times in one "
                        "selection set (fragments included).",
                        limit=MAX_REPEATED_FIELD,
                    )
        return counts

    def fragment_keys(name: str, visiting: frozenset[str]) -> dict[str, int]:
        if name in memo:
            return memo[name]
        fragment = fragments.get(name)
        if fragment is None or name in visiting:  # validation reports these
            return {}
        memo[name] = keys_of(fragment.selection_set, visiting | {name})
        return memo[name]

    for node in _selection_sets(document):
        keys_of(node, frozenset())


def _selection_sets(document: DocumentNode) -> Iterator[SelectionSetNode]:
    stack = [d.selection_set for d in document.definitions if hasattr(d, "selection_set")]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        stack.extend(getattr(s, "selection_set", None) for s in node.selections)


class DocumentCache:
    """Parse and validation results by document, within entry and byte bounds."""

    def __init__(
        self, *, max_chars: int, max_tokens: int, parsed: int, validated: int, max_bytes: int
    ) -> None:
        self.max_chars = max_chars
        self.max_tokens = max_tokens
        self.parsed: ByteLRU[str, DocumentNode] = ByteLRU(parsed, max_bytes)
        # Keyed by a digest: a validation result must not keep a long text alive on its own.
        self.validated: ByteLRU[tuple[bytes, tuple[Any, ...]], list[GraphQLError]] = ByteLRU(
            validated, max_bytes // 4
        )

    def parse(self, query: str) -> DocumentNode:
        """The parsed document; raises a coded ``ApiError`` (limits, syntax)."""
        document = self.parsed.get(query)
        if document is not None:
            return document
        if len(query) > self.max_chars:
            raise too_complex(
                f"Document is longer than {self.max_chars} characters.", limit=self.max_chars
            )
        parser = _CountingParser(Source(query), self.max_tokens)
        try:
            document = parser.parse_document()
        except GraphQLSyntaxError as error:
            raise GraphQLError(
                error.message,
                source=error.source,
                positions=error.positions,
                extensions={"code": ErrorCode.GRAPHQL_PARSE_FAILED.value},
            ) from None
        except RecursionError:
            # The parser recurses per level of nesting (selection sets, inline fragments, list
            # and object values): a few hundred levels fit in the token limit and exhaust
            # Python's stack before the depth rule (a validation rule) could refuse them.
            raise too_complex("Document is nested too deeply.") from None
        repeated_fields(document)
        # The text, once more in comment tokens, and the tree.
        weight = 2 * sys.getsizeof(query) + AST_BYTES_PER_TOKEN * parser.tokens
        self.parsed.put(query, document, weight)
        return document

    def validate(
        self,
        schema: GraphQLSchema,
        query: str,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        """The validation errors of ``document``, each with a code."""
        from strawberry.schema.schema import validate_document

        key = (digest(query), rules)
        errors = self.validated.get(key)
        if errors is None:
            # Kept without their nodes, which would keep the whole parsed tree alive (2.4 MB
            # for a document at the token limit) past its eviction from ``parsed``; the source
            # and positions still give the locations.
            errors = [
                GraphQLError(
                    e.message,
                    source=e.source,
                    positions=e.positions,
                    extensions=_coded(e, ErrorCode.GRAPHQL_VALIDATION_FAILED).extensions,
                )
                for e in validate_document(schema, document, rules)
            ]
            weight = 512 * len(errors) + (sys.getsizeof(query) if errors else 0)
            self.validated.put(key, errors, weight)
        return errors


def variable_errors(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    raw: Mapping[str, Any] | None,
) -> list[GraphQLError]:
    """The errors of coercing the request's variables (before execution, BAD_USER_INPUT).

    Besides graphql-core's coercion, a null given to a nullable variable with a default that
    is used where a value is required is refused here: graphql-core would only refuse it at
    execution, inside the field, as an error of the server."""
    raw = raw or {}
    coerced = get_variable_values(schema, operation.variable_definitions or (), dict(raw))
    if isinstance(coerced, list):
        return [_coded(e, ErrorCode.BAD_USER_INPUT) for e in coerced]
    nulls = {
        d.variable.name.value
        for d in operation.variable_definitions or ()
        if d.default_value is not None and raw.get(d.variable.name.value, 0) is None
    }
    if not nulls:
        return []
    context = ValidationContext(schema, document, TypeInfo(schema), _ignore)
    errors: list[GraphQLError] = []
    for usage in context.get_recursive_variable_usages(operation):
        name = usage.node.name.value
        if name in nulls and isinstance(usage.type, GraphQLNonNull):
            nulls.discard(name)
            errors.append(
                ApiError(
                    f"Variable '${name}' must not be null: it is used where a value is required.",
                    ErrorCode.BAD_USER_INPUT,
                )
            )
    return errors


def _ignore(_: GraphQLError) -> None:
    return None


def known_operation(payload: dict[str, Any], documents: DocumentCache) -> OperationType | None:
    """The type of the operation a request runs when its document was parsed before (for an
    earlier, authenticated request: nothing is parsed here, ahead of the caller's
    authentication) and names one operation (or has only one); None on any doubt (a new
    document, a persisted query sent by hash alone, no such operation)."""
    query = payload.get("query")
    document = documents.parsed.get(query) if isinstance(query, str) else None
    if document is None:
        return None
    name = payload.get("operationName")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == name]
    return operations[0].operation if len(operations) == 1 else None
