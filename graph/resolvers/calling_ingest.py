"""``ingestCallRecords``: small batches of call records through the API (full admins).

All or nothing per call: every record is validated exactly as the command line validates a CSV
row (``db.ingest``), and when any is invalid nothing is written and each is reported.
"""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from db.ingest import as_text, ingest_records, thresholds_from
from graph.auth.permissions import Act, Obj
from graph.context import Info
from graph.mutations import Change, UserError, UserErrors, run_mutation, user_error
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


def _too_many(count: int) -> None:
    if count > MAX_RECORDS_PER_CALL:
        raise user_error(
            "TOO_MANY_RECORDS",
            f"At most {MAX_RECORDS_PER_CALL} records per call, got {count}: use the command "
            "line for bulk loads.",
            "records",
        )


async def _ingest(c: Change, values: list[Any], reports: list[Any]) -> IngestCallRecordsPayload:
    conn = await c.session.connection()
    report = await ingest_records(
        conn,
        values,
        now=c.ctx.now,
        partner_id=c.scope.partner_id,
        thresholds=thresholds_from(c.ctx.settings),
    )
    reports.append(report)
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
    c.record(
        "call_record",
        None,
        after={
            "records": len(values),
            "inserted": report.inserted,
            "duplicates": report.duplicates,
            "customers": report.customers,
        },
    )
    return IngestCallRecordsPayload(
        inserted=report.inserted, duplicates=report.duplicates, rejected=[], user_errors=[]
    )


def _rejected(reports: list[Any], errors: list[UserError]) -> IngestCallRecordsPayload:
    rejections = reports[0].rejections if reports else []
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
            for r in rejections
        ],
        user_errors=errors,
    )


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
        self,
        info: Info,
        input: Annotated[
            IngestCallRecordsInput,
            strawberry.argument(description="The call records to load, 1-1,000 per request."),
        ],
    ) -> IngestCallRecordsPayload:
        # Loading data for every customer of the partner: `analytics manage` over all of them.
        reports: list[Any] = []
        return await run_mutation(
            info.context,
            operation="ingestCallRecords",
            obj=Obj.ANALYTICS,
            act=Act.MANAGE,
            whole_partner=True,
            validate=lambda: _too_many(len(input.records)),
            work=lambda c: _ingest(c, [_record_values(r) for r in input.records], reports),
            refused=lambda errors: _rejected(reports, errors),
        )
