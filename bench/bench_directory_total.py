"""Issue 16, the directory's ``totalCount`` goal alone (``bench_partner_scale`` row 2 without
the calling data, hit rates and load): the directory page with and without ``totalCount``,
unfiltered and with one status, response cache off, in process, the documents taking turns.

    .venv/bin/python -m bench.bench_directory_total [--backends sqlite,postgresql]
        [--size 100000] [--runs 30] [--exact]

``--exact`` counts as before the maintained counts (``maintained_status`` answering None), for
a before/after comparison on the same data and machine.

Measured at the data set's clock (``bench.common.NOW``, a midnight) and 14 hours later, when the
maintained status count (``db.directory_counts``) also counts the spans that started or ended
since midnight. Prints a markdown table; writes ``bench/results/<date>-directory-total.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import date, timedelta
from typing import Any

import httpx

from bench.bench_partner_scale import EMAIL, _post, documents
from bench.bench_peers import versions
from bench.common import NOW, RESULTS, dataset, machine, token_for

NAMES = ("directory", "directory_total", "status", "status_total")
LATER = timedelta(hours=14)


async def measure(url: str, runs: int) -> dict[str, dict[str, float]]:
    """Median ms per document, at NOW and NOW + 14 h."""
    from db.settings import Settings
    from graph.app import create_app

    token = await token_for(url, EMAIL)
    docs = {n: d for n, d in documents().items() if n in NAMES}
    out: dict[str, dict[str, float]] = {}
    for label, now in (("midnight", NOW), ("+14 h", NOW + LATER)):
        app = create_app(Settings(database_url=url, now=now, response_cache_seconds=0))
        transport = httpx.ASGITransport(app=app)
        samples: dict[str, list[float]] = {n: [] for n in NAMES}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for round_ in range(runs + 3):
                shift = round_ % len(NAMES)
                for name in NAMES[shift:] + NAMES[:shift]:
                    started = time.perf_counter()
                    await _post(client, docs[name], token)
                    if round_ >= 3:
                        samples[name].append((time.perf_counter() - started) * 1000)
        await app.state.hub.engine.dispose()
        out[label] = {n: statistics.median(v) for n, v in samples.items()}
    return out


def markdown(results: dict[str, dict[str, dict[str, float]]], size: int) -> str:
    lines = [
        f"Directory totalCount, {size:,} customers ({machine()}; {json.dumps(versions())})",
        "",
        "| backend | clock | with / without totalCount | measured | ratio | goal |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    for backend, per_clock in results.items():
        for label, lat in per_clock.items():
            for name, what in (("directory", "unfiltered"), ("status", "one status (ACTIVE)")):
                t, p = lat[f"{name}_total"], lat[name]
                lines.append(
                    f"| {backend} | {label} | {what} | {t:.1f} / {p:.1f} ms "
                    f"| {t / p:.2f}x | <= 1.5x |"
                )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--exact", action="store_true")
    args = parser.parse_args()
    if args.exact:
        from db.queries import customer_filters

        customer_filters.maintained_status = lambda scope, query: None  # type: ignore[assignment]
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        url = await dataset(backend, args.size)
        results[backend] = await measure(url, args.runs)
        print(f"  {backend}: {json.dumps(results[backend])}", flush=True)
    table = markdown(results, args.size) + ("\n(exact counts)" if args.exact else "")
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{date.today().isoformat()}-directory-total.md").write_text(table + "\n")


if __name__ == "__main__":
    asyncio.run(main())
