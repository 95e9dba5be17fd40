"""the rollups rebuild themselves after a TRUNCATE; a pending ratio must be a finite ratio

Found by session 8's attacker (tests/test_attack_session8.py):

- A PostgreSQL ``TRUNCATE license_kpi_block`` or ``license_kpi_edge`` (an operator's) left the
  license figures silently short of the history those rollups hold (0027 already rebuilds the
  ratio base after a TRUNCATE of its deltas). Each now has an AFTER TRUNCATE trigger that
  rebuilds it from what it rolls up (the day edges; the spans), with 0029's own backfill.
- One operator's row in ``license_ratio_delta`` with a NaN or huge ratio broke the fold's
  bucket cast: every later write that took the fold lock, of any partner, failed until the row
  was deleted. A pending ratio (and a counted one, on PostgreSQL) must now be >= 0 and < 1e15:
  a CHECK on PostgreSQL; on SQLite, where the triggers never write deltas, a BEFORE trigger
  refuses such rows (a CHECK there would mean rebuilding the table).

Revision ID: 0031_rollup_guards
Revises: 0030_kpi_span_fractions
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0031_rollup_guards"
down_revision: str | None = "0030_kpi_span_fractions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINITE = "ratio >= 0 AND ratio < 1e15"
CHECKS = {
    "license_ratio_delta": "ck_license_ratio_delta_ratio",
    "license_ratio_count": "ck_license_ratio_count_ratio",
}
REBUILT = ("license_kpi_block", "license_kpi_edge")
SQLITE_GUARDS = {
    "license_ratio_delta_ratio_ins": "BEFORE INSERT ON license_ratio_delta",
    "license_ratio_delta_ratio_upd": "BEFORE UPDATE OF ratio ON license_ratio_delta",
}


def _blocks() -> ModuleType:
    """Migration 0029 (its backfill statements: the rollups from what they roll up)."""
    path = Path(__file__).with_name("0029_kpi_day_blocks.py")
    spec = importlib.util.spec_from_file_location("_migration_0029", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, event in SQLITE_GUARDS.items():
            op.execute(
                f"CREATE TRIGGER {name} {event} FOR EACH ROW "
                f"WHEN NEW.ratio IS NULL OR NOT (NEW.{FINITE.replace(' AND ', ' AND NEW.')}) "
                "BEGIN SELECT RAISE(ABORT, 'ratio must be >= 0 and < 1e15'); END"
            )
        return
    for table, name in CHECKS.items():
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({FINITE})")
    block_backfill, edge_backfill = _blocks()._backfill()
    op.execute(
        f"""
CREATE FUNCTION license_kpi_rollup_rebuild() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'license_kpi_block' THEN
        {block_backfill};
    ELSE
        {edge_backfill};
    END IF;
    RETURN NULL;
END $$
"""
    )
    for table in REBUILT:
        op.execute(
            f"CREATE TRIGGER {table}_truncated AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION license_kpi_rollup_rebuild()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_GUARDS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        return
    for table in REBUILT:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_truncated ON {table}")
    op.execute("DROP FUNCTION IF EXISTS license_kpi_rollup_rebuild()")
    for table, name in CHECKS.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
