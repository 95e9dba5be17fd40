"""The markdown tables of ``bench_peers`` (kept apart so a saved JSON can be re-rendered:
``python -m bench.peers_report bench/results/<date>-<backend>.json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SERVERS = {
    "ours_cold": "Partner Hub, cache off",
    "ours_warm": "Partner Hub, cache on",
    "naive": "naive baseline",
    "postgraphile": "PostGraphile 4",
}
WORKLOADS = {
    "directory": "1 directory page",
    "filtered": "2 filtered page",
    "filtered_full": "2b filtered page, full at every size",
    "detail": "3 customer detail",
    "dashboard": "4 license dashboard",
    "mixed": "5 mixed (1-4 + writes)",
}


def failed(errors: dict[str, int]) -> int:
    """Failed requests of one wrk run: ``status`` (wrk's own count of statuses >= 400) and
    ``non2xx`` (the script's) count the same responses, so only the larger is taken."""
    transport = sum(errors.get(k, 0) for k in ("connect", "read", "write", "timeout"))
    return transport + max(errors.get("status", 0), errors.get("non2xx", 0)) + errors["graphql"]


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _median(servers: dict[str, Any], server: str, workload: str) -> float | None:
    found = servers.get(server, {}).get(workload, {}).get("latency")
    return found["median_ms"] if found else None


def _latency_table(servers: dict[str, Any]) -> list[str]:
    present = [s for s in SERVERS if s in servers]
    lines = [
        "| workload | "
        + " | ".join(f"{SERVERS[s]} median / p99 ms" for s in present)
        + " | cold / PostGraphile | warm / PostGraphile | naive / cold |",
        "| --- | " + " | ".join("---:" for _ in present) + " | ---: | ---: | ---: |",
    ]
    for workload, label in WORKLOADS.items():
        cells = []
        for server in present:
            found = servers[server].get(workload, {}).get("latency")
            cells.append(f"{found['median_ms']:.1f} / {found['p99_ms']:.1f}" if found else "-")
        if all(c == "-" for c in cells):
            continue
        cold, warm = (
            _median(servers, "ours_cold", workload),
            _median(servers, "ours_warm", workload),
        )
        peer, naive = (
            _median(servers, "postgraphile", workload),
            _median(servers, "naive", workload),
        )
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {_ratio(cold, peer)} | {_ratio(warm, peer)} | {_ratio(naive, cold)} |"
        )
    return lines


def _load_table(servers: dict[str, Any]) -> list[str]:
    levels = sorted(
        {
            int(c)
            for s in servers.values()
            for w in s.values()
            if isinstance(w, dict)
            for c in w.get("load", {})
        }
    )
    if not levels:
        return []
    lines = [
        "| workload | server | "
        + " | ".join(f"c={c} req/s (p99 ms)" for c in levels)
        + " | errors | cache hits | wrk CPU |",
        "| --- | --- | " + " | ".join("---:" for _ in levels) + " | ---: | ---: | ---: |",
    ]
    for workload, label in WORKLOADS.items():
        for server, name in SERVERS.items():
            runs = servers.get(server, {}).get(workload, {}).get("load")
            if not runs:
                continue
            cells = [
                f"{runs[str(c)]['requests_per_s']:.1f} ({runs[str(c)]['latency_ms']['p99']:.0f})"
                if str(c) in runs
                else "-"
                for c in levels
            ]
            requests = sum(r["requests"] for r in runs.values())
            errors = sum(failed(r["errors"]) for r in runs.values())
            hits = sum(r.get("cache_hits", 0) for r in runs.values())
            cpu = max(r["wrk_cpu_percent"] for r in runs.values())
            hit_rate = f"{hits / requests:.0%}" if requests and server.startswith("ours") else "-"
            lines.append(
                f"| {label} | {name} | "
                + " | ".join(cells)
                + f" | {errors} / {requests} | {hit_rate} | {cpu:.1f} % |"
            )
    top = str(levels[-1])

    def rps(server: str) -> float | None:
        run = servers.get(server, {}).get("directory", {}).get("load", {}).get(top)
        return run["requests_per_s"] if run else None

    lines += [
        "",
        f"Directory page throughput at c={top}: cache off / PostGraphile "
        f"{_ratio(rps('ours_cold'), rps('postgraphile'))}, cache on / PostGraphile "
        f"{_ratio(rps('ours_warm'), rps('postgraphile'))}, cache off / naive "
        f"{_ratio(rps('ours_cold'), rps('naive'))}.",
    ]
    return lines


def _flatness_table(report: dict[str, Any]) -> list[str]:
    """Goal 2 from ``flat`` (the sizes side by side, taking turns) when measured, else from
    each size's own run."""
    flat = report.get("flat")
    if flat:
        keys = sorted(next(iter(flat.values())), key=int)
        rows = {w: [flat[w][k]["median_ms"] for k in keys] for w in flat}
    else:
        sizes = report["sizes"]
        keys = sorted(sizes, key=int)
        rows = {
            w: [_median(sizes[k]["servers"], "ours_cold", w) for k in keys]
            for w in ("directory", "filtered", "detail", "dashboard")
        }
    if len(keys) < 2:
        return []
    lines = [
        "| workload | "
        + " | ".join(f"{int(k):,} customers (ms)" for k in keys)
        + f" | {int(keys[-1]):,} / {int(keys[0]):,} |",
        "| --- | " + " | ".join("---:" for _ in keys) + " | ---: |",
    ]
    counts = {
        w: [flat[w][k].get("customers") for k in keys] if flat else [None] * len(keys) for w in rows
    }
    for workload, medians in rows.items():
        if medians[0] is None:
            continue
        cells = [
            (f"{m:.1f}" if m else "-") + (f" [{n}]" if n is not None else "")
            for m, n in zip(medians, counts[workload], strict=True)
        ]
        lines.append(
            f"| {WORKLOADS[workload]} | "
            + " | ".join(cells)
            + f" | {_ratio(medians[-1], medians[0])} |"
        )
    if any(n is not None for ns in counts.values() for n in ns):
        lines += ["", "[n]: customers in the response at that size."]
    return lines


def _statements_table(statements: dict[str, dict[str, int]]) -> list[str]:
    lines = ["| workload | Partner Hub | naive baseline |", "| --- | ---: | ---: |"]
    for workload in ("directory", "filtered", "detail", "dashboard"):
        ours = statements["ours"].get(workload)
        naive = statements["naive"].get(workload, ours)
        lines.append(f"| {WORKLOADS[workload]} | {ours} | {naive} |")
    return lines


def markdown(backend: str, report: dict[str, Any]) -> str:
    sizes = report["sizes"]
    largest = max(sizes, key=lambda k: len(sizes[k]["servers"]))
    servers = sizes[largest]["servers"]
    versions = ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items())
    out = [
        f"### {backend}, {int(largest):,} customers ({report['date']})",
        "",
        f"Machine: {report['machine']}; {versions}.",
        "",
        "Sequential requests over one keep-alive HTTP connection:",
        "",
        *_latency_table(servers),
        "",
        "Throughput (wrk, keep-alive, as many server workers as cores):",
        "",
        *_load_table(servers),
        "",
        "Peak RSS of each server (all workers): "
        + ", ".join(f"{SERVERS[s]} {v['peak_rss_mb']:.0f} MB" for s, v in servers.items())
        + ".",
        "",
        "Cost flat in partner size (Partner Hub, cache off, sequential median"
        + (", the sizes side by side taking turns):" if report.get("flat") else "):"),
        "",
        *_flatness_table(report),
        "",
        "SQL statements per request:",
        "",
        *_statements_table(sizes[largest]["statements"]),
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1])
    report = json.loads(path.read_text())
    print(markdown(path.stem.rsplit("-", 1)[-1], report))
