"""per-token cost budgets shared by the API instances of one deployment (issue 17)

Revision ID: 0017_cost_budget
Revises: 0013_partner_aggregates
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_cost_budget"
down_revision: str | None = "0013_partner_aggregates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cost_budget",
        sa.Column("token_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("level", sa.Float(), nullable=False),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Spending state, rewritten by most requests: no WAL for it (a crash empties it, which
        # at worst gives each token a full budget once).
        op.execute("ALTER TABLE cost_budget SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("cost_budget")
