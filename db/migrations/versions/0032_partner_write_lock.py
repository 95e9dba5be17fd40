"""one partner's writers take turns on its rollups (a per-partner advisory lock taken before any
rollup row); two partners' writers still never wait on each other (PostgreSQL, issue 16)

The problem. Triggers (0012, 0020, 0021, 0022, 0027, 0029) keep per-partner rollups in the
writing transaction: licence totals, KPI spans, day edges, 32- and 1,024-day blocks, per-instant
edges, calling licence spans and days, weekly totals, customer counts and status span days.
Each trigger statement upserts its rows in key order, but a transaction reaches them in several
passes: a refresh deletes a customer's spans and inserts them again (the day, block and edge
triggers run once per pass), a subscription's change refreshes its totals and then its calling
spans, and a transaction has several statements. Two writers of one partner, each changing only
its own licence lines, could each hold a rollup row the other's next pass wanted: session 8's
attack saw 9 deadlocks in 480 transactions. tests/test_partner_write_lock.py (six writers of
one partner's lines and subscriptions, one to three statements a transaction) had 47 to 51
deadlocks in 120 transactions before this migration, and 39 to 41 unique violations of
``license_kpi_span`` or ``calling_licence_span``: two refreshes of one customer's spans, where
the second's DELETE waited for the first, which then committed rows the second's snapshot did
not see, and the second's INSERT met them.

API mutations had not hit it in the attack test, which changes quantities: each mutation locks
its customer (``db.queries.writes.lock_customers``, so one customer's spans are refreshed by
one at a time) and changes one line or subscription, and a quantity change deletes and
re-inserts spans with the same dates (the same day rows in both passes). A change that moves
dates (a renewal, an auto-renew switch) runs its passes over different days: six API writers
of one partner's customers renewing and switching auto-renew deadlocked in 5 of 5 runs of
``test_api_writers_of_one_partner_moving_dates_never_fail`` before this migration.

The fix. Every INSERT, UPDATE and DELETE statement on a table that feeds a partner's rollups
(``TABLES``; a customer's UPDATE only when it moves the customer to another partner, the one
update its count sees) first takes ``pg_advisory_xact_lock(LOCK_CLASS, partner_id)`` for every
partner its old and new rows name, in partner order: an AFTER statement trigger whose name,
``a0_partner_write_lock_*``, sorts before every other trigger's on these tables (PostgreSQL
fires the triggers of one event in name order; tests/test_partner_write_lock.py asserts it is
first). Row triggers fire before statement triggers, so the foreign keys' cascades (a deleted
subscription's lines) run their own statement's lock first too (a statement deleting several
partners' subscriptions or customers thus takes their locks in its cascades' order). The
rollup tables themselves are written only by these triggers (and the operator: see below).

Why it cannot deadlock, for writers that each own the rows they write (two transactions
writing the same licence line in opposite orders deadlock on the line itself, whatever this
does). A transaction may wait on (a) a row it writes directly: nobody else writes it;
(b) a partner's lock; (c) a rollup row of a partner: but such a row is locked only by a
trigger statement running after its transaction took that partner's lock, held until it ends;
a waiter on it holds the same lock, which only one transaction holds at a time, so nobody ever
waits on a partner's rollup row; (d) the deployment-wide ratio histogram's base: moved only by
the holder of its try-lock, which nobody waits for (0027), the others appending deltas that
wait on nobody; (e) a version row at commit (``db.versioning``): the last statement, whose
holder is committing and waits on nothing more. So the waits-for graph has edges only into
partner locks, and a transaction waiting on partner P holds only its own rows and the locks of
the partners it wrote before. One statement takes its partners in order; a cycle needs
transactions writing two partners in two statements in opposite orders (before this, those
deadlocked too whenever their rollup rows met: the attack test writes both partners in one
statement for that reason). One partner's writers queue on its lock from the first statement
that reaches its rollups to their commit: serialised on the rollups, as their row locks already
serialised them on every shared row; the statements before (reads, own rows) run at once.

The API's order is the same: customer rows (``FOR UPDATE``, in id order), its own lines and
subscriptions, the partner's lock (their statements' triggers), the rollups, the version row
at commit. A customer row an API mutation locks is that mutation's row: an operator's
transaction that holds the partner's lock and then updates the same customer waits on it (a
shared row, point (a)), as it would have waited on a shared rollup row before.

Two partners: different keys (the class names the lock, the partner the instance), so they
never wait on each other's lock, and their rollup rows are disjoint (keyed by partner, customer
or subscription, which belong to one partner). ``db.calls_partner`` uses class 16_013 in the
same two-key space; the ratio fold's and the webhook scheduler's locks are single-key (another
space).

Cost: one more statement trigger per write statement on these tables, reading its transition
table's partners (distinct, sorted) and taking a lock; taking one the transaction already holds
is a lookup in the backend's local lock table. EXPLAIN ANALYZE's trigger times on a 200-
subscription partner: 0.057 ms of a 14 ms single-line UPDATE in its own transaction (0.4 %),
0.044 ms with the lock already held (300 UPDATEs in one transaction, 30 ms each: 0.1 %); a
customer's sign-in UPDATE (no lock taken) 0.044 ms of 0.12 ms. Wall clock on the shared
two-core machine, three alternated runs each, median per UPDATE: 2,000 in their own
transactions 13.8 ms at 0032, 19.1 ms at 0031 (runs 27-46 s either way); 500 in one
transaction 51.9 and 53.3 ms: the runs varied more than the migrations. One
partner's writers now hold the lock from their first statement that reaches the rollups to
their commit; they were serialised on the partner-wide rows (its ``ANY/...`` day edges, blocks,
counts) already.

The values were right without it (a deadlocked or failed transaction was rolled back whole);
with it those transactions commit. An operator writing a rollup table directly does not take
it. SQLite has one writer at a time: nothing to do.

The SQL is copied here, not imported: the migrations are frozen.

Revision ID: 0032_partner_write_lock
Revises: 0031_rollup_guards
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0032_partner_write_lock"
down_revision: str | None = "0031_rollup_guards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCK_CLASS = 16_032  # db.partner_write_lock.PARTNER_WRITE_LOCK
TABLES = ("customer", "customer_status_span", "license_line", "license_snapshot", "subscription")
TRIGGER = "a0_partner_write_lock"  # sorts before every other trigger of these tables
EVENTS = {
    "ins": ("INSERT", "NEW TABLE AS new_rows"),
    "upd": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "del": ("DELETE", "OLD TABLE AS old_rows"),
}

FUNCTION = f"""
CREATE FUNCTION partner_write_lock() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        FOR p IN SELECT DISTINCT partner_id FROM new_rows ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock({LOCK_CLASS}, p);
        END LOOP;
    ELSIF TG_OP = 'DELETE' THEN
        FOR p IN SELECT DISTINCT partner_id FROM old_rows ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock({LOCK_CLASS}, p);
        END LOOP;
    ELSIF TG_TABLE_NAME = 'customer' THEN
        -- A customer's count moves only when it changes partner (0020): its other updates
        -- (names, sign-ins) touch no rollup and take no lock.
        FOR p IN SELECT n.partner_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.partner_id <> o.partner_id
                 UNION SELECT o.partner_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                 WHERE n.partner_id <> o.partner_id
                 ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock({LOCK_CLASS}, p);
        END LOOP;
    ELSE
        FOR p IN SELECT partner_id FROM new_rows UNION SELECT partner_id FROM old_rows
                 ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock({LOCK_CLASS}, p);
        END LOOP;
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for table in TABLES:
        for suffix, (event, referencing) in EVENTS.items():
            op.execute(
                f"CREATE TRIGGER {TRIGGER}_{suffix} AFTER {event} ON {table} "
                f"REFERENCING {referencing} "
                "FOR EACH STATEMENT EXECUTE FUNCTION partner_write_lock()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        for suffix in EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}_{suffix} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS partner_write_lock()")
