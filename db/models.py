"""SQLModel tables for the whole domain (DESIGN.md sections 2-3).

Enumerations are stored as strings (see ``db.enums``); every datetime is UTC (``UTCDateTime``).
Indexes follow the queries: the directory pages by (partner, name) and (partner, created),
status filters read ``customer_status_span``, the ``assigned`` scope reads ``customer_assignment``
by admin, analytics read subscriptions by end and renewal date.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime

__all__ = [
    "Admin",
    "ApiToken",
    "AppMeta",
    "AuditLog",
    "CallRecord",
    "CallWeeklyAggregate",
    "CasbinRule",
    "CustomRole",
    "Customer",
    "CustomerAssignment",
    "CustomerProduct",
    "CustomerStatusSpan",
    "CustomerTag",
    "HelpdeskCase",
    "HelpdeskComment",
    "Invoice",
    "LaunchToken",
    "LicenseLine",
    "LicenseSnapshot",
    "Order",
    "Partner",
    "PartnerCounter",
    "Resource",
    "Subscription",
    "SubscriptionTag",
    "Tag",
]


def _dt(nullable: bool = False, index: bool = False) -> Column[Any]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


def _fk(target: str, nullable: bool = False, index: bool = True) -> Column[Any]:
    return Column(Integer, ForeignKey(target, ondelete="CASCADE"), nullable=nullable, index=index)


class AppMeta(SQLModel, table=True):
    """Key/value facts about the database itself (generated secret, derived-data versions)."""

    __tablename__ = "app_meta"
    key: str = Field(sa_column=Column(String(64), primary_key=True))
    value: str = Field(sa_column=Column(Text, nullable=False))


class Partner(SQLModel, table=True):
    __tablename__ = "partner"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    domain: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    setup_state: str = Field(sa_column=Column(String(32), nullable=False, default="NOT_STARTED"))
    terms_accepted_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    setup_completed_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    created_at: datetime = Field(sa_column=_dt())


class Admin(SQLModel, table=True):
    __tablename__ = "admin"
    __table_args__ = (Index("ix_admin_partner_id_id", "partner_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    role: str = Field(sa_column=Column(String(64), nullable=False))
    active: bool = Field(sa_column=Column(Boolean, nullable=False, default=True))
    created_at: datetime = Field(sa_column=_dt())
    deactivated_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))


class ApiToken(SQLModel, table=True):
    """A bearer token; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    admin_id: int = Field(sa_column=_fk("admin.id"))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    label: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = Field(sa_column=_dt())
    revoked_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    last_used_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = (
        UniqueConstraint("partner_id", "external_id", name="uq_customer_partner_external_id"),
        Index("ix_customer_partner_name", "partner_id", "name_key", "id"),
        Index("ix_customer_partner_created", "partner_id", "created_at", "id"),
        Index("ix_customer_partner_managed_by", "partner_id", "managed_by", "name_key", "id"),
        Index("ix_customer_provisioned_by", "provisioned_by_admin_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    external_id: str = Field(sa_column=Column(String(64), nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    # Lower-cased name: case-insensitive ordering and search use the same index on both backends.
    name_key: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(sa_column=_dt())
    managed_by: str = Field(sa_column=Column(String(32), nullable=False))
    last_admin_sign_in_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    provisioned_by_admin_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("admin.id", ondelete="SET NULL"), nullable=True),
    )


class Subscription(SQLModel, table=True):
    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("partner_id", "subscription_id", name="uq_subscription_partner_ref"),
        Index("ix_subscription_partner_end", "partner_id", "state", "end_date"),
        Index("ix_subscription_partner_renewal", "partner_id", "renewal_date"),
        Index("ix_subscription_customer", "customer_id", "start_date"),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    customer_id: int = Field(sa_column=_fk("customer.id", index=False))
    subscription_id: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    start_date: datetime = Field(sa_column=_dt())
    end_date: datetime = Field(sa_column=_dt())
    auto_renew: bool = Field(sa_column=Column(Boolean, nullable=False, default=False))
    renewal_date: datetime | None = Field(default=None, sa_column=_dt(nullable=True))
    term_months: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = Field(sa_column=_dt())
    created_by_admin_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("admin.id", ondelete="SET NULL"), nullable=True),
    )


