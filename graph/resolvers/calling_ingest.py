"""``ingestCallRecords``: small batches of call records through the API (full admins).

All or nothing per call: every record is validated exactly as the command line validates a CSV
row (``db.ingest``), and when any is invalid nothing is written and each is reported.
"""

from __future__ import annotations

from typing import Any

import strawberry

from db.ingest import as_text, ingest_records, thresholds_from
from db.scope import Scope
from graph.auth.permissions import Act, Obj, require
from graph.context import Context, Info
from graph.errors import forbidden
from graph.mutations import UserError, UserErrors, transaction
from graph.types.calling import (
    IngestCallRecordsInput,
    IngestCallRecordsPayload,
    RejectedCallRecord,
)

MAX_RECORDS_PER_CALL = 1000

_CAMEL = {
    "call_id": "callId",
    "customer_id": "customerId",
    "user_id": "userId",
    "started_at": "startedAt",
    "duration_seconds": "durationSeconds",
    "direction": "direction",
    "endpoint_type": "endpointType",
    "packet_loss_percent": "packetLossPercent",
    "jitter_ms": "jitterMs",
    "latency_ms": "latencyMs",
    "features": "features",
    "queue_id": "queueId",
    "wait_seconds": "waitSeconds",
    "answered": "answered",
    "abandoned": "abandoned",
}


def _record_values(record: Any) -> list[str]:
    """A GraphQL record as the CSV contract's strings: the same validation applies (a
    ``startedAt`` without offset, for one, prints without one and is refused)."""
    return [
        as_text(v)
        for v in (
            record.call_id,
            str(record.customer_id),
            record.user_id,
            record.started_at,
            record.duration_seconds,
            record.direction.value,
            record.endpoint_type.value,
            float(record.packet_loss_percent),
            float(record.jitter_ms),
            float(record.latency_ms),
            [f.value for f in record.features],
            record.queue_id,
            record.wait_seconds,
            record.answered,
            record.abandoned,
        )
    ]


def _require_full_admin(ctx: Context) -> Scope:
    # Loading data for every customer of the partner: `analytics manage` over all customers.
    scope = require(ctx, Obj.ANALYTICS, Act.MANAGE)
    if scope.assigned_admin_id is not None:
        raise forbidden("Only administrators who manage every customer may ingest call records.")
    return scope


@strawberry.type
class CallingMutations:
    @strawberry.mutation(
        description="Load up to 1,000 call records (full admins). All or nothing: when any "
        "record is invalid nothing is written and every invalid record is reported. Idempotent "
        "on callId within the partner: a record whose call id the partner has stored already "
        "is counted as a duplicate and changes nothing. The weekly aggregates of the weeks "
        "touched are recomputed."
    )
    async def ingest_call_records(
        self, info: Info, input: IngestCallRecordsInput
    ) -> IngestCallRecordsPayload:
        ctx = info.context
        scope = _require_full_admin(ctx)
        if len(input.records) > MAX_RECORDS_PER_CALL:
            return IngestCallRecordsPayload(
                inserted=0,
                duplicates=0,
                rejected=[],
                user_errors=[
                    UserError(
                        field=["records"],
                        message=f"At most {MAX_RECORDS_PER_CALL} records per call, got "
                        f"{len(input.records)}: use the command line for bulk loads.",
                        code="TOO_MANY_RECORDS",
                    )
                ],
            )
        values = [_record_values(r) for r in input.records]
        report = None
        try:
            async with transaction(ctx) as (session, audit):
                conn = await session.connection()
                report = await ingest_records(
                    conn,
                    values,
                    now=ctx.now,
                    partner_id=scope.partner_id,
                    thresholds=thresholds_from(ctx.settings),
                )
                if not report.written:
                    raise UserErrors(
                        *[
                            UserError(
                                field=["records", str(r.line)]
                                + ([_CAMEL[r.field]] if r.field in _CAMEL else []),
                                message=r.message,
                                code=r.code,
                            )
                            for r in report.rejections
                        ]
                    )
                audit.record(
                    "ingestCallRecords",
                    "call_record",
                    None,
                    after={
                        "records": len(values),
                        "inserted": report.inserted,
                        "duplicates": report.duplicates,
                        "customers": report.customers,
                    },
                )
        except UserErrors as e:
            assert report is not None
            return IngestCallRecordsPayload(
                inserted=0,
                duplicates=0,
                rejected=[
                    RejectedCallRecord(
                        index=r.line,
                        call_id=r.call_id,
                        field=_CAMEL.get(r.field or ""),
                        code=r.code,
                        message=r.message,
                    )
                    for r in report.rejections
                ],
                user_errors=e.errors,
            )
        return IngestCallRecordsPayload(
            inserted=report.inserted,
            duplicates=report.duplicates,
            rejected=[],
            user_errors=[],
        )
