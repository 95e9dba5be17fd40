"""call ids unique per partner; helpdesk case numbers counted per partner

Revision ID: 0011_partner_counters
Revises: 0010_status_walk
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_partner_counters"
down_revision: str | None = "0010_status_walk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CASE_COUNTER = "helpdesk_case"  # db.queries.counters.HELPDESK_CASE
# SQLite reflects 0001's UNIQUE (call_id) without a name; batch mode names it by this (a
# downgrade names it call_record_call_id_key, as PostgreSQL did).
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    # Call ids: unique per partner instead of across the deployment (issue 14, finding 6).
    uniques = [
        unique
        for unique in sa.inspect(op.get_bind()).get_unique_constraints("call_record")
        if unique["column_names"] == ["call_id"]
    ]
    with op.batch_alter_table("call_record", naming_convention=_SQLITE_NAMES) as batch_op:
        for unique in uniques:
            batch_op.drop_constraint(unique["name"] or "uq_call_record_call_id", type_="unique")
        batch_op.create_index("ux_call_record_partner_call", ["partner_id", "call_id"], unique=True)

    # Case numbers: per partner (finding 7). Existing cases keep the number they were shown
    # with (their id, which support may already have been quoted); each partner's counter
    # starts after its highest, so every case opened from now on is numbered per partner.
    op.create_table(
        "partner_counter",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("partner_id", "name"),
    )
    with op.batch_alter_table("helpdesk_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.Integer(), nullable=True))
    op.execute("UPDATE helpdesk_case SET number = id")
    with op.batch_alter_table("helpdesk_case", schema=None) as batch_op:
        batch_op.alter_column("number", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(
            "ux_helpdesk_case_partner_number", ["partner_id", "number"], unique=True
        )
    op.execute(
        "INSERT INTO partner_counter (partner_id, name, value) "
        f"SELECT partner_id, '{CASE_COUNTER}', MAX(number) FROM helpdesk_case GROUP BY partner_id"
    )


def downgrade() -> None:
    # Fails (unique violation) when two partners have used the same call id since the upgrade.
    with op.batch_alter_table("helpdesk_case", schema=None) as batch_op:
        batch_op.drop_index("ux_helpdesk_case_partner_number")
        batch_op.drop_column("number")
    op.drop_table("partner_counter")
    with op.batch_alter_table("call_record", schema=None) as batch_op:
        batch_op.drop_index("ux_call_record_partner_call")
        batch_op.create_unique_constraint("call_record_call_id_key", ["call_id"])