class LicenseLine(SQLModel, table=True):
    __tablename__ = "license_line"
    __table_args__ = (
        UniqueConstraint("subscription_id", "product", "license_type", name="uq_license_line"),
        Index("ix_license_line_partner_product", "partner_id", "product"),
        # The overage section's lines, largest overage first (migration 0021).
        Index(
            "ix_license_line_overage",
            "partner_id",
            "product",
            text("(assigned - purchased)"),
            "subscription_id",
            "license_type",
            sqlite_where=text("assigned > purchased"),
            postgresql_where=text("assigned > purchased"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    subscription_id: int = Field(sa_column=_fk("subscription.id", index=False))
    product: str = Field(sa_column=Column(String(32), nullable=False))
    license_type: str = Field(sa_column=Column(String(64), nullable=False))
    purchased: int = Field(sa_column=Column(Integer, nullable=False))
    assigned: int = Field(sa_column=Column(Integer, nullable=False))
    used: int = Field(sa_column=Column(Integer, nullable=False))


class LicenseSnapshot(SQLModel, table=True):
    """Weekly state of a license line; the week starts on Sunday 00:00 UTC."""

    __tablename__ = "license_snapshot"
    __table_args__ = (
        UniqueConstraint("license_line_id", "week_start", name="uq_license_snapshot_week"),
        Index(
            "ix_license_snapshot_trend",
            "partner_id",
            "product",
            "week_start",
            "subscription_id",
            "purchased",
            "assigned",
            "used",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    license_line_id: int = Field(sa_column=_fk("license_line.id", index=False))
    subscription_id: int = Field(sa_column=_fk("subscription.id", index=True))
    product: str = Field(sa_column=Column(String(32), nullable=False))
    week_start: datetime = Field(sa_column=_dt())
    purchased: int = Field(sa_column=Column(Integer, nullable=False))
    assigned: int = Field(sa_column=Column(Integer, nullable=False))
    used: int = Field(sa_column=Column(Integer, nullable=False))


class Invoice(SQLModel, table=True):
    """``status``: ``db.enums.InvoiceStatus``; numbers are unique per partner (migration 0014)."""

    __tablename__ = "invoice"
    __table_args__ = (
        Index("ux_invoice_partner_number", "partner_id", "invoice_number", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    subscription_id: int = Field(sa_column=_fk("subscription.id"))
    invoice_number: str = Field(sa_column=Column(String(64), nullable=False))
    issued_at: datetime = Field(sa_column=_dt())
    due_at: datetime = Field(sa_column=_dt())
    amount_cents: int = Field(sa_column=Column(Integer, nullable=False))
    currency: str = Field(sa_column=Column(String(3), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))


class Order(SQLModel, table=True):
    """``action``: ``db.enums.OrderAction``; ``status``: ``db.enums.OrderStatus``; numbers are
    unique per partner (migration 0014)."""

    __tablename__ = "subscription_order"
    __table_args__ = (
        Index("ux_subscription_order_partner_number", "partner_id", "order_number", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    subscription_id: int = Field(sa_column=_fk("subscription.id"))
    order_number: str = Field(sa_column=Column(String(64), nullable=False))
    placed_at: datetime = Field(sa_column=_dt())
    action: str = Field(sa_column=Column(String(32), nullable=False))
    description: str = Field(sa_column=Column(String(500), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))


class Tag(SQLModel, table=True):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("partner_id", "name_key", name="uq_tag_partner_name"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    name: str = Field(sa_column=Column(String(25), nullable=False))
    name_key: str = Field(sa_column=Column(String(25), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    created_at: datetime = Field(sa_column=_dt())


class CustomerTag(SQLModel, table=True):
    """A tag on a customer. ``name_key`` repeats the customer's (written once, at creation) so
    that a tag's customers can be walked in name order from the index (migration 0009)."""

    __tablename__ = "customer_tag"
    __table_args__ = (Index("ix_customer_tag_name", "tag_id", "name_key", "customer_id"),)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    tag_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)
    )
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    created_at: datetime = Field(sa_column=_dt())
    name_key: str = Field(sa_column=Column(String(200), nullable=False))


class SubscriptionTag(SQLModel, table=True):
    __tablename__ = "subscription_tag"
    __table_args__ = (Index("ix_subscription_tag_tag", "tag_id", "subscription_id"),)
    subscription_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("subscription.id", ondelete="CASCADE"), primary_key=True
        )
    )
    tag_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)
    )
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    created_at: datetime = Field(sa_column=_dt())


class CustomerAssignment(SQLModel, table=True):
    """A partner administrator assigned to (or provisioning) a customer."""

    __tablename__ = "customer_assignment"
    __table_args__ = (Index("ix_customer_assignment_admin", "admin_id", "customer_id"),)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    admin_id: int = Field(
        sa_column=Column(Integer, ForeignKey("admin.id", ondelete="CASCADE"), primary_key=True)
    )
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    assigned_at: datetime = Field(sa_column=_dt())
    assigned_by_admin_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("admin.id", ondelete="SET NULL"), nullable=True),
    )


class CustomerStatusSpan(SQLModel, table=True):
    """A customer status and the time span over which it holds: [valid_from, valid_to).

    Derived from subscriptions, license lines and the last admin sign-in by
    ``db.status.refresh_status_spans`` whenever one of those changes. Because each row carries the
    span of time it is true for, "which statuses hold now" is a range test on the clock's now: the
    table never goes stale as time passes, and nothing has to run at midnight.
    """

    __tablename__ = "customer_status_span"
    __table_args__ = (
        # "holds now" = valid_from <= now < valid_to: valid_to first (migration 0008).
        Index(
            "ix_status_span_now", "partner_id", "status", "valid_to", "valid_from", "customer_id"
        ),
        Index("ix_status_span_customer_now", "customer_id", "status", "valid_to", "valid_from"),
        # Today's span starts, for the maintained status counts (migration 0020,
        # db.directory_counts).
        Index("ix_status_span_from", "partner_id", "status", "valid_from"),
        # A page filtered by one status walks its customers in name order (migration 0010).
        Index(
            "ix_status_span_name",
            "partner_id",
            "status",
            "name_key",
            "customer_id",
            "valid_to",
            "valid_from",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    customer_id: int = Field(sa_column=_fk("customer.id", index=False))
    status: str = Field(sa_column=Column(String(32), nullable=False))
    valid_from: datetime = Field(sa_column=_dt())
    valid_to: datetime = Field(sa_column=_dt())
    # The customer's name key (names are written once, at creation), for that walk.
    name_key: str = Field(sa_column=Column(String(200), nullable=False))


class CustomerProduct(SQLModel, table=True):
    """Products a customer has on subscriptions that are not expired or cancelled (derived)."""

    __tablename__ = "customer_product"
    __table_args__ = (Index("ix_customer_product_partner", "partner_id", "product", "customer_id"),)
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    product: str = Field(sa_column=Column(String(32), primary_key=True))
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_partner_id", "partner_id", "id"),
        Index("ix_audit_partner_admin", "partner_id", "admin_id", "id"),
        Index("ix_audit_partner_object", "partner_id", "object_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    admin_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("admin.id", ondelete="SET NULL"), nullable=True),
    )
    operation: str = Field(sa_column=Column(String(64), nullable=False))
    object_type: str = Field(sa_column=Column(String(32), nullable=False))
    object_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    before: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    after: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_dt())


class HelpdeskCase(SQLModel, table=True):
    __tablename__ = "helpdesk_case"
    __table_args__ = (
        Index("ix_helpdesk_partner_id", "partner_id", "id"),
        # Case numbers count per partner (CS-000001 is each partner's first case): handed out
        # by ``partner_counter`` (db.queries.counters); this index only guards them.
        Index("ux_helpdesk_case_partner_number", "partner_id", "number", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    number: int = Field(sa_column=Column(Integer, nullable=False))
    opened_by_admin_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("admin.id", ondelete="SET NULL"), nullable=True),
    )
    customer_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("customer.id", ondelete="SET NULL"), nullable=True),
    )
    product: str = Field(sa_column=Column(String(32), nullable=False))
    subject: str = Field(sa_column=Column(String(200), nullable=False))
    description: str = Field(sa_column=Column(Text, nullable=False))
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(sa_column=_dt())
    closed_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))


class PartnerCounter(SQLModel, table=True):
    """Per-partner sequences of human-visible numbers (``helpdesk_case``: case numbers): the
    last number handed out, incremented in the transaction that uses the next one."""

    __tablename__ = "partner_counter"
    partner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("partner.id", ondelete="CASCADE"), primary_key=True)
    )
    name: str = Field(sa_column=Column(String(32), primary_key=True))
    value: int = Field(sa_column=Column(Integer, nullable=False))


