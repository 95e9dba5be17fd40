"""Benchmark: issue 16's license-dashboard goals, as ratios to the directory page of the same run.

    .venv/bin/python -m bench.bench_dashboard_goals [--sizes 1000,100000]
        [--backends sqlite,postgresql] [--runs 15] [--product MEETINGS]

On the shared synthetic data sets (``bench.common.dataset``: one partner, ``seed --customers N
--random-seed 1``, ``now`` pinned to 2026-11-26), the full admin sends, through the ASGI app in
process with the response cache off, round after round: the directory page (workload 1,
``bench/queries/directory_page.graphql``, 50 customers), the license dashboard (workload 4,
``license_dashboard.graphql``: ``licenseKpis``, every section's KPIs and first page, the 13-week
trend), the same dashboard from a second server that recomputes the deployment's medians on
every request (``PARTNER_HUB_MEDIANS_MEMO`` off: the first dashboard after a licence write
anywhere) and each section of ``licenseAnalytics`` alone (its KPIs and first page). Interleaving
the requests — every size's servers of a backend in each round — puts every workload and size
under the same load of a shared machine.

Reported per backend and size: medians, the ratios dashboard / directory (goal <= 3 at 100,000
customers) and slowest section alone / directory (goal <= 2), and per backend the dashboard's
median at the largest size over the smallest (goal <= 1.5). Writes
``bench/results/<date>-dashboard-goals.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from datetime import date
from importlib.metadata import version
from typing import Any

from bench.common import RESULTS, app_client, dataset, machine, query, token_for

EMAIL = "full@synth1.example"
SECTIONS = ("recentlyAdded", "aboutToExpire", "aboutToRenew", "lowAllocation", "overage")


def section_document(section: str) -> str:
    """The dashboard document cut down to ``licenseAnalytics { <section> { ... } }``."""
    text = query("license_dashboard")
    begin = text.index(f" {section} {{")
    depth, end = 0, begin
    for end in range(text.index("{", begin), len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    block = text[begin : end + 1]
    return (
        "query Section($product: AnalyticsProduct!) {\n"
        f"  licenseAnalytics(product: $product) {{\n{block}\n  }}\n}}\n"
    )


def versions(backend: str, server: str) -> str:
    names = ("strawberry-graphql", "sqlalchemy", "aiosqlite" if backend == "sqlite" else "asyncpg")
    return ", ".join(
        [f"Python {platform.python_version()}", *[f"{n} {version(n)}" for n in names], server]
    )


async def measure(backend: str, sizes: list[int], runs: int, product: str) -> list[dict[str, Any]]:
    """Every size of ``backend`` round by round: each round sends every request to every size's
    servers in turn, so the ratios between sizes (flatness) are side by side too."""
    payloads = {
        "directory": {"query": query("directory_page"), "variables": {"first": 50}},
        "dashboard": {"query": query("license_dashboard"), "variables": {"product": product}},
        **{s: {"query": section_document(s), "variables": {"product": product}} for s in SECTIONS},
    }
    asks: list[tuple[int, str, dict[str, Any], Any, dict[str, str]]] = []
    clients = []
    server = ""
    for size in sizes:
        url = await dataset(backend, size)
        headers = {"Authorization": f"Bearer {await token_for(url, EMAIL)}"}
        app, client = app_client(url, response_cache_seconds=0)
        # The same dashboard from a server that recomputes the deployment's medians on every
        # request (PARTNER_HUB_MEDIANS_MEMO off): the first dashboard after a licence write.
        _, cold_client = app_client(url, response_cache_seconds=0, medians_memo=False)
        clients += [client, cold_client]
        server = await _server_version(app, backend)
        asks += [(size, name, payload, client, headers) for name, payload in payloads.items()]
        asks.append((size, "dashboard_medians_cold", payloads["dashboard"], cold_client, headers))
    samples: dict[tuple[int, str], list[float]] = {(a[0], a[1]): [] for a in asks}
    for round_ in range(runs + 3):  # three warm-up rounds
        for size, name, payload, sender, headers in asks:
            started = time.perf_counter()
            response = await sender.post("/graphql", json=payload, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            body = response.json()
            assert response.status_code == 200 and not body.get("errors"), body
            if round_ >= 3:
                samples[(size, name)].append(elapsed)
    for client in clients:
        await client.aclose()
    results = []
    for size in sizes:
        medians = {n: statistics.median(v) for (s, n), v in samples.items() if s == size}
        directory = medians["directory"]
        slowest = max(SECTIONS, key=lambda s: medians[s])
        result = {
            "backend": backend,
            "customers": size,
            "versions": versions(backend, server),
            "medians_ms": {k: round(v, 2) for k, v in medians.items()},
            "dashboard_ratio": round(medians["dashboard"] / directory, 2),
            "cold_ratio": round(medians["dashboard_medians_cold"] / directory, 2),
            "slowest_section": slowest,
            "section_ratio": round(medians[slowest] / directory, 2),
        }
        print(f"  {backend:10} {size:>7} {result}", flush=True)
        results.append(result)
    return results


async def _server_version(app: Any, backend: str) -> str:
    from sqlalchemy import text

    engine = app.state.hub.engine
    async with engine.connect() as conn:
        if backend == "sqlite":
            return "SQLite " + str((await conn.execute(text("select sqlite_version()"))).scalar())
        raw = str((await conn.execute(text("show server_version"))).scalar())
        return "PostgreSQL " + raw.split()[0]


def table(results: list[dict[str, Any]], runs: int, product: str) -> str:
    lines = [
        f"License dashboard ({product}) vs the directory page, response cache off, median of "
        f"{runs} interleaved rounds, in-process ({machine()})",
        "",
        "| backend | customers | directory ms | dashboard ms | dashboard / directory (goal <= 3) "
        "| slowest section alone ms | section / directory (goal <= 2) "
        "| dashboard, medians recomputed ms (/ directory) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        m = r["medians_ms"]
        lines.append(
            f"| {r['backend']} | {r['customers']:,} | {m['directory']:.1f} | {m['dashboard']:.1f} "
            f"| {r['dashboard_ratio']:.2f}x | {r['slowest_section']} {m[r['slowest_section']]:.1f} "
            f"| {r['section_ratio']:.2f}x | {m['dashboard_medians_cold']:.1f} "
            f"({r['cold_ratio']:.2f}x) |"
        )
    lines += ["", "| backend | dashboard largest / smallest size (goal <= 1.5) | versions |"]
    lines.append("| --- | ---: | --- |")
    for backend in dict.fromkeys(r["backend"] for r in results):
        mine = sorted((r for r in results if r["backend"] == backend), key=lambda r: r["customers"])
        if len(mine) > 1:
            flat = mine[-1]["medians_ms"]["dashboard"] / mine[0]["medians_ms"]["dashboard"]
            lines.append(
                f"| {backend} ({mine[-1]['customers']:,} vs {mine[0]['customers']:,}) "
                f"| {flat:.2f}x | {mine[-1]['versions']} |"
            )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--product", choices=("MEETINGS", "CALLING"), default="MEETINGS")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    results = [
        result
        for backend in args.backends.split(",")
        for result in await measure(backend, sizes, args.runs, args.product)
    ]
    text = table(results, args.runs, args.product)
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = date.today().isoformat()
    (RESULTS / f"{stamp}-dashboard-goals.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{stamp}-dashboard-goals.md").write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
