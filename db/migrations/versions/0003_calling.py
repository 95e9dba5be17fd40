"""calling detail aggregate: per customer and week, calls per day, endpoint type and feature,
and users by call volume

Revision ID: 0003_calling
Revises: 0002_custom_roles
Create Date: 2026-11-26 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0003_calling"
down_revision: str | None = "0002_custom_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The vocabularies as they are at this revision (db.enums may grow; a later revision adds).
ENDPOINT_TYPES = ("DESK_PHONE", "DESKTOP_APP", "MOBILE_APP", "BROWSER", "OTHER")
FEATURES = (
    "TRANSFER",
    "HOLD",
    "FORWARD",
    "CONFERENCE",
    "CALL_QUEUE",
    "HUNT_GROUP",
    "AUTO_ATTENDANT",
    "VOICEMAIL",
    "CALL_PARK",
    "CALL_PICKUP",
)
COUNTS = (
    *(f"day_{d}_calls" for d in range(7)),
    *(f"day_{d}_seconds" for d in range(7)),
    *(c for e in ENDPOINT_TYPES for c in (f"{e.lower()}_calls", f"{e.lower()}_poor_calls")),
    *(f"{f.lower()}_calls" for f in FEATURES),
    "users_1_to_10",
    "users_11_to_50",
    "users_51_plus",
)


def upgrade() -> None:
    op.create_table(
        "call_weekly_detail",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("week_start", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id", "week_start"),
    )
    op.create_index(
        "ix_call_weekly_detail_partner_week", "call_weekly_detail", ["partner_id", "week_start"]
    )


def downgrade() -> None:
    op.drop_index("ix_call_weekly_detail_partner_week", "call_weekly_detail")
    op.drop_table("call_weekly_detail")
