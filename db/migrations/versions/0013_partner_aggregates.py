"""data versions per partner; calling aggregates per partner and week

Revision ID: 0013_partner_aggregates
Revises: 0018_persisted_queries
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

# Frozen copies of db.calls_partner's columns (a migration must not change with the code).
WEEKLY_SUMS = (
    "calls",
    "duration_seconds",
    "active_users",
    "poor_calls",
    "queue_calls",
    "answered_calls",
    "abandoned_calls",
    "answered_wait_seconds",
    "abandoned_wait_seconds",
)
_DAYS = range(7)
_ENDPOINTS = ("desk_phone", "desktop_app", "mobile_app", "browser", "other")
_FEATURES = (
    "transfer",
    "hold",
    "forward",
    "conference",
    "call_queue",
    "hunt_group",
    "auto_attendant",
    "voicemail",
    "call_park",
    "call_pickup",
)
DETAIL_COLUMNS = (
    *(f"day_{d}_calls" for d in _DAYS),
    *(f"day_{d}_seconds" for d in _DAYS),
    *(n for e in _ENDPOINTS for n in (f"{e}_calls", f"{e}_poor_calls")),
    *(f"{f}_calls" for f in _FEATURES),
    "users_1_to_10",
    "users_11_to_50",
    "users_51_plus",
)
COLUMNS = (*WEEKLY_SUMS, *DETAIL_COLUMNS)

revision: str = "0013_partner_aggregates"
down_revision: str | None = "0018_persisted_queries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every partner starts at version 0 (no row); the global epoch in app_meta stays.
    op.create_table(
        "partner_data_version",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id"),
    )
    # The calling aggregates per partner and week (db.calls_partner), built from the customer
    # rows of existing databases; ingestion keeps them from now on.
    op.create_table(
        "call_partner_week",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("week_start", UTCDateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COLUMNS),
        sa.PrimaryKeyConstraint("partner_id", "week_start"),
    )
    weekly = ", ".join(f"sum(w.{n})" for n in WEEKLY_SUMS)
    detail = ", ".join(f"sum(d.{n})" for n in DETAIL_COLUMNS)
    op.execute(
        f"INSERT INTO call_partner_week (partner_id, week_start, {', '.join(COLUMNS)}) "
        f"SELECT w.partner_id, w.week_start, {weekly}, {detail} "
        "FROM call_weekly_aggregate w JOIN call_weekly_detail d "
        "ON d.customer_id = w.customer_id AND d.week_start = w.week_start "
        "GROUP BY w.partner_id, w.week_start"
    )


def downgrade() -> None:
    op.drop_table("call_partner_week")
    op.drop_table("partner_data_version")
