"""Issue 17: the three read workloads against PostGraphile 4, side by side, in repeated rounds.

    .venv/bin/python -m bench.bench_reads [--customers 100000] [--rounds 3] [--runs 200]
        [--seconds 15] [--concurrency 8,32] [--workers 2] [--other NAME=PYTHONPATH ...]

``bench.bench_peers`` measures everything (five workloads, four servers, three sizes) once; this
measures only what issue 17's goals name (workloads 1-3 on PostgreSQL, response cache off,
PostGraphile 4 as the peer) and repeats it, so that a ratio is read from several rounds of the
same run rather than from one: every round takes the servers' sequential latencies interleaved
request by request, then wrk at each concurrency for each server back to back (the order of the
servers alternating between rounds). Latency is taken twice, both ways request by request: with the
standard library's ``http.client`` (``bench.load.lean_latency``, ~0.1 ms of client a request:
what the goals' ratios are read from) and with httpx (``latency_httpx``, as before: ~0.7-1 ms
of a Python client's work in every sample, reported beside it). A third pass with http.client
takes turns of ``--turn`` requests (``latency_turns``): what one user's consecutive requests to
one server see, without another server's request between every two of them (request by
request, each server is measured with the caches the other left: ``bench.bench_idle``).
Each ``--other`` adds a server: the same Partner Hub run with another import path (main's
checkout before a change), for before/after in the same run.
Prints the per-round ratios to PostGraphile and writes ``bench/results/<date>-reads.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from contextlib import AsyncExitStack
from typing import Any

from bench.bench_peers import EMAIL, PEER_WORKLOADS, PORT, Subjects, _request, run_head
from bench.common import RESULTS, dataset, token_for
from bench.load import interleaved_latency, lean_latency, run_wrk
from bench.peers import partner_hub_server, peak_rss, postgraphile
from bench.peers_report import failed

COLD = {"PARTNER_HUB_RESPONSE_CACHE_SECONDS": "0"}


def _servers(url: str, workers: int, others: list[str]) -> dict[str, Any]:
    """Ours (this checkout), PostGraphile, and each of ``others`` (``NAME=PYTHONPATH``): the
    same server started with another import path, e.g. main's checkout before a change."""
    database = url.rsplit("/", 1)[1]
    found = {
        "ours_cold": lambda: partner_hub_server(url, PORT + 20, workers, COLD),
        "postgraphile": lambda: postgraphile(database, PORT + 21, workers),
    }
    for offset, other in enumerate(others):
        name, _, path = other.partition("=")
        env = {**COLD, "PYTHONPATH": path}
        port = PORT + 22 + offset
        found[name] = lambda env=env, port=port: partner_hub_server(url, port, workers, env)
    return found


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    url = await dataset("postgresql", args.customers)
    subjects = Subjects(url, await token_for(url, EMAIL))
    await subjects.load()
    rounds: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        bases, rss = {}, {}
        for name, server in _servers(url, args.workers, args.other).items():
            bases[name] = await stack.enter_async_context(server())
            rss[name] = stack.enter_context(peak_rss([bases[name].pid]))
        for round_ in range(args.rounds):
            names = list(bases) if round_ % 2 == 0 else list(reversed(bases))
            result: dict[str, Any] = {name: {} for name in names}
            for workload in args.workloads:
                targets = {
                    name: _request(
                        "postgraphile" if name == "postgraphile" else "ours_cold",
                        bases[name],
                        subjects,
                        workload,
                    )
                    for name in names
                }
                lean = await lean_latency(targets, args.runs)
                turns = await lean_latency(targets, args.runs, turn=args.turn)
                for name, lat in (await interleaved_latency(targets, args.runs)).items():
                    result[name][workload] = {
                        "latency": lean[name],
                        "latency_turns": turns[name],
                        "latency_httpx": lat,
                    }
                    result[name][workload]["load"] = {}
                for c in args.concurrency:
                    for name in names:
                        target, body, token = targets[name]
                        run = await run_wrk(target, [body], token, c, args.seconds, timeout_s=60)
                        result[name][workload]["load"][str(c)] = run
                print(f"round {round_ + 1} {workload}: {_line(result, workload)}", flush=True)
            rounds.append(result)
    return {
        **run_head(args),
        "rounds": rounds,
        "peak_rss_mb": {name: round(peak.mb, 1) for name, peak in rss.items()},
    }


def _line(result: dict[str, Any], workload: str) -> str:
    parts = []
    for name, found in result.items():
        w = found[workload]
        lat, turns, slow = w["latency"], w["latency_turns"], w["latency_httpx"]
        loads = " ".join(
            f"c{c} {r['requests_per_s']:.0f}/s p99 {r['latency_ms']['p99']:.0f} "
            f"err {failed(r['errors'])}"
            for c, r in w["load"].items()
        )
        parts.append(
            f"{name} {lat['median_ms']:.2f}/{lat['p99_ms']:.1f} ms err {lat['errors']} "
            f"(turns {turns['median_ms']:.2f}/{turns['p99_ms']:.1f}) "
            f"(httpx {slow['median_ms']:.2f}/{slow['p99_ms']:.1f}) {loads}"
        )
    return " | ".join(parts)


def ratios(
    report: dict[str, Any], server: str = "ours_cold", latency: str = "latency"
) -> list[str]:
    """Per workload: the ratio to PostGraphile of each round (median and p99 of ``latency``:
    http.client's, or ``latency_httpx``; req/s per c)."""
    lines = []
    for workload in report["args"]["workloads"]:
        medians, p99s, rps = [], [], {}
        for result in report["rounds"]:
            ours, peer = result[server][workload], result["postgraphile"][workload]
            medians.append(ours[latency]["median_ms"] / peer[latency]["median_ms"])
            p99s.append(ours[latency]["p99_ms"] / peer[latency]["p99_ms"])
            for c, run in ours["load"].items():
                peer_rps = peer["load"][c]["requests_per_s"]
                rps.setdefault(c, []).append(run["requests_per_s"] / peer_rps)
        fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        lines.append(
            f"{server} {workload} ({latency}): median x{fmt(medians)}; p99 x{fmt(p99s)}; "
            + "; ".join(f"c{c} x{fmt(v)}" for c, v in rps.items())
            + f" (median of rounds: median {statistics.median(medians):.2f}x)"
        )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workloads", default=",".join(PEER_WORKLOADS))
    parser.add_argument("--turn", type=int, default=25, help="latency_turns: requests a turn")
    parser.add_argument("--other", action="append", default=[], help="NAME=PYTHONPATH")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.workloads = args.workloads.split(",")
    report = await measure(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{report['date']}-reads.json").write_text(json.dumps(report, indent=2))
    for server in report["rounds"][0]:
        if server != "postgraphile":
            print("\n".join(ratios(report, server)))
            print("\n".join(ratios(report, server, "latency_turns")))
            print("\n".join(ratios(report, server, "latency_httpx")))


if __name__ == "__main__":
    asyncio.run(main())