class HelpdeskComment(SQLModel, table=True):
    __tablename__ = "helpdesk_comment"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(sa_column=_fk("helpdesk_case.id"))
    admin_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("admin.id", ondelete="SET NULL"), nullable=True),
    )
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_dt())


class Resource(SQLModel, table=True):
    """Help content shared by every partner: quick links, featured resources, the catalogue."""

    __tablename__ = "resource"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(sa_column=Column(String(120), nullable=False, unique=True))
    title: str = Field(sa_column=Column(String(200), nullable=False))
    summary: str = Field(sa_column=Column(String(1000), nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    url: str = Field(sa_column=Column(String(500), nullable=False))
    type: str = Field(sa_column=Column(String(32), nullable=False))
    products: str = Field(sa_column=Column(String(200), nullable=False, default=""))
    audiences: str = Field(sa_column=Column(String(200), nullable=False, default=""))
    quick_link: bool = Field(sa_column=Column(Boolean, nullable=False, default=False))
    featured: bool = Field(sa_column=Column(Boolean, nullable=False, default=False))
    popularity: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    updated_at: datetime = Field(sa_column=_dt())


class CallRecord(SQLModel, table=True):
    __tablename__ = "call_record"
    __table_args__ = (
        Index("ix_call_record_customer_week", "customer_id", "week_start"),
        Index("ix_call_record_partner_week", "partner_id", "week_start"),
        # A call id is unique within its partner: one partner's ids never collide with
        # (nor reveal) another's.
        Index("ux_call_record_partner_call", "partner_id", "call_id", unique=True),
    )
    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(sa_column=Column(String(64), nullable=False))
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    customer_id: int = Field(sa_column=_fk("customer.id", index=False))
    user_id: str = Field(sa_column=Column(String(64), nullable=False))
    started_at: datetime = Field(sa_column=_dt())
    week_start: datetime = Field(sa_column=_dt())
    duration_seconds: int = Field(sa_column=Column(Integer, nullable=False))
    direction: str = Field(sa_column=Column(String(16), nullable=False))
    endpoint_type: str = Field(sa_column=Column(String(16), nullable=False))
    packet_loss_percent: float = Field(sa_column=Column(Float, nullable=False))
    jitter_ms: float = Field(sa_column=Column(Float, nullable=False))
    latency_ms: float = Field(sa_column=Column(Float, nullable=False))
    features: str = Field(sa_column=Column(String(300), nullable=False, default=""))
    queue_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    wait_seconds: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    answered: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    abandoned: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))


