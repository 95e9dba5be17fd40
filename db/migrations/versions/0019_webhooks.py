"""webhooks: endpoints, the outbox of events, deliveries; the webhook policy lines

Revision ID: 0019_webhooks
Revises: 0020_directory_counts

A database seeded before webhooks existed gets the default ``webhook`` rules (full admins
manage and read, read-only admins read), as a fresh one gets them from
``policies/default_policy.csv``; the policy version moves so running servers reload.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision: str = "0019_webhooks"
down_revision: str | None = "0020_directory_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RULES = [
    ("FULL_ADMIN", "manage"),
    ("FULL_ADMIN", "read"),
    ("READ_ONLY_ADMIN", "read"),
]


def _partner() -> sa.Column:
    return sa.Column(
        "partner_id", sa.Integer(), sa.ForeignKey("partner.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.Integer(), primary_key=True),
        _partner(),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("events", sa.String(length=400), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("failing_since", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhook_endpoint_partner", "webhook_endpoint", ["partner_id", "active"])
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        _partner(),
        sa.Column("message_id", sa.String(length=64), nullable=False, unique=True),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhook_event_customer", "webhook_event", ["customer_id", "event", "id"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        _partner(),
        sa.Column(
            "endpoint_id",
            sa.Integer(),
            sa.ForeignKey("webhook_endpoint.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "event_id",
            sa.Integer(),
            sa.ForeignKey("webhook_event.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("first_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
    )
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["status", "next_attempt_at"])
    op.create_index(
        "ix_webhook_delivery_order",
        "webhook_delivery",
        ["endpoint_id", "customer_id", "status", "id"],
    )
    op.create_index("ix_webhook_delivery_partner", "webhook_delivery", ["partner_id", "id"])
    op.create_index("ix_webhook_delivery_event_id", "webhook_delivery", ["event_id"])
    _add_policy_lines()


def _add_policy_lines() -> None:
    bind = op.get_bind()
    if not bind.execute(sa.text("SELECT count(*) FROM casbin_rule")).scalar():
        return  # a fresh database: the default policy file is seeded at start-up
    for role, action in RULES:
        found = bind.execute(
            sa.text(
                "SELECT count(*) FROM casbin_rule WHERE ptype = 'p' AND v0 = :role "
                "AND v1 = '*' AND v2 = 'webhook' AND v3 = :action"
            ),
            {"role": role, "action": action},
        ).scalar()
        if not found:
            bind.execute(
                sa.text(
                    "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) "
                    "VALUES ('p', :role, '*', 'webhook', :action, 'all', 'allow')"
                ),
                {"role": role, "action": action},
            )
    bind.execute(
        sa.text(
            "UPDATE app_meta SET value = CAST(CAST(value AS INTEGER) + 1 AS VARCHAR(20)) "
            "WHERE key = 'policy_version'"
        )
    )


def downgrade() -> None:
    op.execute("DELETE FROM casbin_rule WHERE ptype = 'p' AND v2 = 'webhook'")
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_event")
    op.drop_table("webhook_endpoint")
