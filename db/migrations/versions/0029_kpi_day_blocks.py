"""license KPI day edges rolled up per block of 32 and of 1,024 days, and the spans' edges per
instant, kept by triggers, so that a KPI's figures at ``now`` read a few dozen rows whatever the
history's length and the partner's size (issue 16)

Revision ID: 0029_kpi_day_blocks
Revises: 0027_partner_ratio_histogram

See ``db.license_kpis`` for how they are read. ``license_kpi_block`` holds, per partner, KPI,
level and block, the sums of the ``license_kpi_day`` rows whose ``day >> level`` is the block
(levels 5 and 10). ``license_kpi_edge`` holds, per partner, KPI and instant, the weights of the
``license_kpi_span`` rows starting then minus those ending then: today's part of a figure reads
a row per instant with an edge instead of a row per span (on the bench every date is a midnight:
~2,300 spans start or end at today's, one instant). Their triggers add each change as a delta,
in the same transaction, as migration 0021 keeps ``license_ratio_bucket`` from
``license_ratio_count``.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_kpi_day_blocks"
down_revision: str | None = "0027_partner_ratio_histogram"
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


EDGE_KEY = "partner_id, kpi, at"  # license_kpi_edge: the spans' edges per instant


def _span_edges(source: str, sign: str = "1") -> str:
    """(partner_id, kpi, at, weights...) of the spans in ``source``: + at their start, - at
    their end (``db.license_kpis``: a span counts while valid_from <= now < valid_to)."""
    plus = ", ".join(f"({sign}) * {w} AS {w}" for w in WEIGHTS)
    minus = ", ".join(f"(0 - ({sign})) * {w}" for w in WEIGHTS)
    return (
        f"SELECT partner_id, kpi, valid_from AS at, {plus} FROM {source} UNION ALL "
        f"SELECT partner_id, kpi, valid_to, {minus} FROM {source}"
    )


def _backfill() -> list[str]:
    return [
        f"INSERT INTO license_kpi_block ({KEY}, {NAMES}) "
        f"SELECT d.partner_id, d.kpi, l.level, d.day >> l.level, {_sums()} "
        f"FROM license_kpi_day d CROSS JOIN ({LEVEL_ROWS}) l "
        f"GROUP BY d.partner_id, d.kpi, l.level, d.day >> l.level HAVING {_nonzero()}",
        f"INSERT INTO license_kpi_edge ({EDGE_KEY}, {NAMES}) "
        f"SELECT partner_id, kpi, at, {_sums()} FROM ({_span_edges('license_kpi_span')}) e "
        f"GROUP BY {EDGE_KEY} HAVING {_nonzero()}",
    ]


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


def _sqlite_span(row: str, sign: int) -> str:
    update = ", ".join(f"{w} = {w} + excluded.{w}" for w in WEIGHTS)
    return "".join(
        f"INSERT INTO license_kpi_edge ({EDGE_KEY}, {NAMES}) "
        f"VALUES ({row}.partner_id, {row}.kpi, {row}.{column}, "
        + ", ".join(f"{direction} * {row}.{w}" for w in WEIGHTS)
        + f") ON CONFLICT ({EDGE_KEY}) DO UPDATE SET {update}; "
        for column, direction in (("valid_from", sign), ("valid_to", -sign))
    )


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
    "license_kpi_edge_ins": ("AFTER INSERT ON license_kpi_span", "", _sqlite_span("NEW", 1)),
    "license_kpi_edge_upd": (
        "AFTER UPDATE ON license_kpi_span",
        "",
        _sqlite_span("OLD", -1) + _sqlite_span("NEW", 1),
    ),
    "license_kpi_edge_del": ("AFTER DELETE ON license_kpi_span", "", _sqlite_span("OLD", -1)),
}

# --- PostgreSQL: statement triggers over the transition tables -------------------------------


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


def _pg_edge_delta(sources: list[tuple[str, str]]) -> str:
    rows = " UNION ALL ".join(_span_edges(source, sign) for source, sign in sources)
    update = ", ".join(f"{w} = license_kpi_edge.{w} + excluded.{w}" for w in WEIGHTS)
    return (
        f"INSERT INTO license_kpi_edge ({EDGE_KEY}, {NAMES}) "
        f"SELECT {EDGE_KEY}, {_sums()} FROM ({rows}) e "
        f"GROUP BY {EDGE_KEY} HAVING {_nonzero()} ORDER BY {EDGE_KEY} "
        f"ON CONFLICT ({EDGE_KEY}) DO UPDATE SET {update};"
    )


def _pg_function(name: str, table: str, delta: Callable[[list[tuple[str, str]]], str]) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM {table};
    ELSIF TG_OP = 'INSERT' THEN
        {delta([("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        {delta([("old_rows", "-1")])}
    ELSE
        {delta([("new_rows", "1"), ("old_rows", "-1")])}
    END IF;
    RETURN NULL;
END $$
"""


# function -> (the table it keeps, the table whose changes it follows, its delta)
PG_FUNCTIONS = {
    "license_kpi_blocks": ("license_kpi_block", "license_kpi_day", _pg_delta),
    "license_kpi_edges": ("license_kpi_edge", "license_kpi_span", _pg_edge_delta),
}


def _pg_triggers() -> dict[str, tuple[str, str]]:
    """name -> (table, 'AFTER ... FOR EACH STATEMENT EXECUTE ...')."""
    out = {}
    for function, (_kept, table, _delta) in PG_FUNCTIONS.items():
        for event, referencing in (
            ("INSERT", " REFERENCING NEW TABLE AS new_rows"),
            ("UPDATE", " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", " REFERENCING OLD TABLE AS old_rows"),
            # PostgreSQL fires no DELETE trigger for a TRUNCATE.
            ("TRUNCATE", ""),
        ):
            out[f"{function}_{event.lower()[:3]}"] = (
                table,
                f"AFTER {event} ON {table}{referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
            )
    return out


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
    op.create_table(
        "license_kpi_edge",
        sa.Column("partner_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kpi", sa.String(length=48), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(w, sa.BigInteger(), nullable=False) for w in WEIGHTS],
        sa.PrimaryKeyConstraint("partner_id", "kpi", "at"),
    )
    # Build them for an existing database, then keep them with triggers from now on (the
    # migration runs in one transaction, so no write falls between the two).
    for statement in _backfill():
        op.execute(statement)
    op.execute("ANALYZE license_kpi_block")
    op.execute("ANALYZE license_kpi_edge")
    if op.get_bind().dialect.name == "postgresql":
        for name, (kept, _table, delta) in PG_FUNCTIONS.items():
            op.execute(_pg_function(name, kept, delta))
        for name, (_table, body) in _pg_triggers().items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    else:
        for name, (event, when, body) in SQLITE_TRIGGERS.items():
            condition = f" WHEN {when}" if when else ""
            op.execute(f"CREATE TRIGGER {name} {event} FOR EACH ROW{condition} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (table, _) in _pg_triggers().items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("license_kpi_edge")
    op.drop_table("license_kpi_block")
