"""license KPI day edges rolled up per block of 32 and of 1,024 days, kept by triggers, so that
a KPI's figures at ``now`` read a few dozen rows whatever the history's length (issue 16)

Revision ID: 0029_kpi_day_blocks
Revises: 0026_totals_truncate

See ``db.license_kpis`` for how the blocks are read. ``license_kpi_block`` holds, per partner,
KPI, level and block, the sums of the ``license_kpi_day`` rows whose ``day >> level`` is the
block (levels 5 and 10). Its triggers add each change of the day edges as a delta, in the same
transaction, as migration 0021 keeps ``license_ratio_bucket`` from ``license_ratio_count``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_kpi_day_blocks"
down_revision: str | None = "0026_totals_truncate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WEIGHTS = ("customers", "purchased", "assigned", "used", "line_rows")
LEVELS = (5, 10)  # db.license_kpis: blocks of 32 and of 1,024 days
KEY = "partner_id, kpi, level, block"
NAMES = ", ".join(WEIGHTS)
# One row per level: ``day >> level`` is the day's block (days are >= 0; a shift floors anyway).
LEVEL_ROWS = " UNION ALL ".join(f"SELECT {level} AS level" for level in LEVELS)


def _sums() -> str:
    return ", ".join(f"SUM({w})" for w in WEIGHTS)


def _nonzero() -> str:
    return " OR ".join(f"SUM({w}) <> 0" for w in WEIGHTS)


def _backfill() -> str:
    return (
        f"INSERT INTO license_kpi_block ({KEY}, {NAMES}) "
        f"SELECT d.partner_id, d.kpi, l.level, d.day >> l.level, {_sums()} "
        f"FROM license_kpi_day d CROSS JOIN ({LEVEL_ROWS}) l "
        f"GROUP BY d.partner_id, d.kpi, l.level, d.day >> l.level HAVING {_nonzero()}"
    )


# --- SQLite: row triggers doing upserts of deltas ---------------------------------------------


def _sqlite_upsert(key_row: str, values: str) -> str:
    update = ", ".join(f"{w} = {w} + excluded.{w}" for w in WEIGHTS)
    return "".join(
        f"INSERT INTO license_kpi_block ({KEY}, {NAMES}) "
        f"VALUES ({key_row}.partner_id, {key_row}.kpi, {level}, {key_row}.day >> {level}, "
        f"{values}) ON CONFLICT ({KEY}) DO UPDATE SET {update}; "
        for level in LEVELS
    )


def _sqlite_row(row: str, sign: str) -> str:
    return _sqlite_upsert(row, ", ".join(f"{sign}{row}.{w}" for w in WEIGHTS))


SAME_KEY = "OLD.partner_id = NEW.partner_id AND OLD.kpi = NEW.kpi AND OLD.day = NEW.day"

# name -> (event, WHEN condition or "", body). The day edges change by upserts, an update of
# the weights in place: one delta per level; a key changed (only by hand) moves the row.
SQLITE_TRIGGERS = {
    "license_kpi_block_ins": ("AFTER INSERT ON license_kpi_day", "", _sqlite_row("NEW", "")),
    "license_kpi_block_upd": (
        "AFTER UPDATE ON license_kpi_day",
        SAME_KEY,
        _sqlite_upsert("NEW", ", ".join(f"NEW.{w} - OLD.{w}" for w in WEIGHTS)),
    ),
    "license_kpi_block_move": (
        "AFTER UPDATE ON license_kpi_day",
        f"NOT ({SAME_KEY})",
        _sqlite_row("OLD", "-") + _sqlite_row("NEW", ""),
    ),
    "license_kpi_block_del": ("AFTER DELETE ON license_kpi_day", "", _sqlite_row("OLD", "-")),
}

# --- PostgreSQL: a statement trigger over the transition tables -------------------------------


def _pg_delta(sources: list[tuple[str, str]]) -> str:
    rows = " UNION ALL ".join(
        "SELECT s.partner_id, s.kpi, l.level, s.day >> l.level AS block, "
        + ", ".join(f"{sign} * s.{w} AS {w}" for w in WEIGHTS)
        + f" FROM {source} s CROSS JOIN ({LEVEL_ROWS}) l"
        for source, sign in sources
    )
    update = ", ".join(f"{w} = license_kpi_block.{w} + excluded.{w}" for w in WEIGHTS)
    # Keys in order: two transactions adding to one partner's blocks lock them in the same order.
    return (
        f"INSERT INTO license_kpi_block ({KEY}, {NAMES}) "
        f"SELECT {KEY}, {_sums()} FROM ({rows}) d "
        f"GROUP BY {KEY} HAVING {_nonzero()} ORDER BY {KEY} "
        f"ON CONFLICT ({KEY}) DO UPDATE SET {update};"
    )


PG_FUNCTION = f"""
CREATE FUNCTION license_kpi_blocks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM license_kpi_block;
    ELSIF TG_OP = 'INSERT' THEN
        {_pg_delta([("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        {_pg_delta([("old_rows", "-1")])}
    ELSE
        {_pg_delta([("new_rows", "1"), ("old_rows", "-1")])}
    END IF;
    RETURN NULL;
END $$
"""
PG_TRIGGERS = {
    "license_kpi_blocks_ins": "AFTER INSERT ON license_kpi_day REFERENCING NEW TABLE AS new_rows",
    "license_kpi_blocks_upd": (
        "AFTER UPDATE ON license_kpi_day REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    "license_kpi_blocks_del": "AFTER DELETE ON license_kpi_day REFERENCING OLD TABLE AS old_rows",
    # PostgreSQL fires no DELETE trigger for a TRUNCATE of the day edges.
    "license_kpi_blocks_tru": "AFTER TRUNCATE ON license_kpi_day",
}


def upgrade() -> None:
    op.create_table(
        "license_kpi_block",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kpi", sa.String(length=48), nullable=False),
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("block", sa.Integer(), autoincrement=False, nullable=False),
        *[sa.Column(w, sa.BigInteger(), nullable=False) for w in WEIGHTS],
        sa.PrimaryKeyConstraint("partner_id", "kpi", "level", "block"),
    )
    # Build the blocks of an existing database, then keep them with triggers from now on (the
    # migration runs in one transaction, so no write falls between the two).
    op.execute(_backfill())
    op.execute("ANALYZE license_kpi_block")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for name, event in PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} {event} "
                "FOR EACH STATEMENT EXECUTE FUNCTION license_kpi_blocks()"
            )
    else:
        for name, (event, when, body) in SQLITE_TRIGGERS.items():
            condition = f" WHEN {when}" if when else ""
            op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW{condition} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON license_kpi_day")
        op.execute("DROP FUNCTION IF EXISTS license_kpi_blocks()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("license_kpi_block")
