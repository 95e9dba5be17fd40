"""Issue 17: how a pause between requests changes a single user's latency, ours and PostGraphile's.

    .venv/bin/python -m bench.bench_idle [--customers 100000] [--runs 100]
        [--think-ms 0,2,10,50] [--workloads filtered,detail] [--workers 2]

``bench.bench_reads`` takes the servers' sequential latencies in turns, request by request: each
server is idle while the other answers. On the 2-vCPU virtual machines this project is measured
on, what a request costs depends on how long its process was idle before it, not only on what it
does: the caches it left are refilled after an idle spell (by the host's other work on the core
while the vCPU halts; pinning a process to one core changes nothing). This bench shows it, per
server, one server at a time: sequential requests (``bench.load.lean_latency``) with a pause of
``think-ms`` before each, and, as a control that involves no server, the same pauses before a
small loop (a working set that fits in the first-level caches) and before a walk over 20,000 of
200,000 dictionaries (one that does not). Writes ``bench/results/<date>-idle.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

from bench.bench_peers import EMAIL, PORT, Subjects, _request, run_head
from bench.common import RESULTS, dataset, token_for
from bench.load import lean_latency
from bench.peers import partner_hub_server, postgraphile

COLD = {"PARTNER_HUB_RESPONSE_CACHE_SECONDS": "0"}


def _small() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


_DICTS = [{"a": i, "b": str(i)} for i in range(200_000)]


def _large() -> int:
    return sum(d["a"] for d in _DICTS[::10])


def control(think_ms: list[int], runs: int) -> dict[str, dict[str, float]]:
    """Median ms of each loop after each pause (no server involved)."""
    found: dict[str, dict[str, float]] = {}
    for name, work in (("small loop", _small), ("walk over 200,000 dicts", _large)):
        found[name] = {}
        for think in think_ms:
            samples = []
            for _ in range(runs):
                time.sleep(think / 1000)
                started = time.perf_counter()
                work()
                samples.append((time.perf_counter() - started) * 1000)
            found[name][str(think)] = round(statistics.median(samples), 3)
    return found


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    url = await dataset("postgresql", args.customers)
    subjects = Subjects(url, await token_for(url, EMAIL))
    await subjects.load()
    servers = {
        "ours_cold": partner_hub_server(url, PORT + 40, args.workers, COLD),
        "postgraphile": postgraphile(url.rsplit("/", 1)[1], PORT + 41, args.workers),
    }
    latency: dict[str, dict[str, dict[str, Any]]] = {}
    async with AsyncExitStack() as stack:
        bases = {name: await stack.enter_async_context(s) for name, s in servers.items()}
        for workload in args.workloads:
            latency[workload] = {}
            for think in args.think_ms:
                row = latency[workload][str(think)] = {}
                for name, base in bases.items():
                    target = {name: _request(name, base, subjects, workload)}
                    found = await lean_latency(target, args.runs, think_s=think / 1000)
                    row[name] = found[name]
                ratio = row["ours_cold"]["median_ms"] / row["postgraphile"]["median_ms"]
                print(f"{workload} think {think} ms: {_cells(row)} ({ratio:.2f}x)", flush=True)
    return {
        **run_head(args),
        "latency": latency,
        "control": await asyncio.to_thread(control, args.think_ms, args.runs),
    }


def _cells(row: dict[str, Any]) -> str:
    return " | ".join(f"{n} {r['median_ms']:.2f}/{r['p99_ms']:.1f} ms" for n, r in row.items())


def markdown(report: dict[str, Any]) -> str:
    thinks = report["args"]["think_ms"]
    lines = [
        f"# Latency after a pause, ours and PostGraphile 4 ({report['date']})",
        "",
        f"{report['machine']}; {report['args']['workers']} workers each; "
        f"{report['args']['runs']} sequential requests per cell (http.client); "
        f"versions {json.dumps(report['versions'])}",
        "",
        "| workload | pause before each request | ours median / p99 | PostGraphile median / p99 "
        "| ours / PostGraphile |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for workload, rows in report["latency"].items():
        for think in thinks:
            ours, peer = rows[str(think)]["ours_cold"], rows[str(think)]["postgraphile"]
            lines.append(
                f"| {workload} | {think} ms | {ours['median_ms']:.2f} / {ours['p99_ms']:.1f} ms "
                f"| {peer['median_ms']:.2f} / {peer['p99_ms']:.1f} ms "
                f"| {ours['median_ms'] / peer['median_ms']:.2f}x |"
            )
    lines += ["", "| control (no server) | " + " | ".join(f"{t} ms" for t in thinks) + " |"]
    lines.append("| --- |" + " ---: |" * len(thinks))
    for name, row in report["control"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[str(t)]:.3f} ms" for t in thinks) + " |")
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--think-ms", default="0,2,10,50")
    parser.add_argument("--workloads", default="filtered,detail")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.think_ms = [int(t) for t in args.think_ms.split(",")]
    args.workloads = args.workloads.split(",")
    report = await measure(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{report['date']}-idle.json").write_text(json.dumps(report, indent=2))
    (RESULTS / f"{report['date']}-idle.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    asyncio.run(main())
