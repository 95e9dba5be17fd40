"""A small Hypothesis generator of GraphQL documents over the schema graphql-core builds.

``documents(schema, ids, root="Query")`` draws one operation on the root type: a few root
fields, each with arguments valid for the API (page sizes within ``first`` 1-100, ``weeks``
1-52, enum values, dates in the seeded range, global ids of seeded objects of the type the
argument names), and a selection walked from the field's type down to ``max_depth``. Along the
way it mixes in what graphql-core's field collection must merge: aliases, repeated fields,
named and inline fragments (with and without a type condition), ``@include``/``@skip``, fields
on ``Node`` through type conditions, and arguments passed as variables. Every field with
arguments gets its own alias, so merged fields never conflict and every document is valid.

Hypothesis shrinks a failing document by shrinking the draws: fewer root fields, fewer
subfields, shallower selections, simpler arguments.

Written here rather than taken from hypothesis-graphql (0.13.5 is on PyPI and accepts
graphql-core 3.3.2) because that package draws arbitrary values for ``Int`` and ``ID``: nearly
every document would be refused for a page size or an id, and none would reach the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
)
from graphql.pyutils import Undefined
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import Admin, Customer, CustomerAssignment, HelpdeskCase, Partner, Subscription, Tag
from graph.ids import to_global_id

ANY = "*"
# Which objects an ID argument names: by argument (or input field) name, then by owner.
ID_BY_NAME = {
    "customerId": "Customer",
    "customerIds": "Customer",
    "tagIds": "Tag",
    "adminId": "Admin",
    "caseId": "HelpdeskCase",
    "subscriptionIds": "Subscription",
    "trialId": "Subscription",
}
ID_BY_OWNER = {
    "customer": "Customer",
    "helpdeskCase": "HelpdeskCase",
    "UpdateAdminInput": "Admin",
    "DeactivateAdminInput": "Admin",
    "UpdateTagInput": "Tag",
    "DeleteTagInput": "Tag",
}
ROLES = ("FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY_ADMIN", "SALES_ADMIN")
WORDS = ("a", "acme", "meet", "call", "the", "how", "o'brien", "50%", "x_y", "Ünïcode", " ")
FIRST_DAY, LAST_DAY = date(2025, 6, 1), date(2026, 11, 26)
# Plain text without control characters (NUL bytes are a known, separately tested class).
TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)


@dataclass
class IdPools:
    """Global ids of seeded objects per type name (``ANY``: all of them)."""

    by_type: dict[str, list[str]] = field(default_factory=dict)

    def of(self, type_name: str) -> list[str]:
        if type_name == ANY:
            return [i for ids in self.by_type.values() for i in ids]
        return self.by_type.get(type_name) or self.of(ANY)


async def seeded_ids(engine: AsyncEngine, per_type: int = 6) -> IdPools:
    """A few ids of each type from every partner, spread over the table, and the customers
    assigned to partner admins (so partner-admin documents reach data too)."""
    pools = IdPools()
    models: dict[str, Any] = {
        "Customer": Customer,
        "Subscription": Subscription,
        "Tag": Tag,
        "Admin": Admin,
        "Partner": Partner,
        "HelpdeskCase": HelpdeskCase,
    }
    async with engine.connect() as conn:
        for type_name, model in models.items():
            rows = (await conn.execute(select(model.id).order_by(model.id))).scalars().all()
            step = max(1, len(rows) // per_type)
            pools.by_type[type_name] = [to_global_id(type_name, pk) for pk in rows[::step]]
        assigned: Any = CustomerAssignment.customer_id
        query = select(assigned).order_by(assigned).limit(per_type)
        rows = (await conn.execute(query)).scalars().all()
        pools.by_type["Customer"] += [to_global_id("Customer", pk) for pk in rows]
    return pools


class Enum_(str):
    """An enum value: a bare name in a literal, a string in variables."""


class _Document:
    def __init__(self, draw: Any, schema: GraphQLSchema, ids: IdPools, max_depth: int) -> None:
        self.draw, self.schema, self.ids, self.max_depth = draw, schema, ids, max_depth
        self.n = 0
        self.fragments: list[str] = []
        self.variables: dict[str, Any] = {}
        self.definitions: list[str] = []

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    # Values -------------------------------------------------------------------------------

    def value(self, owner: str, name: str, type_: GraphQLInputType) -> Any:
        """A value for argument (or input field) ``name`` of ``owner``; None is null."""
        if isinstance(type_, GraphQLNonNull):
            return self.value(owner, name, type_.of_type)
        if isinstance(type_, GraphQLList):
            size = self.draw(st.integers(0, 3))
            return [self.value(owner, name, type_.of_type) for _ in range(size)]
        if isinstance(type_, GraphQLEnumType):
            return Enum_(self.draw(st.sampled_from(sorted(type_.values))))
        if isinstance(type_, GraphQLInputObjectType):
            return self.input_object(type_)
        return self.scalar(owner, name, type_)

    def input_object(self, type_: GraphQLInputObjectType) -> dict[str, Any]:
        values = {}
        for name, input_field in sorted(type_.fields.items()):
            required = isinstance(input_field.type, GraphQLNonNull)
            if required or self.draw(st.booleans()):
                values[name] = self.value(type_.name, name, input_field.type)
        return values

    def scalar(self, owner: str, name: str, type_: GraphQLScalarType) -> Any:
        draw, kind = self.draw, type_.name
        if kind == "ID" or name == "objectId":
            type_name = ID_BY_NAME.get(name) or ID_BY_OWNER.get(owner) or ANY
            return draw(st.sampled_from(self.ids.of(type_name)))
        if kind == "Int":
            if name == "first":
                return draw(st.one_of(st.sampled_from([1, 2, 5]), st.integers(1, 100)))
            if name == "weeks":
                return draw(st.integers(1, 52))
            return draw(st.integers(0, 100))
        if kind == "Float":
            return draw(st.floats(0, 100, allow_nan=False))
        if kind == "Boolean":
            return draw(st.booleans())
        if kind == "Date":
            return draw(st.dates(FIRST_DAY, LAST_DAY)).isoformat()
        if kind == "DateTime":
            moment = draw(st.datetimes(datetime(2025, 6, 1), datetime(2026, 11, 26)))
            return moment.replace(tzinfo=UTC).isoformat()
        if name == "role":
            return draw(st.sampled_from(ROLES))
        if name in ("search", "operation", "name"):
            return draw(st.one_of(st.sampled_from(WORDS), TEXT))
        return draw(TEXT)

    def literal(self, value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, Enum_):
            return str(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(self.literal(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {self.literal(v)}" for k, v in value.items()) + "}"
        return json.dumps(value)

    def arguments(self, owner: str, field_def: GraphQLField) -> str:
        """``(name: value, ...)`` for the field named ``owner``, some through variables."""
        rendered = []
        for name, arg in sorted(field_def.args.items()):
            required = isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined
            if not required and name == "after":
                continue  # a cursor is only valid when a page gave it
            if not required and not self.draw(st.booleans()):
                continue
            value = self.value(owner, name, arg.type)
            if self.draw(st.integers(0, 3)) == 0:  # now and then through a variable
                variable = self.name("v")
                self.definitions.append(f"${variable}: {arg.type}")
                self.variables[variable] = json.loads(json.dumps(value))
                rendered.append(f"{name}: ${variable}")
            else:
                rendered.append(f"{name}: {self.literal(value)}")
        return "(" + ", ".join(rendered) + ")" if rendered else ""

    # Selections ---------------------------------------------------------------------------

    def selection(self, type_: GraphQLNamedType, depth: int) -> str:
        """``{ ... }`` for an object, interface or union type."""
        if isinstance(type_, GraphQLInterfaceType | GraphQLUnionType):
            return self.abstract(type_, depth)
        assert isinstance(type_, GraphQLObjectType)
        names = sorted(type_.fields)
        chosen = self.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))
        items = [item for name in chosen if (item := self.field(type_, name, depth))]
        if not items or self.draw(st.integers(0, 5)) == 0:
            items.append("__typename")
        return self.wrap(type_, items)

    def abstract(self, type_: GraphQLInterfaceType | GraphQLUnionType, depth: int) -> str:
        possible = sorted(self.schema.get_possible_types(type_), key=lambda t: t.name)
        items = ["__typename"]
        if isinstance(type_, GraphQLInterfaceType):
            shared = sorted(
                n for n in type_.fields if is_leaf_type(get_named_type(type_.fields[n].type))
            )
            items += self.draw(st.lists(st.sampled_from(shared), max_size=2)) if shared else []
        for object_type in self.draw(st.lists(st.sampled_from(possible), max_size=2)):
            items.append(f"... on {object_type.name} {self.selection(object_type, depth)}")
        return "{ " + " ".join(items) + " }"

    def wrap(self, type_: GraphQLObjectType, items: list[str]) -> str:
        """The items as they are, or part of them moved into a fragment."""
        how = self.draw(st.integers(0, 7))
        if how == 0 and len(items) > 1:  # a named fragment
            fragment = self.name("F")
            self.fragments.append(
                f"fragment {fragment} on {type_.name} {{ {' '.join(items[1:])} }}"
            )
            items = [items[0], f"...{fragment}"]
        elif how == 1 and len(items) > 1:  # an inline fragment, with or without a condition
            condition = self.draw(st.sampled_from(["", f"on {type_.name} "]))
            items = [items[0], f"... {condition}{{ {' '.join(items[1:])} }}"]
        elif how == 2:  # a field the directives keep or drop
            directive = self.draw(st.sampled_from(["@include(if: ", "@skip(if: "]))
            keep = self.draw(st.booleans())
            items = [*items, f"__typename {directive}{'true' if keep else 'false'})"]
        return "{ " + " ".join(items) + " }"

    def field(self, parent: GraphQLObjectType, name: str, depth: int) -> str | None:
        field_def = parent.fields[name]
        named = get_named_type(field_def.type)
        leaf = is_leaf_type(named)
        if not leaf and depth >= self.max_depth:
            return None
        head = name
        if field_def.args:
            head = f"{self.name('a')}: {name}{self.arguments(name, field_def)}"
        elif self.draw(st.integers(0, 4)) == 0:
            head = f"{self.name('a')}: {name}"
        return head if leaf else f"{head} {self.selection(named, depth + 1)}"

    def operation(self, root: str) -> tuple[str, dict[str, Any]]:
        root_type = self.schema.query_type if root == "Query" else self.schema.mutation_type
        assert root_type is not None
        names = sorted(root_type.fields)
        chosen = self.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        items = [item for name in chosen if (item := self.field(root_type, name, 1))]
        body = "{ " + " ".join(items) + " }"
        keyword = "query" if root == "Query" else "mutation"
        head = f"{keyword} Fuzz" + (f"({', '.join(self.definitions)})" if self.definitions else "")
        return "\n".join([f"{head} {body}", *self.fragments]), self.variables


@st.composite
def documents(
    draw: Any, schema: GraphQLSchema, ids: IdPools, root: str = "Query", max_depth: int = 4
) -> tuple[str, dict[str, Any]]:
    """One document on ``root`` and its variables."""
    return _Document(draw, schema, ids, max_depth).operation(root)


async def small_world(engine: AsyncEngine) -> None:
    """Two partners, each with an admin of every built-in role, customers (one assigned to the
    partner admin), a paid subscription, a trial, tags on both and a helpdesk case: what the
    generated mutations act on (their ids come from ``seeded_ids``)."""
    from tests.authz_support import AuthzFactory

    f = AuthzFactory(engine)
    for domain in ("acme.example", "globex.example"):
        partner = await f.partner(domain.split(".")[0].title(), domain)
        admins = {}
        for role in ROLES:
            email = f"{role.split('_')[0].lower()}@{domain}".replace("read@", "readonly@")
            admins[role] = await f.admin(partner, email, role)
        customers = [await f.customer(partner, f"{domain} {n}") for n in ("Alpha", "Beta")]
        await f.assign(customers[0], admins["PARTNER_ADMIN"])
        subscription = await f.subscription(customers[0])
        await f.trial(customers[1])
        tag = await f.tag(partner, f"{domain}-vip")
        await f.tag_customer(partner, customers[0], tag)
        await f.tag_subscription(partner, subscription, tag)
        await f.helpdesk_case(partner, admins["FULL_ADMIN"], customer_id=customers[0])
