"""Calculated query cost, checked before execution, and a per-token rate limit on it.

The cost of a document is an upper bound of the objects it may return, priced before any
resolver runs by ``graph.cost_model`` (page sizes, list caps, introspection and analytics
prices; fragments walked like fields). A document over ``max_query_cost`` is refused with
``QUERY_TOO_COSTLY``, one that cannot be priced with ``QUERY_TOO_COMPLEX``; each token may spend
``cost_per_minute`` (a token bucket per API instance), beyond which requests get
``RATE_LIMITED`` with the seconds to wait. The response's ``extensions.cost`` reports
``requestedQueryCost`` and, once executed, ``actualQueryCost``: the objects the response holds,
counted the way the walk prices them, so never more than requested.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.execution.values import VariableValues, get_variable_values
from strawberry.extensions import SchemaExtension

from db.settings import Settings
from graph.cost_model import Refused, query_cost
from graph.errors import ErrorCode


class CostLimiter:
    """Token buckets of query cost per API token, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def spend(self, token_id: int, cost: int) -> tuple[bool, float, float]:
        """(allowed, remaining, seconds to wait when refused)."""
        now = time.monotonic()
        with self._lock:
            level, stamp = self._buckets.get(token_id, (self.capacity, now))
            level = min(self.capacity, level + (now - stamp) * self.rate)
            if cost > level:
                self._buckets[token_id] = (level, now)
                return False, level, (cost - level) / self.rate
            self._buckets[token_id] = (level - cost, now)
            return True, level - cost, 0.0


def selected_operation(
    document: DocumentNode, operation_name: str | None
) -> OperationDefinitionNode | None:
    """The operation a request runs: the one named ``operation_name``, or the only one."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return operations[0] if len(operations) == 1 else None


def cost_report(
    settings: Settings, cost: int, remaining: float, actual: int | None = None
) -> dict[str, Any]:
    """``extensions.cost`` of an executed (or cached) query that spent ``cost``; ``actual`` is
    the objects the response holds (absent when unknown, as for a cached response)."""
    report: dict[str, Any] = {"requestedQueryCost": cost}
    if actual is not None:
        report["actualQueryCost"] = actual
    report |= {
        "maximumAvailable": settings.max_query_cost,
        "throttleStatus": {
            "currentlyAvailable": int(remaining),
            "maximumAvailable": settings.cost_per_minute,
            "restoreRatePerSecond": round(settings.cost_per_minute / 60, 1),
        },
    }
    return report


# --- The objects a response holds (actualQueryCost) -----------------------------------------

# Response key -> the selection sets below it (None: a leaf, whose value is never counted even
# when it is a JSON object).
_Plan = dict[str, list[SelectionSetNode] | None]


class _Counter:
    """Counts the objects of a result, guided by the document: every object value of a field
    with a selection counts 1, scalars (JSON ones included) count 0, as the walk prices them."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.plans: dict[tuple[int, ...], _Plan] = {}

    def plan(self, nodes: list[SelectionSetNode]) -> _Plan:
        key = tuple(id(n) for n in nodes)
        found = self.plans.get(key)
        if found is None:
            found = {}
            for node in nodes:
                self._collect(node, found, set())
            self.plans[key] = found
        return found

    def _collect(self, node: SelectionSetNode, plan: _Plan, seen: set[str]) -> None:
        for sel in node.selections:
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                if sel.selection_set is None:
                    plan[key] = None
                elif key not in plan:
                    plan[key] = [sel.selection_set]
                elif plan[key] is not None:
                    plan[key].append(sel.selection_set)  # type: ignore[union-attr]
            elif isinstance(sel, InlineFragmentNode):
                self._collect(sel.selection_set, plan, seen)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = self.fragments.get(sel.name.value)
                if fragment is not None and sel.name.value not in seen:
                    self._collect(fragment.selection_set, plan, seen | {sel.name.value})

    def count(self, value: Any, nodes: list[SelectionSetNode]) -> int:
        if isinstance(value, list):
            return sum(self.count(item, nodes) for item in value)
        if not isinstance(value, dict):
            return 0
        total = 1
        plan = self.plan(nodes)
        for key, item in value.items():
            below = plan.get(key)
            if below is not None and isinstance(item, dict | list):
                total += self.count(item, below)
        return total


