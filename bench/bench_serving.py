"""Serving (issue 17), side by side in one run: throughput with 1 and 2 workers, how the
connections spread over the workers, SQLite at 8 and 32 connections with the server's peak RSS,
and the price of the shared cost budget on the directory page.

    python -m bench.bench_serving [--backends postgresql,sqlite] [--seconds 10] [--rounds 2]
        [--pg-url URL] [--sqlite-url URL] [--customers 100000]

All servers of a backend run at once (response cache off); wrk runs take turns, the order
rotating every round, so a shared machine's drift falls on every server alike; the table gives
each server's median over the rounds. Connections per worker are counted with ``ss`` (the
process that accepted each established connection) halfway through each 2-worker wrk run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
from datetime import date
from typing import Any

from bench.common import RESULTS, dataset, machine, query, token_for
from bench.load import interleaved_latency, run_wrk
from bench.peers import _children, partner_hub_server, peak_rss

EMAIL = "full@synth1.example"
PORT = 8841
COLD = {"PARTNER_HUB_RESPONSE_CACHE_SECONDS": "0"}
DIRECTORY = {"query": query("directory_page"), "variables": {"first": 50}}


def per_worker(port: int) -> list[int]:
    """Established connections on ``port`` per accepting process, largest first."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) of ``root`` and its children so far."""
    total = 0
    for pid in [root, *_children(root)]:
        with contextlib.suppress(OSError):
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


async def wrk_with_spread(base: Any, token: str, c: int, seconds: int) -> dict[str, Any]:
    """wrk on ``base`` (an Endpoint: its URL and PID); connections per worker sampled halfway,
    and the server's CPU seconds, so a shared machine's contention shows as fewer requests a
    second but not as fewer requests per CPU second."""
    port = int(base.rsplit(":", 1)[1])
    cpu_before = cpu_seconds(base.pid)

    async def sample() -> list[int]:
        await asyncio.sleep(seconds / 2)
        return await asyncio.to_thread(per_worker, port)

    spread = asyncio.create_task(sample())
    result = await run_wrk(f"{base}/graphql", [DIRECTORY], token, c, seconds, timeout_s=60)
    cpu = cpu_seconds(base.pid) - cpu_before
    return {**result, "per_worker": await spread, "server_cpu_s": cpu}


