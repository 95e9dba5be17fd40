"""Relationships answered with the JSON PostgreSQL built for them (``db.queries.customer_render``).

A page's relationships were read as rows, made into records and API objects and completed field
by field into the response's dictionaries: about half of the workers' time for a directory page
(issue 17). When everything the document selects on a relationship is a column of its rows, or
a fixed expression of them, the statement builds the response's objects itself, and they go into
the response as they are, never decoded (``RenderedJSON``: its text and the objects it holds,
counted by the statement; ``graph.execution`` and ``graph.completers`` pass it through into the
result data, ``graph.cost`` counts its objects, ``graph.response_json`` writes its text,
``graph.prefetch.ahead_or_load`` loads the relationship the ordinary way should the ordinary
path of graphql-core ever reach one).

``spec_of`` decides, from the document's selection (``graph.prefetch.Picked``, with response
names) and the caller's reach on nested relationships (``graph.detail``), and says what to
build. A selection it cannot vouch for is not rendered and takes the ordinary path, unchanged:
a field not in ``FIELDS`` (a resolver: ``Admin.roles``), a directive (``@skip``, ``@defer``:
``Picked.key`` is None), a relationship selected under two response names, a nested
relationship left to the loaders (an ``assigned`` scope), anything over the statement's limits.
Whether each entry writes exactly what the API object would is checked field by field against
the ordinary path (``tests/test_render.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from db import enums
from db.queries.customer_render import Entry, RenderedJSON, Spec, renderable
from graph.ids import NODE_TYPES
from graph.prefetch import Picked

__all__ = ["RENDER", "RenderedJSON", "admitted", "spec_of"]

# Off: every relationship takes the ordinary path (tests compare both).
RENDER = True
# Distinct rendered shapes an instance admits. A shape's response keys and their order are
# written into its statement, so every alias spelling is a statement of its own: a stream of
# them kept ~750 large compiled statements in SQLAlchemy's cache (~150 MB a process, where the
# ordinary path, reading columns whatever the aliases, stays at ~10). Past this many, a new
# shape takes the ordinary path: the same answer, from statements that do not depend on aliases.
MAX_SHAPES = 64


def _enum(column: str, values: type[StrEnum]) -> tuple[str, str, tuple[str, ...]]:
    """An enum field: the column, and the names the API writes (its GraphQL enum is the domain
    enum itself, ``graph.types.common``: each stored value is its name)."""
    return ("enum", column, tuple(value.value for value in values))


# Per GraphQL type, per field: how the part's row gives the serialised value
# (``db.queries.customer_render``'s entries without their key). ``("obj", type)``: an object
# of the same row's columns. An enum is an ``enum`` entry, never a ``col``: a stored value the
# enum does not have is not written as it is (``customer_render.checks``).
FIELDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "Tag": {
        "id": ("gid", "Tag", "id"),
        "name": ("col", "name"),
        "description": ("col", "description"),
        "createdAt": ("time", "created_at"),
    },
    "Subscription": {
        "id": ("gid", "Subscription", "id"),
        "subscriptionId": ("col", "subscription_id"),
        "kind": _enum("kind", enums.SubscriptionKind),
        "state": _enum("state", enums.SubscriptionState),
        "startDate": ("time", "start_date"),
        "endDate": ("time", "end_date"),
        "autoRenew": ("col", "auto_renew"),
        "renewalDate": ("time", "renewal_date"),
    },
    "LicenseLine": {
        "product": _enum("product", enums.Product),
        "licenseType": ("col", "license_type"),
        "purchased": ("col", "purchased"),
        "assigned": ("col", "assigned"),
        "used": ("col", "used"),
        "available": ("excess", "purchased", "assigned"),
        "overage": ("excess", "assigned", "purchased"),
    },
    "Invoice": {
        "invoiceNumber": ("col", "invoice_number"),
        "issuedAt": ("time", "issued_at"),
        "dueAt": ("time", "due_at"),
        "amountCents": ("col", "amount_cents"),
        "currency": ("col", "currency"),
        "status": _enum("status", enums.InvoiceStatus),
    },
    "Order": {
        "orderNumber": ("col", "order_number"),
        "placedAt": ("time", "placed_at"),
        "action": _enum("action", enums.OrderAction),
        "description": ("col", "description"),
        "status": _enum("status", enums.OrderStatus),
    },
    "AssignedAdmin": {
        "admin": ("obj", "Admin"),
        "role": ("col", "role"),
        "assignedAt": ("time", "assigned_at"),
    },
    "Admin": {
        "id": ("gid", "Admin", "id"),
        "email": ("col", "email"),
        "name": ("col", "name"),
        "role": ("col", "role"),
        "active": ("col", "active"),
        "createdAt": ("time", "created_at"),
    },
}
# The relationship fields of a customer that can be rendered, by field: the type of their
# elements (None: a list of enum values).
CUSTOMER_TYPES: dict[str, str | None] = {
    "statuses": None,
    "products": None,
    "tags": "Tag",
    "subscriptions": "Subscription",
    "trials": "Subscription",
    "partnerAdmins": "AssignedAdmin",
}
# A subscription's relationship fields: their elements' type.
SUBSCRIPTION_TYPES = {
    "licenses": "LicenseLine",
    "invoices": "Invoice",
    "orders": "Order",
    "tags": "Tag",
}

# A nested relationship's split (``graph.detail._plan``): read (field, part, cap), refused, left.
Split = tuple[list[tuple[str, str, int | None]], list[str], list[str]]


def spec_of(field: str, selected: Sequence[Picked], nested: Split | None) -> Spec | None:
    """What to render for the customer relationship ``field`` selected as ``selected`` (every
    ``Picked`` of it), the subscriptions' own relationships split as ``nested``; None when it
    cannot be rendered."""
    if not RENDER or field not in CUSTOMER_TYPES or not selected:
        return None
    if any(picked.key is None for picked in selected) or len({p.key for p in selected}) > 1:
        return None
    if not all(_applies(picked, "Customer") for picked in selected):
        return None
    type_name = CUSTOMER_TYPES[field]
    if type_name is None:
        return ()
    spec = _object(type_name, [g for picked in selected for g in picked.selections], nested)
    return spec if spec is not None and renderable(spec) else None


def admitted(shapes: dict[Any, None], shape: Any) -> bool:
    """Whether ``shape`` (a plan's rendered parts) may be rendered: one seen before, or a new one
    while fewer than ``MAX_SHAPES`` are in ``shapes`` (an instance's, never evicted: a stream of
    new shapes cannot churn statements through the caches)."""
    if shape in shapes:
        return True
    if len(shapes) >= MAX_SHAPES:
        return False
    shapes[shape] = None
    return True


def _object(type_name: str, selected: Sequence[Picked], nested: Split | None) -> Spec | None:
    groups: dict[str, list[Picked]] = {}
    for picked in selected:
        if picked.key is None or not _applies(picked, type_name):
            return None
        groups.setdefault(picked.key, []).append(picked)
    entries: list[Entry] = []
    for key, same in groups.items():
        name = same[0].name
        below = [g for picked in same for g in picked.selections]
        entry: Entry | None
        if name == "__typename":
            entry = (key, "lit", type_name)
        elif name in FIELDS[type_name]:
            how = FIELDS[type_name][name]
            if how[0] == "obj":
                inner = _object(how[1], below, None)
                entry = None if inner is None else (key, "obj", inner)
            else:
                entry = (key, *how)
        elif type_name == "Subscription" and name in SUBSCRIPTION_TYPES and nested is not None:
            entry = _nested(key, name, below, nested)
        else:
            entry = None
        if entry is None:
            return None
        entries.append(entry)
    return tuple(entries)


def _applies(picked: Picked, type_name: str) -> bool:
    """Whether every fragment ``picked`` was flattened out of applies to ``type_name``: one that
    does not (``tags { ... on Node { ... on Admin { name } } }``) is not answered, and the
    selection is left to the ordinary path."""
    return all(on == type_name or (on == "Node" and type_name in NODE_TYPES) for on in picked.on)


def _nested(key: str, name: str, below: Sequence[Picked], nested: Split) -> Entry | None:
    read, refused, _ = nested
    if name in refused:
        return (key, "empty")
    for field, part, cap in read:
        if field == name:
            inner = _object(SUBSCRIPTION_TYPES[name], below, None)
            return None if inner is None else (key, "part", part, cap, inner)
    return None  # left to the loaders