def actual_cost(
    data: dict[str, Any] | None,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> int:
    """Objects in ``data``, counted as the cost walk prices them (so never above it)."""
    if not data:
        return 0
    return _Counter(fragments).count(data, [operation.selection_set]) - 1


# --- The price of a request ------------------------------------------------------------------


class _CostCache:
    """Costs of recent documents, by (document, operation, the Int variables' values)."""

    MAX_ENTRIES = 256
    MAX_DOCUMENT_CHARS = 10_000

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> int | None:
        with self._lock:
            cost = self._entries.get(key)
            if cost is not None:
                self._entries.move_to_end(key)
            return cost

    def put(self, key: tuple[Any, ...], cost: int) -> None:
        with self._lock:
            self._entries[key] = cost
            if len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)


_CACHES: weakref.WeakKeyDictionary[GraphQLSchema, _CostCache] = weakref.WeakKeyDictionary()


def _variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode, given: dict[str, Any] | None
) -> dict[str, Any]:
    """The operation's variables as execution will see them, defaults included."""
    definitions = operation.variable_definitions or ()
    if not definitions:
        return {}
    coerced = get_variable_values(schema, definitions, given or {})
    if isinstance(coerced, list):
        # Execution refuses these variables before any resolver: price with the defaults alone.
        coerced = get_variable_values(schema, definitions, {})
    return dict(coerced.coerced) if isinstance(coerced, VariableValues) else {}


def price(
    schema: GraphQLSchema,
    settings: Settings,
    query: str | None,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    given: dict[str, Any] | None,
) -> int:
    """The cost of ``operation``, from the cache when the same document and page sizes were
    priced recently; raises ``Refused``."""
    variables = _variables(schema, operation, given)
    key: tuple[Any, ...] | None = None
    cache = _CACHES.get(schema)
    if cache is None:
        cache = _CACHES.setdefault(schema, _CostCache())
    if query is not None and len(query) <= _CostCache.MAX_DOCUMENT_CHARS:
        ints = tuple(sorted((k, v) for k, v in variables.items() if isinstance(v, int)))
        key = (query, operation.name.value if operation.name else None, ints)
        cached = cache.get(key)
        if cached is not None:
            return cached
    cost = query_cost(schema, settings, operation, fragments, variables)
    if key is not None:
        cache.put(key, cost)
    return cost


def _refusal(message: str, code: ErrorCode, **extensions: Any) -> ExecutionResult:
    return ExecutionResult(
        data=None,
        errors=[GraphQLError(message, extensions={"code": code.value, **extensions})],
    )


class QueryCost(SchemaExtension):
    def __init__(self) -> None:
        self.report: dict[str, Any] = {}

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        ctx = ec.context
        document = ec.graphql_document
        if document is None or ctx is None or ec.result is not None:
            yield  # nothing to price, or refused already (graph.input_limits): nothing spent
            return
        operation = selected_operation(document, ec.operation_name)
        if operation is None:
            yield
            return
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        settings = ctx.settings
        limit = settings.max_query_cost
        try:
            cost = price(ec.schema._schema, settings, ec.query, operation, fragments, ec.variables)
        except Refused as refused:
            ec.result = ExecutionResult(data=None, errors=[refused.error()])
            yield
            return
        self.report = {"requestedQueryCost": cost, "maximumAvailable": limit}
        if cost > limit:
            ec.result = _refusal(
                f"Query cost {cost} exceeds the limit of {limit}: ask for smaller pages.",
                ErrorCode.QUERY_TOO_COSTLY,
                cost=cost,
                limit=limit,
            )
            yield
            return
        allowed, remaining, wait = ctx.services.limiter.spend(ctx.principal.token_id, cost)
        if not allowed:
            self.report = cost_report(settings, cost, remaining)
            ec.result = _refusal(
                f"Rate limit: this token may spend {settings.cost_per_minute} "
                f"cost points a minute; retry in {wait:.1f} s.",
                ErrorCode.RATE_LIMITED,
                retryAfterSeconds=round(wait, 1),
            )
            yield
            return
        yield
        result = ec.result
        data = getattr(result, "data", None)
        actual = actual_cost(data if isinstance(data, dict) else None, operation, fragments)
        self.report = cost_report(settings, cost, remaining, actual)

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.report} if self.report else {}
