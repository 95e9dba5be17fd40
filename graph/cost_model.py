"""The calculated cost of a document: an upper bound of the objects it can return.

Every object in a response (a customer, a page, a subscription, an introspection ``__Type``)
costs 1; scalars and enums cost nothing (the token and alias limits bound them). A field that
runs a whole-scope computation costs ``PRICES`` instead of 1 (the analytics figure sets). A list
of objects multiplies its selection by the most items it can hold:

- a connection's ``nodes``/``edges`` by the ``first`` of the field that returned it (its default
  when omitted, the variable's default when a variable without value is passed);
- every other list by ``LIST_BOUNDS``: a setting (tags per customer), a schema constant (the
  days of a week, the enum values of ``featureUsage``), the ``weeks`` argument of a trend, or a
  cap the loaders enforce (``MAX_*`` below, truncating in documented order);
- introspection by what it enumerates, counted once per schema: ``__schema { types { fields
  } }`` is priced at the real number of types and fields, below that by the largest type.

Fragments and inline fragments are walked like fields (each fragment's cost is computed once per
(type, page) and reused, so nested spreads cost no more to price than to write). What the walk
cannot see (an unknown fragment or type, a cycle, nesting deeper than ``MAX_NESTING``) refuses
the document with ``QUERY_TOO_COMPLEX``; nothing is ever priced 0 for being unseen.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    Undefined,
    get_named_type,
    is_leaf_type,
    value_from_ast,
)

from db.settings import Settings
from graph.errors import ErrorCode

# Caps the loaders enforce (graph/loaders.py), so that the lists below are bounded. Each keeps
# the first items in the list's documented order (newest first for subscriptions, invoices and
# orders).
MAX_SUBSCRIPTIONS_PER_CUSTOMER = 10  # paid subscriptions and trials of one customer
MAX_ASSIGNED_ADMINS_PER_CUSTOMER = 10
MAX_LICENSE_LINES_PER_SUBSCRIPTION = 10  # one per (product, license type)
MAX_INVOICES_PER_SUBSCRIPTION = 10  # one per started year of a term
MAX_ORDERS_PER_SUBSCRIPTION = 10
MAX_COMMENTS_PER_CASE = 200
MAX_PARTNER_TAGS = 500
MAX_ROLES = 100
MAX_RULES_PER_ROLE = 200
MAX_POLICY_RULES = 2_000
MAX_USER_ERRORS = 20
MAX_RECORDS_PER_CALL = 1_000  # graph.resolvers.calling_ingest
MAX_BULK = 100  # graph.resolvers.tags: customers or subscriptions per tag mutation
MAX_WEEKS = 52  # trends: `weeks` is 1-52
MAX_NESTING = 100  # fields and fragments inside each other that the walk follows
# Costs are reported up to here (2**53 - 1, exact in every JSON reader; fragments spreading the
# next one twice reach 2**64, which JSON encoders refuse).
MAX_COST = 2**53 - 1
# A whole-scope computation (one aggregate statement over every customer the caller may see):
# at 100,000 customers the license dashboard's 11 statements take 1.2 s on PostgreSQL against
# 11 ms for a directory page; priced so that one dashboard (12 of them) fits the default limit
# (50,000) and 30 aliases of one section do not.
AGGREGATE = 2_000

Bound = int | Callable[[GraphQLSchema, Settings], int]


def _enum_size(name: str) -> Callable[[GraphQLSchema, Settings], int]:
    def size(schema: GraphQLSchema, _: Settings) -> int:
        enum = schema.get_type(name)
        return len(enum.values) if isinstance(enum, GraphQLEnumType) else 0

    return size


def _weeks(*_: Any) -> int:
    return MAX_WEEKS


_tags_per_customer: Bound = lambda _, settings: settings.max_tags_per_customer  # noqa: E731

# The most items each list of objects can return (connections' nodes/edges: their page size).
LIST_BOUNDS: dict[str, Bound] = {
    "Customer.tags": _tags_per_customer,
    "Customer.subscriptions": MAX_SUBSCRIPTIONS_PER_CUSTOMER,
    "Customer.trials": MAX_SUBSCRIPTIONS_PER_CUSTOMER,
    "Customer.partnerAdmins": MAX_ASSIGNED_ADMINS_PER_CUSTOMER,
    "Subscription.licenses": MAX_LICENSE_LINES_PER_SUBSCRIPTION,
    "Subscription.invoices": MAX_INVOICES_PER_SUBSCRIPTION,
    "Subscription.orders": MAX_ORDERS_PER_SUBSCRIPTION,
    "Subscription.tags": _tags_per_customer,
    "HelpdeskCase.comments": MAX_COMMENTS_PER_CASE,
    "Query.tags": MAX_PARTNER_TAGS,
    "Query.webhookEndpoints": lambda _, s: s.max_webhook_endpoints,
    "Query.roles": MAX_ROLES,
    "Query.policyRules": MAX_POLICY_RULES,
    "Role.rules": MAX_RULES_PER_ROLE,
    "Query.quickLinks": lambda _, s: s.max_page_size,
    "Query.featuredResources": lambda _, s: s.max_page_size,
    "CallingAnalytics.usersByVolumeTrend": _weeks,
    "CallingAnalytics.qualityTrend": _weeks,
    "LicenseAnalytics.distributionTrend": _weeks,
    "CallingAnalytics.qualityByEndpoint": _enum_size("EndpointType"),
    "CallingAnalytics.featureUsage": _enum_size("CallFeature"),
    "CallingUsage.daily": 7,
    "CustomerTagsPayload.customers": MAX_BULK,
    "SubscriptionTagsPayload.subscriptions": MAX_BULK,
    "IngestCallRecordsPayload.rejected": MAX_RECORDS_PER_CALL,
    "IngestCallRecordsPayload.userErrors": MAX_RECORDS_PER_CALL,
}
# Lists whose size is the `weeks` argument (1-52).
WEEKS_LISTS = {
    "CallingAnalytics.usersByVolumeTrend",
    "CallingAnalytics.qualityTrend",
    "LicenseAnalytics.distributionTrend",
}

# Fields that run a computation over the caller's whole scope: charged this on top of the
# objects they return, once for each object they are asked on.
PRICES: dict[str, int] = {
    "Query.licenseKpis": AGGREGATE,
    "LicenseAnalytics.distributionTrend": AGGREGATE,
    **{
        f"LicenseAnalytics.{section}": AGGREGATE
        for section in (
            "recentlyAdded",
            "aboutToExpire",
            "aboutToRenew",
            "lowAllocation",
            "overage",
        )
    },
    **{
        f"{section}Section.rows": AGGREGATE
        for section in ("RecentlyAdded", "Expiring", "Renewing", "LowAllocation", "Overage")
    },
    **{
        f"CallingAnalytics.{figures}": AGGREGATE
        for figures in (
            "usage",
            "usersByVolumeTrend",
            "customersUsage",
            "quality",
            "qualityTrend",
            "qualityByEndpoint",
            "customersQuality",
            "featureUsage",
            "callQueue",
        )
    },
    "CallQueueAnalytics.customers": AGGREGATE,
}


class Refused(Exception):
    """A document the walk cannot price: refused before execution."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.QUERY_TOO_COMPLEX) -> None:
        super().__init__(message)
        self.code = code

    def error(self) -> GraphQLError:
        return GraphQLError(str(self), extensions={"code": self.code.value})