class CallWeeklyAggregate(SQLModel, table=True):
    """Per customer and week (Sunday 00:00 UTC) totals of call records, kept by ingestion."""

    __tablename__ = "call_weekly_aggregate"
    __table_args__ = (
        Index("ix_call_weekly_partner_week", "partner_id", "week_start"),
        # Licensed users without calls: a week's customers and active users, index only.
        Index(
            "ix_call_weekly_partner_week_users",
            "partner_id",
            "week_start",
            "customer_id",
            "active_users",
        ),
    )
    customer_id: int = Field(
        sa_column=Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    )
    week_start: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    calls: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    duration_seconds: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    active_users: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    poor_calls: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    queue_calls: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    answered_calls: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    abandoned_calls: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    answered_wait_seconds: int = Field(sa_column=Column(Integer, nullable=False, default=0))
    abandoned_wait_seconds: int = Field(sa_column=Column(Integer, nullable=False, default=0))


class CasbinRule(SQLModel, table=True):
    """Casbin policy lines (``p``: role, partner domain, object, action, scope; ``g``: grants)."""

    __tablename__ = "casbin_rule"
    id: int | None = Field(default=None, primary_key=True)
    ptype: str = Field(sa_column=Column(String(255), nullable=False))
    v0: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    v1: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    v2: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    v3: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    v4: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    v5: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))


class CustomRole(SQLModel, table=True):
    """A role a partner defines; its rules live in ``casbin_rule`` for the partner's domain."""

    __tablename__ = "custom_role"
    __table_args__ = (UniqueConstraint("partner_id", "name", name="uq_custom_role_partner_name"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    name: str = Field(sa_column=Column(String(64), nullable=False))
    description: str = Field(sa_column=Column(String(500), nullable=False, default=""))
    created_at: datetime = Field(sa_column=_dt())


class LaunchToken(SQLModel, table=True):
    """A launch link's token: single use, short-lived, bound to admin, role and organization."""

    __tablename__ = "launch_token"
    jti: str = Field(sa_column=Column(String(64), primary_key=True))
    partner_id: int = Field(sa_column=_fk("partner.id", index=False))
    admin_id: int = Field(sa_column=_fk("admin.id"))
    role: str = Field(sa_column=Column(String(64), nullable=False))
    organization_type: str = Field(sa_column=Column(String(16), nullable=False))
    organization_id: int = Field(sa_column=Column(Integer, nullable=False))
    issued_at: datetime = Field(sa_column=_dt())
    expires_at: datetime = Field(sa_column=_dt())
    used_at: datetime | None = Field(default=None, sa_column=_dt(nullable=True))


# Calling aggregates live in their own module; importing it registers them on the metadata.
import db.calls_licensed  # noqa: E402
import db.calls_models  # noqa: E402
import db.calls_partner  # noqa: E402
import db.partner_versions  # noqa: E402
import db.webhook_models  # noqa: E402, F401

# Registered persisted queries (deployment-wide documents, not partner data), the per-token
# cost budgets a deployment's instances share (graph/cost_store.py), and the maintained license
# aggregates (issue 16), registered on the same metadata.
from db import (  # noqa: E402, F401
    cost_budgets,
    directory_counts,
    license_kpis,
    license_totals,
    low_reference,
    persisted_models,
)
