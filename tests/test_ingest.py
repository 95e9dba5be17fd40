"""Call-record ingestion: the command line (CSV, JSON lines, stdin, --strict) and the mutation."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from db.calls_models import CALL_WEEKLY_DETAIL
from db.ingest import CSV_COLUMNS, QualityThresholds, ensure_quality_thresholds
from db.ingest.store import sqlite_datetime
from db.models import AuditLog, CallRecord, CallWeeklyAggregate
from graph.cli import CliError, _Parser
from graph.cli_ingest import register
from graph.ids import to_global_id
from graph.mutations import REFUSAL
from tests.conftest import NOW, Api
from tests.helpers import Factory, assert_forbidden, data_of, post_graphql

AGGREGATES = (CallWeeklyAggregate.__table__, CALL_WEEKLY_DETAIL)  # type: ignore[attr-defined]
GOOD = {
    "user_id": "alice",
    "started_at": "2026-11-17T10:00:00Z",
    "duration_seconds": "120",
    "direction": "OUTBOUND",
    "endpoint_type": "DESKTOP_APP",
    "packet_loss_percent": "0.5",
    "jitter_ms": "10",
    "latency_ms": "50",
    "features": "HOLD;TRANSFER",
    "queue_id": "",
    "wait_seconds": "",
    "answered": "",
    "abandoned": "",
}


def record(call_id: str, customer: str, **changes: Any) -> dict[str, str]:
    values = {"call_id": call_id, "customer_id": customer, **GOOD}
    values.update({k: str(v) for k, v in changes.items()})
    return values


def write_csv(
    path: Path, records: list[dict[str, str]], header: tuple[str, ...] = CSV_COLUMNS
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in records:
            writer.writerow([r.get(c, "") for c in header])
    return path


def parse_cli(api: Api, *argv: str) -> argparse.Namespace:
    """The ``ingest calls`` arguments as ``partner-hub`` parses them once ``register`` is wired."""
    parser = _Parser(prog="partner-hub")
    parser.add_argument("--database-url", default=None)
    register(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    return parser.parse_args(
        ["--database-url", api.settings.database_url, "ingest", "calls", *argv]
    )


async def run_cli(api: Api, *argv: str) -> None:
    args = parse_cli(api, *argv, "--no-progress")
    await args.func(args)


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with engine.connect() as conn:
        for table in AGGREGATES:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(r) for r in rows]
    return out


async def count_records(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(CallRecord))).scalar_one())


@pytest.fixture(autouse=True)
def pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_HUB_NOW", NOW.isoformat())


@pytest.fixture
async def acme(api: Api) -> dict[str, Any]:
    f = Factory(api.engine)
    partner = await f.partner("Acme Partners", "acme.example")
    globex = await f.partner("Globex Reseller", "globex.example")
    await f.admin(partner, "full@acme.example", "FULL_ADMIN")
    await f.admin(partner, "partner@acme.example", "PARTNER_ADMIN")
    await f.admin(partner, "readonly@acme.example", "READ_ONLY_ADMIN")
    one = await f.customer(partner, "One Corp")  # external id EXT-00001
    two = await f.customer(partner, "Two Corp")  # EXT-00002
    other = await f.customer(globex, "Globex Corp")  # EXT-00003
    async with api.engine.begin() as conn:  # the same external id under both partners
        await conn.execute(
            text("UPDATE customer SET external_id = 'SHARED' WHERE id IN (:a, :b)"),
            {"a": two, "b": other},
        )
    return {"one": one, "two": two, "other": other, "partner": partner}


# --- command line ----------------------------------------------------------------------------


async def test_ingesting_a_file_twice_changes_nothing_the_second_time(
    api: Api, acme: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    records = [
        record(
            f"c{i}", "EXT-00001", user_id=f"u{i % 3}", started_at=f"2026-11-{10 + i % 9}T08:00:00Z"
        )
        for i in range(30)
    ]
    path = write_csv(tmp_path / "calls.csv", records)

    # when
    await run_cli(api, str(path), "--batch-size", "7")
    first_out = capsys.readouterr().out
    first = await snapshot(api.engine)
    await run_cli(api, str(path))
    second_out = capsys.readouterr().out

    # then
    assert "30 records read: 30 inserted, 0 duplicates" in first_out
    assert "30 records read: 0 inserted, 30 duplicates" in second_out
    assert await count_records(api.engine) == 30
    assert await snapshot(api.engine) == first
    assert sum(r[3] for r in first["call_weekly_aggregate"]) == 30  # calls
    assert first["call_weekly_detail"]  # and the detail rows are there too


async def test_bad_rows_are_reported_by_line_while_good_rows_land(
    api: Api, acme: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: lines 2, 8 and 12 are good; the header is line 1
    records = [
        record("good-1", "EXT-00001"),
        record("bad-date", "EXT-00001", started_at="2026-02-30T10:00:00Z"),
        record("bad-duration", "EXT-00001", duration_seconds=-5),
        record("bad-customer", "NOPE-1"),
        record("bad-endpoint", "EXT-00001", endpoint_type="FAX"),
        record(
            "bad-boolean",
            "EXT-00001",
            queue_id="q",
            wait_seconds=3,
            answered="yes",
            abandoned="false",
        ),
        record("good-2", to_global_id("Customer", acme["other"])),
        record("bad-feature", "EXT-00001", features="HOLD;TELEPORT"),
        record("bad-offset", "EXT-00001", started_at="2026-11-17T10:00:00"),
        record("bad-queue", "EXT-00001", wait_seconds=5),
        record("good-3", "EXT-00002", packet_loss_percent="5"),
        record("ambiguous", "SHARED"),
        record("future", "EXT-00001", started_at="2026-11-26T00:00:01Z"),
        record("bad-loss", "EXT-00001", packet_loss_percent="101"),
    ]
    records[10]["customer_id"] = to_global_id("Customer", acme["two"])
    path = write_csv(tmp_path / "calls.csv", records)

    # when
    await run_cli(api, str(path))
    out, err = capsys.readouterr()

    # then
    expected = [
        "line 3: started_at:",
        "line 4: duration_seconds:",
        "line 5: customer_id: no customer 'NOPE-1'",
        "line 6: endpoint_type: unknown endpoint type 'FAX'",
        "line 7: answered: must be true or false",
        "line 9: features: unknown feature 'TELEPORT'",
        "line 10: started_at: needs a UTC offset",
        "line 11: wait_seconds: queue columns must be empty",
        "line 13: customer_id: external id 'SHARED' is used by 2 partners",
        "line 14: started_at: is after now",
        "line 15: packet_loss_percent: must be 0-100",
    ]
    reported = [line for line in err.splitlines() if line.startswith("rejected ")]
    assert len(reported) == len(expected), err
    for line, prefix in zip(reported, expected, strict=True):
        assert line.removeprefix("rejected ").startswith(prefix), (line, prefix)
    assert "14 records read: 3 inserted, 0 duplicates (call id already stored), 11 rejected" in out
    async with api.engine.connect() as conn:
        stored = (await conn.execute(select(CallRecord.call_id).order_by(CallRecord.call_id))).all()
    assert [r[0] for r in stored] == ["good-1", "good-2", "good-3"]


async def test_strict_mode_writes_nothing_when_a_row_is_bad(
    api: Api, acme: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: many good rows over several batches, one bad row at the end
    records = [record(f"c{i}", "EXT-00001") for i in range(40)]
    records.append(record("bad", "EXT-00001", direction="SIDEWAYS"))
    path = write_csv(tmp_path / "calls.csv", records)

    # when
    with pytest.raises(CliError) as raised:
        await run_cli(api, str(path), "--strict", "--batch-size", "10")

    # then
    assert "1 of 41 records are invalid; nothing was written" in str(raised.value)
    assert "line 42: direction: unknown direction 'SIDEWAYS'" in capsys.readouterr().err
    assert await count_records(api.engine) == 0
    assert all(rows == [] for rows in (await snapshot(api.engine)).values())


async def test_strict_mode_loads_a_clean_file(
    api: Api, acme: dict[str, Any], tmp_path: Path
) -> None:
    # given
    path = write_csv(tmp_path / "calls.csv", [record(f"c{i}", "EXT-00001") for i in range(5)])

    # when
    await run_cli(api, str(path), "--strict")

    # then
    assert await count_records(api.engine) == 5


async def test_a_value_exactly_on_a_threshold_is_not_poor_and_just_above_is(
    api: Api, acme: dict[str, Any], tmp_path: Path
) -> None:
    # given: poor means strictly greater than 5 % loss, 150 ms jitter, 400 ms latency
    on = [
        record("on-loss", "EXT-00001", packet_loss_percent="5"),
        record("on-jitter", "EXT-00001", jitter_ms="150.0"),
        record("on-latency", "EXT-00001", latency_ms="400"),
        record("on-all", "EXT-00001", packet_loss_percent="5.0", jitter_ms="150", latency_ms="400"),
    ]
    above = [
        record("above-loss", "EXT-00002", packet_loss_percent="5.001"),
        record("above-jitter", "EXT-00002", jitter_ms="150.01"),
        record("above-latency", "EXT-00002", latency_ms="400.5"),
    ]
    for r in above:
        r["customer_id"] = to_global_id("Customer", acme["two"])
    path = write_csv(tmp_path / "calls.csv", on + above)

    # when
    await run_cli(api, str(path))
    body = await post_graphql(
        api,
        "{ callingAnalytics { customersQuality { nodes { customer { name } totalCalls poorCalls } }"
        " qualityByEndpoint { endpointType totalCalls poorCalls } } }",
        as_="full@acme.example",
    )

    # then
    analytics = data_of(body)["callingAnalytics"]
    assert analytics["customersQuality"]["nodes"] == [
        {"customer": {"name": "Two Corp"}, "totalCalls": 3, "poorCalls": 3},
        {"customer": {"name": "One Corp"}, "totalCalls": 4, "poorCalls": 0},
    ]
    desktop = [e for e in analytics["qualityByEndpoint"] if e["endpointType"] == "DESKTOP_APP"]
    assert desktop == [{"endpointType": "DESKTOP_APP", "totalCalls": 7, "poorCalls": 3}]


async def test_json_lines_from_stdin_load_like_csv(
    api: Api,
    acme: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: typed JSON values, a list of features, queue keys left out, a blank line, a bad line
    lines = [
        json.dumps(
            {
                "call_id": "j1",
                "customer_id": "EXT-00001",
                "user_id": "bob",
                "started_at": "2026-11-18T09:00:00+01:00",
                "duration_seconds": 90,
                "direction": "inbound",
                "endpoint_type": "MOBILE_APP",
                "packet_loss_percent": 0,
                "jitter_ms": 1.5,
                "latency_ms": 30,
                "features": ["VOICEMAIL", "HOLD"],
            }
        ),
        "",
        json.dumps(
            {
                **record("j2", "EXT-00001"),
                "queue_id": "sales",
                "wait_seconds": 42,
                "answered": False,
                "abandoned": True,
            }
        ),
        "{not json",
        json.dumps({**record("j3", "EXT-00001"), "colour": "blue"}),
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))

    # when
    await run_cli(api, "-")
    out, err = capsys.readouterr()

    # then
    assert "4 records read: 2 inserted" in out, out  # the blank line is no record
    assert "rejected line 4: not JSON" in err
    assert "rejected line 5: unknown field 'colour'" in err
    async with api.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    CallRecord.call_id,
                    CallRecord.direction,
                    CallRecord.features,
                    CallRecord.started_at,
                    CallRecord.abandoned,
                ).order_by(CallRecord.call_id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("j1", "INBOUND", "HOLD;VOICEMAIL", datetime(2026, 11, 18, 8, tzinfo=UTC), None),
        ("j2", "OUTBOUND", "TRANSFER;HOLD", datetime(2026, 11, 17, 10, tzinfo=UTC), True),
    ]


async def test_an_unknown_customer_is_rejected_and_a_global_id_reaches_any_partner(
    api: Api, acme: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    path = write_csv(
        tmp_path / "calls.csv",
        [
            record("a", "EXT-99999"),
            record("b", to_global_id("Customer", 999_999)),
            record("c", to_global_id("Customer", acme["other"])),
            record("d", to_global_id("Tag", acme["one"])),
        ],
    )

    # when
    await run_cli(api, str(path))
    err = capsys.readouterr().err

    # then
    assert "line 2: customer_id: no customer 'EXT-99999'" in err
    assert "line 3: customer_id: no customer" in err
    assert "line 5: customer_id: no customer" in err
    async with api.engine.connect() as conn:
        stored = (await conn.execute(select(CallRecord.call_id, CallRecord.partner_id))).all()
    other_partner = acme["partner"] + 1
    assert [tuple(r) for r in stored] == [("c", other_partner)]


async def test_a_wrong_header_or_an_empty_file_is_refused_before_anything_is_written(
    api: Api, acme: dict[str, Any], tmp_path: Path
) -> None:
    # given
    header = (*(c for c in CSV_COLUMNS if c != "jitter_ms"), "jitter")
    wrong = write_csv(tmp_path / "wrong.csv", [record("a", "EXT-00001")], header)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n", encoding="utf-8")

    # when / then
    with pytest.raises(CliError, match=r"missing: jitter_ms\) \(unknown: jitter\)"):
        await run_cli(api, str(wrong))
    with pytest.raises(CliError, match="empty"):
        await run_cli(api, str(empty))
    with pytest.raises(CliError, match="no such file"):
        await run_cli(api, str(tmp_path / "missing.csv"))
    with pytest.raises(CliError, match="--batch-size"):
        await run_cli(api, str(empty), "--batch-size", "0")
    assert await count_records(api.engine) == 0


async def test_columns_in_another_order_and_a_byte_order_mark_are_accepted(
    api: Api, acme: dict[str, Any], tmp_path: Path
) -> None:
    # given
    header = tuple(reversed(CSV_COLUMNS))
    path = write_csv(tmp_path / "calls.csv", [record("r1", "EXT-00001")], header)
    path.write_text("\ufeff" + path.read_text(encoding="utf-8"), encoding="utf-8")

    # when
    await run_cli(api, str(path))

    # then
    assert await count_records(api.engine) == 1


async def test_loading_again_repairs_aggregates_a_crash_left_behind(
    api: Api, acme: dict[str, Any], tmp_path: Path
) -> None:
    # given: a load whose aggregates were lost (as if interrupted before its final step)
    path = write_csv(tmp_path / "calls.csv", [record(f"c{i}", "EXT-00001") for i in range(12)])
    await run_cli(api, str(path))
    complete = await snapshot(api.engine)
    async with api.engine.begin() as conn:
        for table in AGGREGATES:
            await conn.execute(delete(table))

    # when
    await run_cli(api, str(path))

    # then
    assert await snapshot(api.engine) == complete


async def test_changed_thresholds_rebuild_the_stored_poor_counts(
    api: Api, acme: dict[str, Any], tmp_path: Path
) -> None:
    # given
    path = write_csv(
        tmp_path / "calls.csv",
        [record("a", "EXT-00001", latency_ms="300"), record("b", "EXT-00001", latency_ms="100")],
    )
    await run_cli(api, str(path))  # records the default thresholds

    # when
    async with api.engine.begin() as conn:
        rebuilt = await ensure_quality_thresholds(conn, QualityThresholds(latency_ms=250))
        again = await ensure_quality_thresholds(conn, QualityThresholds(latency_ms=250))

    # then
    assert (rebuilt, again) == (True, False)
    async with api.engine.connect() as conn:
        poor = (await conn.execute(select(func.sum(CallWeeklyAggregate.poor_calls)))).scalar()
    assert poor == 1


def test_sqlite_rows_are_written_in_the_text_form_sqlalchemy_reads() -> None:
    # given
    process = sqlite.DATETIME().bind_processor(sqlite.dialect())
    assert process is not None
    moments = [
        datetime(2026, 11, 22, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
        datetime(2026, 6, 1, 23, 59, 59, 999999, tzinfo=UTC),
    ]

    # when / then
    for moment in moments:
        assert sqlite_datetime(moment) == process(moment.replace(tzinfo=None))


# --- mutation --------------------------------------------------------------------------------

INGEST = """
mutation Ingest($input: IngestCallRecordsInput!) {
  ingestCallRecords(input: $input) {
    inserted duplicates
    rejected { index callId field code message }
    userErrors { field code message }
  }
}
"""


def gql_record(call_id: str, customer: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "callId": call_id,
        "customerId": customer,
        "userId": "alice",
        "startedAt": "2026-11-17T10:00:00+00:00",
        "durationSeconds": 60,
        "direction": "OUTBOUND",
        "endpointType": "DESK_PHONE",
        "packetLossPercent": 0.1,
        "jitterMs": 5,
        "latencyMs": 40,
        "features": ["HOLD"],
    }
    values.update(changes)
    return values


async def test_a_full_admin_ingests_and_duplicates_are_counted(
    api: Api, acme: dict[str, Any]
) -> None:
    # given
    records = [
        gql_record("m1", "EXT-00001"),
        gql_record("m2", to_global_id("Customer", acme["two"]), features=[]),
        gql_record(
            "m3",
            "EXT-00001",
            queueId="support",
            waitSeconds=30,
            answered=True,
            abandoned=False,
            features=["CALL_QUEUE"],
        ),
        gql_record("m1", "EXT-00001"),  # repeated in the same call
    ]

    # when
    first = await post_graphql(
        api, INGEST, {"input": {"records": records}}, as_="full@acme.example"
    )
    second = await post_graphql(
        api, INGEST, {"input": {"records": records}}, as_="full@acme.example"
    )
    usage = await post_graphql(
        api,
        "{ callingAnalytics { usage { calls } callQueue { kpis { queueCalls } } } }",
        as_="full@acme.example",
    )

    # then
    result = data_of(first)["ingestCallRecords"]
    assert (result["inserted"], result["duplicates"], result["userErrors"]) == (3, 1, [])
    again = data_of(second)["ingestCallRecords"]
    assert (again["inserted"], again["duplicates"]) == (0, 4)
    assert data_of(usage)["callingAnalytics"] == {
        "usage": {"calls": 3},
        "callQueue": {"kpis": {"queueCalls": 1}},
    }
    async with api.engine.connect() as conn:
        audits = (
            await conn.execute(select(AuditLog.operation, AuditLog.after).order_by(AuditLog.id))
        ).all()
    assert [a.operation for a in audits] == ["ingestCallRecords", "ingestCallRecords"]
    assert json.loads(audits[0].after)["inserted"] == 3


@pytest.mark.parametrize("email", ["partner@acme.example", "readonly@acme.example"])
async def test_only_full_admins_may_ingest(api: Api, acme: dict[str, Any], email: str) -> None:
    # when
    body = await post_graphql(
        api, INGEST, {"input": {"records": [gql_record("x", "EXT-00001")]}}, as_=email
    )

    # then
    assert_forbidden(body)
    assert await count_records(api.engine) == 0


async def test_more_than_a_thousand_records_is_a_user_error(api: Api, acme: dict[str, Any]) -> None:
    # given
    records = [gql_record(f"r{i}", "EXT-00001") for i in range(1001)]

    # when
    body = await post_graphql(api, INGEST, {"input": {"records": records}}, as_="full@acme.example")

    # then
    result = data_of(body)["ingestCallRecords"]
    assert [e["code"] for e in result["userErrors"]] == ["TOO_MANY_RECORDS"]
    assert result["inserted"] == 0
    assert await count_records(api.engine) == 0


async def test_one_invalid_record_writes_nothing_and_each_is_reported(
    api: Api, acme: dict[str, Any]
) -> None:
    # given: the other partner's customer is unknown to this one
    records = [
        gql_record("ok", "EXT-00001"),
        gql_record("neg", "EXT-00001", durationSeconds=-1),
        gql_record("foreign", to_global_id("Customer", acme["other"])),
        gql_record("naive", "EXT-00001", startedAt="2026-11-17T10:00:00"),
        gql_record("half-queue", "EXT-00001", queueId="q", waitSeconds=5),
    ]

    # when
    body = await post_graphql(api, INGEST, {"input": {"records": records}}, as_="full@acme.example")

    # then
    result = data_of(body)["ingestCallRecords"]
    assert (result["inserted"], result["duplicates"]) == (0, 0)
    assert [(r["index"], r["callId"], r["field"], r["code"]) for r in result["rejected"]] == [
        (1, "neg", "durationSeconds", "INVALID_DURATION_SECONDS"),
        (2, "foreign", "customerId", "UNKNOWN_CUSTOMER"),
        (3, "naive", "startedAt", "INVALID_STARTED_AT"),
        (4, "half-queue", "answered", "MISSING_QUEUE_FIELD"),
    ]
    assert [e["field"] for e in result["userErrors"]] == [
        ["records", "1", "durationSeconds"],
        ["records", "2", "customerId"],
        ["records", "3", "startedAt"],
        ["records", "4", "answered"],
    ]
    assert await count_records(api.engine) == 0
    async with api.engine.connect() as conn:
        changes = select(func.count()).select_from(AuditLog).where(AuditLog.object_type != REFUSAL)  # type: ignore[arg-type]
        assert (await conn.execute(changes)).scalar() == 0


def test_the_contract_header_is_the_documented_one() -> None:
    assert ",".join(CSV_COLUMNS) == (
        "call_id,customer_id,user_id,started_at,duration_seconds,direction,endpoint_type,"
        "packet_loss_percent,jitter_ms,latency_ms,features,queue_id,wait_seconds,answered,"
        "abandoned"
    )


def test_week_starts_are_sundays_in_utc() -> None:
    from db.ingest import week_start_of

    tokyo = datetime(2026, 11, 22, 8, 0, tzinfo=UTC) + timedelta(0)
    assert week_start_of(tokyo) == datetime(2026, 11, 22, tzinfo=UTC)
    assert week_start_of(datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)) == datetime(
        2026, 11, 15, tzinfo=UTC
    )


async def test_bulk_batches_count_new_and_stored_records_exactly(
    api: Api, acme: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: batches big enough for the bulk paths (COPY on PostgreSQL), a repeated call id
    # inside the first file, and a second file that is half old, half new
    first = [record(f"b{i:04d}", "EXT-00001", user_id=f"u{i % 40}") for i in range(600)]
    first.append(record("b0007", "EXT-00001"))
    second = [record(f"b{i:04d}", "EXT-00001", user_id=f"u{i % 40}") for i in range(300, 900)]
    one = write_csv(tmp_path / "one.csv", first)
    two = write_csv(tmp_path / "two.csv", second)

    # when
    await run_cli(api, str(one), "--batch-size", "250")
    first_out = capsys.readouterr().out
    await run_cli(api, str(two), "--batch-size", "250")
    second_out = capsys.readouterr().out

    # then
    assert "601 records read: 600 inserted, 1 duplicates" in first_out
    assert "600 records read: 300 inserted, 300 duplicates" in second_out
    assert await count_records(api.engine) == 900
    async with api.engine.connect() as conn:
        calls, users = (
            await conn.execute(
                select(
                    func.sum(CallWeeklyAggregate.calls), func.sum(CallWeeklyAggregate.active_users)
                )
            )
        ).one()
    assert (calls, users) == (900, 40)


async def test_a_mutation_batch_big_enough_for_the_bulk_path_is_still_idempotent(
    api: Api, acme: dict[str, Any]
) -> None:
    # given: 250 records take the driver-level path (COPY on PostgreSQL) inside the mutation
    records = [gql_record(f"big-{i:03d}", "EXT-00001", userId=f"u{i % 7}") for i in range(250)]

    # when
    first = await post_graphql(
        api, INGEST, {"input": {"records": records}}, as_="full@acme.example"
    )
    second = await post_graphql(
        api, INGEST, {"input": {"records": records}}, as_="full@acme.example"
    )

    # then
    assert data_of(first)["ingestCallRecords"]["inserted"] == 250
    again = data_of(second)["ingestCallRecords"]
    assert (again["inserted"], again["duplicates"], again["userErrors"]) == (0, 250, [])
    assert await count_records(api.engine) == 250
