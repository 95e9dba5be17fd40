"""Call-record ingestion (issue 7; DESIGN.md section 3, "Calling").

``ingest_stream`` loads a CSV (with the contract header) or JSON-lines stream for the command
line (``db.ingest.reading``); ``ingest_records`` loads a small batch all-or-nothing for the
mutation. Both validate every record (``db.ingest.records``), resolve its customer
(``db.ingest.customers``), insert it unless its call id is stored already (``db.ingest.store``)
and recompute the aggregates of the weeks they touched (``db.ingest.aggregates``).
"""

from __future__ import annotations

from db.ingest.aggregates import (
    DEFAULT_THRESHOLDS,
    QualityThresholds,
    ensure_quality_thresholds,
    refresh_aggregates,
    thresholds_from,
)
from db.ingest.customers import CustomerResolver, global_customer_pk
from db.ingest.reading import as_text, read_records, values_of
from db.ingest.records import (
    CSV_COLUMNS,
    IngestError,
    RowError,
    parse_values,
    week_start_of,
)
from db.ingest.run import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    IngestReport,
    Rejection,
    ingest_records,
    ingest_stream,
)
from db.ingest.store import RECORD_COLUMNS, insert_records

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_THRESHOLDS",
    "MAX_BATCH_SIZE",
    "RECORD_COLUMNS",
    "CustomerResolver",
    "IngestError",
    "IngestReport",
    "QualityThresholds",
    "Rejection",
    "RowError",
    "as_text",
    "ensure_quality_thresholds",
    "global_customer_pk",
    "ingest_records",
    "ingest_stream",
    "insert_records",
    "parse_values",
    "read_records",
    "refresh_aggregates",
    "thresholds_from",
    "values_of",
    "week_start_of",
]
