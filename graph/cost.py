"""Calculated query cost, checked before execution, and a per-token rate limit on it.

The cost of a document is an upper bound of the objects it may return, priced before any
resolver runs by ``graph.cost_model`` (page sizes, list caps, introspection and analytics
prices; fragments walked like fields). A document over ``max_query_cost`` is refused with
``QUERY_TOO_COSTLY``, one that cannot be priced with ``QUERY_TOO_COMPLEX``; each token may spend
``cost_per_minute`` (a token bucket per deployment, graph/cost_store.py), beyond which requests get
``RATE_LIMITED`` with the seconds to wait. The response's ``extensions.cost`` reports
``requestedQueryCost`` and, once executed, ``actualQueryCost``: the objects the response holds,
counted the way the walk prices them, so never more than requested.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import OrderedDict
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

from db.queries.customer_render import RenderedJSON
from db.settings import Settings
from graph.cost_model import Refused, query_cost
from graph.errors import ErrorCode


class CostLimiter:
    """Token buckets of query cost per API token, refilled continuously, in this process (the
    budget of an embedded deployment; graph/cost_store.py shares one between processes)."""

    shared = False

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    async def spend(self, token_id: int, cost: int) -> tuple[bool, float, float]:
        return self.take(token_id, cost)

    async def close(self) -> None:
        pass

    def take(self, token_id: int, cost: int) -> tuple[bool, float, float]:
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


def wait_tenths(wait: float) -> float:
    """The seconds a refused request is told to wait: rounded up to a tenth, at least 0.1 (a
    wait rounded to 0.0 told a refused client to retry at once, into another refusal)."""
    return max(0.1, math.ceil(round(wait * 10, 6)) / 10)


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

# The response keys whose values are objects (or lists of them), each with its own plan; leaves
# (JSON scalars included) are never looked at.
Plan = tuple[tuple[str, "Plan"], ...]


def compile_plan(
    nodes: list[SelectionSetNode], fragments: dict[str, FragmentDefinitionNode]
) -> Plan:
    """The composite response keys of ``nodes`` merged through fragments (validation made sure
    a key is never a leaf in one place and an object in another)."""
    below: dict[str, list[SelectionSetNode]] = {}

    def collect(node: SelectionSetNode, seen: frozenset[str]) -> None:
        for sel in node.selections:
            if isinstance(sel, FieldNode):
                if sel.selection_set is not None:
                    key = sel.alias.value if sel.alias else sel.name.value
                    below.setdefault(key, []).append(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                collect(sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = fragments.get(sel.name.value)
                if fragment is not None and sel.name.value not in seen:
                    collect(fragment.selection_set, seen | {sel.name.value})

    for node in nodes:
        collect(node, frozenset())
    return tuple((key, compile_plan(sets, fragments)) for key, sets in below.items())


def count_objects(value: Any, plan: Plan) -> int:
    """Objects in ``value``: each dict counts 1, plus the objects under its composite keys. A
    relationship rendered by PostgreSQL (``RenderedJSON``) holds exactly the keys its selection
    names, its objects counted by the statement that wrote it (``db.queries.customer_parts``):
    that count, without decoding it."""
    if type(value) is dict:
        total = 1
        for key, inner in plan:
            item = value.get(key)
            if type(item) is RenderedJSON:  # (most of a directory page's: no call each)
                total += item.count
            elif item is not None:
                total += count_objects(item, inner)
        return total
    if type(value) is list:
        if not plan:  # objects with scalars only: count them without visiting each
            return len(value) - value.count(None)
        return sum(count_objects(item, plan) for item in value)
    if type(value) is RenderedJSON:
        return value.count
    return 0


def actual_cost(
    data: dict[str, Any] | None,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    plan: Plan | None = None,
) -> int:
    """Objects in ``data``, counted as the cost walk prices them (so never above it)."""
    if not data:
        return 0
    if plan is None:
        plan = compile_plan([operation.selection_set], fragments)
    return count_objects(data, plan) - 1


# --- The price of a request ------------------------------------------------------------------


class _CostCache:
    """Recent documents' costs, by (document, operation, the scalar variables given), and their
    counting plans: bounded in entries, and documents over ``MAX_DOCUMENT_CHARS`` are never
    kept."""

    MAX_ENTRIES = 256
    MAX_DOCUMENT_CHARS = 10_000

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            if len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)


_CACHES: weakref.WeakKeyDictionary[GraphQLSchema, _CostCache] = weakref.WeakKeyDictionary()
_SCALARS = (int, float, str, bool, type(None))


def _cache(schema: GraphQLSchema) -> _CostCache:
    cache = _CACHES.get(schema)
    return cache if cache is not None else _CACHES.setdefault(schema, _CostCache())


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


def _key(
    query: str | None, operation: OperationDefinitionNode, *rest: Any
) -> tuple[Any, ...] | None:
    if query is None or len(query) > _CostCache.MAX_DOCUMENT_CHARS:
        return None
    return (query, operation.name.value if operation.name else None, *rest)


def price(
    schema: GraphQLSchema,
    settings: Settings,
    query: str | None,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    given: dict[str, Any] | None,
) -> int:
    """The cost of ``operation``, from the cache when the same document was priced recently
    with the same page sizes; raises ``Refused``.

    Only ``Int`` arguments (page sizes, weeks) change a cost, and a variable feeding one is a
    scalar or refused by execution, so the scalar variables given (before defaults) key it.
    """
    scalars = tuple(sorted((k, v) for k, v in (given or {}).items() if isinstance(v, _SCALARS)))
    key = _key(query, operation, "cost", scalars)
    cache = _cache(schema)
    if key is not None:
        cached = cache.get(key)
        if cached is not None:
            return int(cached)
    variables = _variables(schema, operation, given)
    cost = query_cost(schema, settings, operation, fragments, variables)
    if key is not None:
        cache.put(key, cost)
    return cost


def plan_of(
    schema: GraphQLSchema,
    query: str | None,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> Plan:
    """The counting plan of ``operation`` (cached with its costs)."""
    key = _key(query, operation, "plan")
    cache = _cache(schema)
    plan: Plan | None = cache.get(key) if key is not None else None
    if plan is None:
        plan = compile_plan([operation.selection_set], fragments)
        if key is not None:
            cache.put(key, plan)
    return plan


def _refusal(message: str, code: ErrorCode, **extensions: Any) -> ExecutionResult:
    return ExecutionResult(
        data=None,
        errors=[GraphQLError(message, extensions={"code": code.value, **extensions})],
    )


# A provisional run's spend (``db.token_check``), kept in the request's scope: when the token's
# principal turned out to have changed, ``graph.endpoint`` runs the request again, for the same
# token and document; spending again charged a request twice (a 429 for a page asked once).
SPENT = "ph_cost_spent"


async def spend_once(
    limiter: Any, state: dict[str, Any], token_id: int, cost: int, provisional: bool
) -> tuple[bool, float, float]:
    """``limiter``'s spend of ``cost`` for ``token_id``, unless the request's provisional run
    spent it already (kept in the request's ``state`` when ``provisional``): its rerun spends
    nothing more, whether it executes (``_spend``) or is answered from the response cache
    (``graph.response_cache.cached_response``)."""
    spent = state.pop(SPENT, None)
    if spent is not None and spent[:2] == (token_id, cost):
        return True, spent[2], 0.0
    allowed, remaining, wait = await limiter.spend(token_id, cost)
    if allowed and provisional:
        state[SPENT] = (token_id, cost, remaining)
    return allowed, remaining, wait


async def _spend(ctx: Any, cost: int) -> tuple[bool, float, float]:
    request = getattr(ctx, "request", None)
    state = request.scope.setdefault("state", {}) if request is not None else {}
    provisional = getattr(ctx, "token_check", None) is not None
    return await spend_once(ctx.services.limiter, state, ctx.principal.token_id, cost, provisional)


class CostMeter:
    """A request's query cost: priced, checked and spent before execution (refusing it by
    setting ``ec.result``), its ``actualQueryCost`` counted after; ``report`` is the response's
    ``extensions.cost``. The steps of the ``on_execute`` hook of ``graph.extensions.Guards``."""

    __slots__ = ("_counted", "report")

    def __init__(self) -> None:
        self.report: dict[str, Any] = {}
        # What ``after`` counts with: (operation, fragments, remaining) once the cost is spent.
        self._counted: tuple[OperationDefinitionNode, dict[str, Any], float] | None = None

    async def before(self, ec: Any) -> None:
        ctx = ec.context
        document = ec.graphql_document
        if document is None or ctx is None or ec.result is not None:
            return  # nothing to price, or refused already (graph.input_limits): nothing spent
        operation = selected_operation(document, ec.operation_name)
        if operation is None:
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
            return
        self.report = {"requestedQueryCost": cost, "maximumAvailable": limit}
        if cost > limit:
            ec.result = _refusal(
                f"Query cost {cost} exceeds the limit of {limit}: ask for smaller pages.",
                ErrorCode.QUERY_TOO_COSTLY,
                cost=cost,
                limit=limit,
            )
            return
        allowed, remaining, wait = await _spend(ctx, cost)
        if not allowed:
            self.report = cost_report(settings, cost, remaining)
            ec.result = _refusal(
                f"Rate limit: this token may spend {settings.cost_per_minute} "
                f"cost points a minute; retry in {wait_tenths(wait):.1f} s.",
                ErrorCode.RATE_LIMITED,
                retryAfterSeconds=wait_tenths(wait),
            )
            return
        self._counted = (operation, fragments, remaining)

    def after(self, ec: Any) -> None:
        """Once executed (not when ``before`` refused or had nothing to price)."""
        if self._counted is None:
            return
        operation, fragments, remaining = self._counted
        cost = self.report["requestedQueryCost"]
        data = getattr(ec.result, "data", None)
        actual = 0
        if isinstance(data, dict) and data:
            plan = plan_of(ec.schema._schema, ec.query, operation, fragments)
            actual = actual_cost(data, operation, fragments, plan)
        self.report = cost_report(ec.context.settings, cost, remaining, actual)

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.report} if self.report else {}