# --- Introspection: what `__schema` enumerates, counted once per schema --------------------


@dataclass(frozen=True)
class _Introspection:
    # Per object (the largest one) when the parent is not a whole population.
    bounds: dict[str, int]
    # (population, field) -> (items over the whole population, the population they form).
    totals: dict[tuple[str, str], tuple[int, str | None]]
    sizes: dict[str, int]


_INTROSPECTION: weakref.WeakKeyDictionary[GraphQLSchema, _Introspection] = (
    weakref.WeakKeyDictionary()
)


def _introspection(schema: GraphQLSchema) -> _Introspection:
    found = _INTROSPECTION.get(schema)
    if found is not None:
        return found
    types = list(schema.type_map.values())
    composite = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    fields = [f for t in composite for f in t.fields.values()]

    def counts(values: list[int]) -> tuple[int, int]:
        return sum(values), max(values, default=0)

    per_type = {
        "fields": counts([len(t.fields) for t in composite]),
        "interfaces": counts([len(t.interfaces) for t in composite]),
        "possibleTypes": counts(
            [
                len(schema.get_possible_types(t))
                for t in types
                if isinstance(t, GraphQLInterfaceType | GraphQLUnionType)
            ]
        ),
        "enumValues": counts([len(t.values) for t in types if isinstance(t, GraphQLEnumType)]),
        "inputFields": counts(
            [len(t.fields) for t in types if isinstance(t, GraphQLInputObjectType)]
        ),
    }
    args = counts([len(f.args) for f in fields])
    directive_args = counts([len(d.args) for d in schema.directives])
    bounds = {f"__Type.{name}": most for name, (_, most) in per_type.items()}
    bounds |= {
        "__Schema.types": len(types),
        "__Schema.directives": len(schema.directives),
        "__Field.args": args[1],
        "__Directive.args": directive_args[1],
    }
    totals: dict[tuple[str, str], tuple[int, str | None]] = {
        ("schema", "types"): (len(types), "types"),
        ("schema", "directives"): (len(schema.directives), "directives"),
        ("fields", "args"): (args[0], None),
        ("directives", "args"): (directive_args[0], None),
    }
    for name, (total, _) in per_type.items():
        totals["types", name] = (total, "fields" if name == "fields" else None)
    sizes = {
        "schema": 1,
        "types": len(types),
        "fields": len(fields),
        "directives": len(schema.directives),
    }
    found = _Introspection(bounds, totals, sizes)
    _INTROSPECTION[schema] = found
    return found


