"""Enums and the Node interface shared by every domain area."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import strawberry

from db import enums

# A field below the root whose arguments can be refused (a page size, a week count) is nullable,
# so that the refusal nulls that field alone: a non-null field's error nulls its parent, and so
# on up to the root, taking every sibling's answer with it.
NULL_WHEN_REFUSED = " Null (with the error) when an argument is refused: the field fails alone."

Product = enums.Product
strawberry.enum(enums.Product, description="A product a customer can order.")
ManagedBy = enums.ManagedBy
strawberry.enum(
    enums.ManagedBy,
    description="EXTERNAL_ADMIN: the partner administers the customer as an external admin; "
    "PARTNER_ORG: the customer is part of the partner's own organization.",
)
SubscriptionKind = enums.SubscriptionKind
strawberry.enum(enums.SubscriptionKind, description="PAID subscription or TRIAL.")
SubscriptionState = enums.SubscriptionState
strawberry.enum(
    enums.SubscriptionState,
    description="PROVISIONING: ordered, not yet fully set up; ACTIVE; SUSPENDED: unpaid; "
    "EXPIRED; CANCELLED.",
)
CustomerStatus = enums.CustomerStatus
strawberry.enum(
    enums.CustomerStatus,
    description="Derived customer status at the server's now; several can hold at once. "
    "TRIAL: a trial is in force. ACTIVE: a paid subscription is in force. EXPIRING_SOON: a trial, "
    "or a paid subscription that does not auto-renew, is in force and ends within the "
    "expiring-soon window (default 7 days). LICENSE_OVERAGE: an in-force subscription has a "
    "license line with assigned > purchased. NO_RECENT_ACTIVITY: the customer's admins never "
    "signed in or last signed in more than the inactivity window (default 30 days) ago. "
    "READY_FOR_ORDER_SETUP: a subscription is PROVISIONING. SUSPENDED: a subscription is "
    "SUSPENDED (non-payment). EXPIRED: the customer has subscriptions and every one is expired, "
    "cancelled or has ended.",
)
OrderAction = enums.OrderAction
strawberry.enum(enums.OrderAction, description="What an order of a subscription's history did.")
OrderStatus = enums.OrderStatus
strawberry.enum(enums.OrderStatus, description="Where an order stands.")
InvoiceStatus = enums.InvoiceStatus
strawberry.enum(enums.InvoiceStatus, description="Whether an invoice is paid.")
SetupState = enums.SetupState
strawberry.enum(
    enums.SetupState,
    description="First-time setup of the partner's own organization: NOT_STARTED, "
    "TERMS_ACCEPTED (terms and conditions accepted), READY (setup finished).",
)


@strawberry.interface(description="An object with a global, opaque ID (Relay).")
class Node:
    id: strawberry.ID = strawberry.field(description="Global, opaque identifier.")


T = TypeVar("T")
_CHECKED: set[type] = set()
_new = object.__new__


def made(cls: type[T], values: dict[str, Any]) -> T:
    """``cls(**values)`` for a Strawberry type, without its dataclass ``__init__``: the
    attributes are set at once, in about half the time (a directory page makes 350-500 of
    these objects from its rows). The first object of each class is checked to set exactly the
    class's fields, as ``__init__`` would insist (a field added to the class and not to its
    ``from_row`` is a TypeError, not a missing attribute later)."""
    if cls not in _CHECKED:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        expected = {field.name for field in fields if field.init}
        if set(values) != expected:
            raise TypeError(f"{cls.__name__} has the fields {sorted(expected)}")
        _CHECKED.add(cls)
    obj = _new(cls)
    obj.__dict__ = values
    return obj
