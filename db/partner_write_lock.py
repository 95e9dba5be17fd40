"""The partner write lock (PostgreSQL, migration 0032): one partner's writers take turns on
the partner's maintained rollups; two partners' writers never wait on each other.

Triggers keep per-partner rollups in the writing transaction (``db.license_totals``,
``db.license_kpis``, ``db.calls_licensed``, ``db.directory_counts``). Each trigger statement
takes the rows it moves in key order, but one transaction moves them in several passes (a
refresh deletes a customer's spans, then inserts them again; a transaction has several
statements), so two writers of one partner, each changing only its own rows, could each hold a
rollup row the other's next pass wanted: a deadlock (9 of 480 transactions in session 8's
attack). So every statement on a table in ``LOCKED_TABLES`` first takes
``pg_advisory_xact_lock(PARTNER_WRITE_LOCK, partner_id)`` for each partner its rows name (old
and new, in partner order), in an AFTER statement trigger named to fire before every other one
on the table. A partner's rollup rows are then only locked by a transaction holding the
partner's lock: its writers queue on the lock, never on a rollup row, and hold it until they
commit. Two partners' writers take different keys.

The lock is no part of correctness (the rollups were exact without it): it only orders waits.
Taking a lock the transaction already holds costs no round trip (PostgreSQL's local lock table).
SQLite has one writer at a time: nothing to do there.
"""

from __future__ import annotations

__all__ = ["LOCKED_TABLES", "PARTNER_WRITE_LOCK"]

# Two-key advisory lock class (issue 16, migration 32); db.calls_partner's is 16_013, the ratio
# fold's and the webhook scheduler's are single-key locks (another key space). Copied in 0032.
PARTNER_WRITE_LOCK = 16_032
# The tables whose writes move per-partner rollups through triggers (copied in 0032). The
# rollups' own tables are written only from these (and the ratio histogram, deployment-wide,
# has its own try-lock: migration 0027).
LOCKED_TABLES = (
    "customer",
    "customer_status_span",
    "license_line",
    "license_snapshot",
    "subscription",
)