# --- The walk --------------------------------------------------------------------------------


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


@dataclass
class Walk:
    schema: GraphQLSchema
    settings: Settings
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    introspection: _Introspection = field(init=False)
    _memo: dict[tuple[int, str, str | None, int | None], int] = field(default_factory=dict)
    _open: set[tuple[int, str, str | None, int | None]] = field(default_factory=set)
    _nesting: int = 0

    def __post_init__(self) -> None:
        self.introspection = _introspection(self.schema)

    def selection(
        self,
        parent: GraphQLNamedType | None,
        node: SelectionSetNode,
        population: str | None = None,
        page: int | None = None,
    ) -> int:
        """Cost of ``node`` on one ``parent`` object (or on the whole ``population``)."""
        if parent is None:
            raise Refused("The document selects fields on an unknown type.")
        key = (id(node), parent.name, population, page)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        if key in self._open:
            raise Refused("The document's fragments spread each other in a cycle.")
        self._nesting += 1
        if self._nesting > MAX_NESTING:
            raise Refused(f"The document nests selections deeper than {MAX_NESTING} levels.")
        self._open.add(key)
        total = 0
        for sel in node.selections:
            if isinstance(sel, FieldNode):
                total += self.field(parent, sel, population, page)
            elif isinstance(sel, InlineFragmentNode):
                target = (
                    self.schema.get_type(sel.type_condition.name.value)
                    if sel.type_condition
                    else parent
                )
                total += self.selection(target, sel.selection_set, population, page)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = self.fragments.get(sel.name.value)
                if fragment is None:
                    raise Refused(f"Unknown fragment '{sel.name.value}'.")
                target = self.schema.get_type(fragment.type_condition.name.value)
                total += self.selection(target, fragment.selection_set, population, page)
        self._open.discard(key)
        self._nesting -= 1
        self._memo[key] = total
        return total

    def field(
        self, parent: GraphQLNamedType, node: FieldNode, population: str | None, page: int | None
    ) -> int:
        name = node.name.value
        if name == "__typename":
            return 0
        if name == "__schema":
            definition, child_population = SchemaMetaFieldDef, "schema"
        elif name == "__type":
            definition, child_population = TypeMetaFieldDef, None
        elif isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) and (
            name in parent.fields
        ):
            definition, child_population = parent.fields[name], None
        else:
            raise Refused(f"Cannot price field '{name}' on type '{parent.name}'.")
        child = get_named_type(definition.type)
        if is_leaf_type(child) or node.selection_set is None:
            return 0
        qualified = f"{parent.name}.{name}"
        # The computation a priced field runs, once for each object it is asked on.
        charge = PRICES.get(qualified, 0) * (
            self.introspection.sizes[population] if population else 1
        )
        objects = self.introspection.sizes[population] if population else 1
        child_page = self._page(definition, node) if "first" in definition.args else None
        if not _is_list(definition.type):
            if child_population is not None:
                return objects + self.selection(child, node.selection_set, child_population)
            inner = self.selection(child, node.selection_set, None, child_page)
            return charge + objects * (1 + inner)
        total = self.introspection.totals.get((population, name)) if population else None
        if total is not None:
            items, items_population = total
            if items_population is not None:
                return items + self.selection(child, node.selection_set, items_population)
        else:
            items = objects * self._bound(parent, qualified, name, node, page)
        return charge + items * (1 + self.selection(child, node.selection_set, None, child_page))

    def _bound(
        self, parent: GraphQLNamedType, qualified: str, name: str, node: FieldNode, page: int | None
    ) -> int:
        if name in ("nodes", "edges") and parent.name.endswith("Connection"):
            return page if page is not None else self.settings.max_page_size
        if qualified in WEEKS_LISTS:
            weeks = self._argument(parent, node, "weeks")
            return min(max(weeks, 0), MAX_WEEKS) if isinstance(weeks, int) else MAX_WEEKS
        if name == "userErrors":
            return LIST_BOUNDS.get(qualified, MAX_USER_ERRORS)  # type: ignore[return-value]
        bound = LIST_BOUNDS.get(qualified) or self.introspection.bounds.get(qualified)
        if bound is None:
            # Every list of the schema has an entry (tests/test_cost_model.py checks it).
            return self.settings.max_page_size
        return bound if isinstance(bound, int) else bound(self.schema, self.settings)

    def _argument(self, parent: GraphQLNamedType, node: FieldNode, name: str) -> Any:
        assert isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
        definition = parent.fields[node.name.value].args[name]
        value = definition.default_value
        for argument in node.arguments or ():
            if argument.name.value == name:
                value = value_from_ast(argument.value, definition.type, self.variables)
        return value

    def _page(self, definition: Any, node: FieldNode) -> int:
        """The page a connection field asks for: ``last`` when given (paging backward), else
        ``first`` or its default."""
        argument = definition.args["first"]
        value = argument.default_value
        for given in node.arguments or ():
            if given.name.value == "first":
                value = value_from_ast(given.value, argument.type, self.variables)
        for given in node.arguments or ():
            if given.name.value == "last" and "last" in definition.args:
                last = value_from_ast(given.value, definition.args["last"].type, self.variables)
                value = last if isinstance(last, int) else value
        if isinstance(value, int) and value is not Undefined:
            return max(value, 0)
        return self.settings.max_page_size


def query_cost(
    schema: GraphQLSchema,
    settings: Settings,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> int:
    """The calculated cost of ``operation`` (at most ``MAX_COST``); raises ``Refused`` when it
    cannot be priced."""
    root = schema.get_root_type(operation.operation)
    walk = Walk(schema, settings, fragments, variables)
    try:
        return min(walk.selection(root, operation.selection_set), MAX_COST)
    except RecursionError:
        raise Refused("The document nests selections too deeply to be priced.") from None
