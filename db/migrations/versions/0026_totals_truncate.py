"""license totals follow a TRUNCATE: PostgreSQL fires no row or DELETE trigger for it, so the
totals of migration 0012 (and the KPI spans and ratio buckets kept from them) outlived an
operator's ``TRUNCATE license_line`` / ``subscription ... CASCADE`` / ``license_snapshot``

Revision ID: 0026_totals_truncate
Revises: 0021_license_kpi_spans
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026_totals_truncate"
down_revision: str | None = "0021_license_kpi_spans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# After a TRUNCATE of licence lines or subscriptions, every kept total is recomputed from what
# is left (the same function the row changes use, so the ratio histogram and, through their own
# triggers, the KPI spans and buckets move with it); after a TRUNCATE of the snapshots no week
# has a snapshot left.
FUNCTION = """
CREATE FUNCTION license_totals_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'license_snapshot' THEN
        DELETE FROM license_week_total;
    ELSE
        PERFORM license_totals_refresh(
            ARRAY(SELECT DISTINCT subscription_id FROM license_product_total));
    END IF;
    RETURN NULL;
END $$
"""
TABLES = ("license_line", "subscription", "license_snapshot")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no TRUNCATE: its DELETE fires the row triggers
    op.execute(FUNCTION)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_totals_tru AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION license_totals_truncated()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_totals_tru ON {table}")
    op.execute("DROP FUNCTION IF EXISTS license_totals_truncated()")
