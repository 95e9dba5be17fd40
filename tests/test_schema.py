"""Schema hygiene: the committed ``schema.graphql`` is exactly what the code exports.

When a test here fails after a schema change, regenerate the file with ``make schema``
(``partner-hub export-schema > schema.graphql``) and review the diff like any API change.
"""

from __future__ import annotations

import asyncio
import difflib
import sys
from pathlib import Path

from graph.schema import export_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"
PARTNER_HUB = Path(sys.executable).with_name("partner-hub")


def first_difference(expected: str, actual: str) -> str:
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), "schema.graphql", "export", lineterm="", n=1
    )
    return "\n".join(list(diff)[:40])


def test_committed_schema_matches_the_code() -> None:
    # given
    committed = SCHEMA_FILE.read_text(encoding="utf-8")

    # when
    exported = export_sdl()

    # then
    assert "type Query" in exported
    assert committed == exported, (
        "schema.graphql is stale; run `make schema`:\n" + first_difference(committed, exported)
    )


async def test_export_schema_command_prints_the_committed_schema() -> None:
    # given
    committed = SCHEMA_FILE.read_text(encoding="utf-8")

    # when
    process = await asyncio.create_subprocess_exec(
        str(PARTNER_HUB),
        "export-schema",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()

    # then
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode("utf-8") == committed, first_difference(committed, stdout.decode())