def brief(run: dict[str, Any]) -> dict[str, Any]:
    errors = sum(v for k, v in run["errors"].items() if k != "status")
    return {
        "rps": run["requests_per_s"],
        "p50_ms": run["latency_ms"]["p50"],
        "p99_ms": run["latency_ms"]["p99"],
        "errors": errors,
        "per_worker": run.get("per_worker"),
        "per_cpu_s": round(run["requests"] / max(run["server_cpu_s"], 0.01), 1),
        "wrk_cpu_percent": run["wrk_cpu_percent"],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    return {
        **best,
        "rps": round(statistics.median(r["rps"] for r in runs), 1),
        "rps_runs": [round(r["rps"], 1) for r in runs],
        "per_cpu_s": round(statistics.median(r["per_cpu_s"] for r in runs), 1),
        "errors": sum(r["errors"] for r in runs),
    }


async def rounds(
    servers: dict[str, Any], token: str, levels: list[int], args: argparse.Namespace
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every server at every concurrency, in turns: {"c8": {server: median run}}."""
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    names = list(servers)
    for r in range(args.rounds):
        for c in levels:
            for name in names[r % len(names) :] + names[: r % len(names)]:
                run = brief(await wrk_with_spread(servers[name], token, c, args.seconds))
                runs.setdefault((c, name), []).append(run)
    return {f"c{c}": {name: median_of(runs[(c, name)]) for name in names} for c in levels}


# SQLite's pool before issue 17 (SQLAlchemy's default 5 + 10, a 64 MB page cache each), side by
# side with the new defaults (4 + 0, 16 MB).
OLD_SQLITE_POOL = {
    "PARTNER_HUB_DATABASE_POOL_SIZE": "5",
    "PARTNER_HUB_DATABASE_POOL_OVERFLOW": "10",
    "PARTNER_HUB_SQLITE_CACHE_MB": "64",
}


# Every request executing at once, as before graph/admission.py (issue 17).
NO_ADMISSION = {"PARTNER_HUB_SERVE_MAX_CONCURRENT": "0"}


async def bench_workers(
    url: str, token: str, args: argparse.Namespace, backend: str
) -> dict[str, Any]:
    """1 and 2 workers side by side at each concurrency (on SQLite also 2 workers with the old
    pool, and without admission control); each server's peak RSS over the whole run."""
    variants: dict[str, tuple[int, dict[str, str]]] = {"1 worker": (1, {}), "2 workers": (2, {})}
    if backend == "sqlite":
        variants["2 workers, old pool"] = (2, OLD_SQLITE_POOL)
        variants["2 workers, no admission"] = (2, NO_ADMISSION)
    async with contextlib.AsyncExitStack() as stack:
        servers = {}
        for offset, (name, (workers, env)) in enumerate(variants.items()):
            server = partner_hub_server(url, args.port + offset, workers, {**COLD, **env})
            servers[name] = await stack.enter_async_context(server)
        peaks = {name: stack.enter_context(peak_rss([s.pid])) for name, s in servers.items()}
        found: dict[str, Any] = await rounds(servers, token, args.concurrency, args)
    found["peak_rss_mb"] = {name: round(peak.mb) for name, peak in peaks.items()}
    return found


async def bench_budget(url: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """The directory page with the budget in each process, in PostgreSQL, in Redis (2 workers
    each): single requests interleaved, then wrk at 8 connections in turns."""
    variants = {
        "in process": {"PARTNER_HUB_COST_BUDGET_STORE": "process"},
        "PostgreSQL": {},
        "Redis": {"PARTNER_HUB_REDIS_URL": args.redis_url},
    }
    async with contextlib.AsyncExitStack() as stack:
        servers = {}
        for offset, (name, env) in enumerate(variants.items()):
            server = partner_hub_server(url, args.port + 10 + offset, 2, {**COLD, **env})
            servers[name] = await stack.enter_async_context(server)
        targets = {n: (f"{b}/graphql", DIRECTORY, token) for n, b in servers.items()}
        latency = await interleaved_latency(targets, args.latency_runs)
        throughput = await rounds(servers, token, [8], args)
    return {"latency": latency, **throughput}


async def spend_round_trips(url: str, redis_url: str, runs: int = 500) -> dict[str, Any]:
    """Median and p99 time of one ``spend`` per budget, in this process (what the shared budget
    adds to each request, measured without the servers' noise): a spend as requests make it
    (8 busy tokens: most spend a lease) and one trip to the store alone."""
    import time

    from graph.cost import CostLimiter
    from graph.cost_store import Budget, PostgresStore, RedisStore, SharedBudget

    budgets: dict[str, Budget] = {
        "in process": CostLimiter(10**12),
        "PostgreSQL": SharedBudget(PostgresStore(url), 10**12),
        "Redis": SharedBudget(RedisStore(redis_url, "bench"), 10**12),
    }
    found: dict[str, Any] = {}

    async def sampled(spend: Any) -> dict[str, float]:
        samples = []
        for i in range(runs + 20):
            started = time.perf_counter()
            allowed, _, _ = await spend(10**6 + i % 8, 28_000)
            if i >= 20:
                samples.append((time.perf_counter() - started) * 1000)
            assert allowed
        samples.sort()
        return {
            "median_ms": round(statistics.median(samples), 3),
            "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
        }

    for name, budget in budgets.items():
        found[name] = await sampled(budget.spend)
        if isinstance(budget, SharedBudget):
            shared = budget

            async def trip(token: int, cost: int, shared: SharedBudget = shared) -> Any:
                return await shared.store.spend(token, cost, shared.capacity, shared.rate)

            found[f"{name}, one trip to the store"] = await sampled(trip)
        await budget.close()
    return found


def markdown(backend: str, report: dict[str, Any]) -> str:
    lines = [f"### Serving on {backend} ({report['machine']}, {report['date']})", ""]
    workers = report["workers"]
    levels = [k for k in workers if k.startswith("c")]
    lines += [
        "| server | connections | req/s (median; runs) | p50 / p99 ms | req per server CPU-s "
        "| connections per worker | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in workers[levels[0]]:
        for key in levels:
            run = workers[key][name]
            lines.append(
                f"| {name} | {key[1:]} | {run['rps']} {run['rps_runs']} "
                f"| {run['p50_ms']:.0f} / {run['p99_ms']:.0f} | {run['per_cpu_s']} "
                f"| {run['per_worker']} | {run['errors']} |"
            )
    lines.append("")
    for key in levels:
        one, two = workers[key]["1 worker"]["rps"], workers[key]["2 workers"]["rps"]
        lines.append(f"- {key[1:]} connections: 2 workers / 1 worker = {two / one:.2f}x")
    if len(levels) > 1:
        for name in workers[levels[0]]:
            low, high = workers[levels[0]][name]["rps"], workers[levels[-1]][name]["rps"]
            lines.append(
                f"- {name}: {levels[-1][1:]} / {levels[0][1:]} connections = {high / low:.2f}x"
            )
    peaks = ", ".join(f"{name} {mb} MB" for name, mb in workers["peak_rss_mb"].items())
    lines.append(f"- peak RSS over the run: {peaks}")
    spends = report.get("spend")
    if spends:
        lines += ["", "| one spend (in process, 500 calls) | median ms | p99 ms |", "|---|---|---|"]
        for name, found in spends.items():
            lines.append(f"| {name} | {found['median_ms']} | {found['p99_ms']} |")
    budget = report.get("budget")
    if budget:
        base = budget["c8"]["in process"]["rps"]
        base_median = budget["latency"]["in process"]["median_ms"]
        lines += [
            "",
            "| cost budget | median ms (1 connection) | req/s at 8 | vs in process "
            "| req per server CPU-s |",
            "|---|---|---|---|---|",
        ]
        for name, run in budget["c8"].items():
            median = budget["latency"][name]["median_ms"]
            lines.append(
                f"| {name} | {median} ({median / base_median - 1:+.1%}) | {run['rps']} "
                f"{run['rps_runs']} | {run['rps'] / base - 1:+.1%} | {run['per_cpu_s']} |"
            )
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--pg-url", default=None, help="a seeded PostgreSQL database instead")
    parser.add_argument("--sqlite-url", default=None, help="a seeded SQLite database instead")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--no-budget", action="store_true")
    parser.add_argument("--port", type=int, default=PORT, help="the first of the servers' ports")
    parser.add_argument("--spend-only", action="store_true", help="only the stores' round trips")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    for backend in args.backends.split(","):
        given = args.pg_url if backend == "postgresql" else args.sqlite_url
        url = given or await dataset(backend, args.customers)
        if args.spend_only:
            print(json.dumps(await spend_round_trips(url, args.redis_url), indent=2))
            continue
        token = await token_for(url, EMAIL)
        report: dict[str, Any] = {"machine": machine(), "date": date.today().isoformat()}
        report["cpu_count"] = os.cpu_count()
        report["workers"] = await bench_workers(url, token, args, backend)
        if backend == "postgresql" and not args.no_budget:
            report["spend"] = await spend_round_trips(url, args.redis_url)
            report["budget"] = await bench_budget(url, token, args)
        stamp = f"{report['date']}-serving-{backend}"
        (RESULTS / f"{stamp}.json").write_text(json.dumps(report, indent=2))
        (RESULTS / f"{stamp}.md").write_text(markdown(backend, report))
        print(markdown(backend, report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
