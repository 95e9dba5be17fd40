"""Load over real HTTP: throughput under concurrency with wrk, latency of single requests.

``run_wrk`` drives ``bench/wrk_post.lua`` and also reports wrk's own CPU use, so a table can show
that the load generator was not the bottleneck (it shares the machine with the server).
``latency`` times requests one at a time over a keep-alive connection, the way a single user's
browser sees the server.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import shutil
import statistics
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")


def mixed(
    reads: list[dict[str, Any]], writes: list[dict[str, Any]], every: int = 20
) -> list[dict[str, Any]]:
    """Bodies for a mixed workload: every ``every``-th request is the next of ``writes`` (in
    turn), the others cycle through ``reads``; whole cycles, so each read gets the same share."""
    cycle: list[dict[str, Any]] = []
    n_reads = len(reads) * (every - 1) * len(writes)
    for i in range(n_reads):
        cycle.append(reads[i % len(reads)])
        if (i + 1) % (every - 1) == 0:
            cycle.append(writes[(i // (every - 1)) % len(writes)])
    return cycle


def _run_measured(cmd: list[str], env: dict[str, str]) -> tuple[int, str, float, float]:
    """Run ``cmd`` with ``env`` added: exit code, output, CPU seconds (user + system), wall seconds.

    ``os.wait4`` returns the resource usage of exactly this child, which the process-wide
    ``RUSAGE_CHILDREN`` totals would mix with any other child reaped meanwhile.
    """
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        dup = [(os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, out.fileno(), 2)]
        pid = os.posix_spawnp(cmd[0], cmd, {**os.environ, **env}, file_actions=dup)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        output = out.read().decode(errors="replace")
    return os.waitstatus_to_exitcode(status), output, usage.ru_utime + usage.ru_stime, wall


async def run_wrk(
    url: str,
    bodies: list[dict[str, Any]],
    token: str | None,
    connections: int,
    seconds: int,
    threads: int | None = None,
    *,
    check_bodies: bool = True,
    timeout_s: int = 30,
) -> dict[str, Any]:
    """POST ``bodies`` in turn on ``connections`` keep-alive connections for ``seconds``.

    One wrk thread per connection up to 2 (this is a 2-core machine shared with the server).
    ``timeout_s`` is long so that slow responses are measured as latency rather than dropped as
    wrk timeouts. Returns wrk_post.lua's summary plus ``wrk_cpu_percent`` (of one core).
    """
    threads = threads or min(connections, 2)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    lines = "".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies)
    with tempfile.NamedTemporaryFile("w", prefix="wrk-bodies-", suffix=".jsonl") as file:
        file.write(lines)
        file.flush()
        cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
        cmd += ["--timeout", f"{timeout_s}s", "-s", str(WRK_SCRIPT), url, "--", file.name]
        cmd.append("body" if check_bodies else "status")
        env = {"WRK_BEARER_TOKEN": token or ""}
        code, output, cpu_s, wall_s = await asyncio.to_thread(_run_measured, cmd, env)
    summaries = [line for line in output.splitlines() if line.startswith("{")]
    if code != 0 or not summaries:
        raise RuntimeError(f"wrk failed ({code}): {output[-2000:]}")
    return {
        **json.loads(summaries[-1]),
        "connections": connections,
        "threads": threads,
        "wrk_cpu_s": round(cpu_s, 3),
        "wrk_cpu_percent": round(cpu_s / wall_s * 100, 1),
    }


async def interleaved_latency(
    targets: dict[str, tuple[str, Any, Any]], runs: int, warmup: int = 5
) -> dict[str, dict[str, Any]]:
    """Sequential requests over one keep-alive connection per server, taking turns (the order
    rotates every round), so that a shared machine's drift falls on every server alike."""
    clients = {}
    for name, (_, _, token) in targets.items():
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        clients[name] = httpx.AsyncClient(headers=headers, timeout=120)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    errors = dict.fromkeys(targets, 0)
    names = list(targets)
    try:
        for round_ in range(warmup + runs):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                url, body, _ = targets[name]
                started = time.perf_counter()
                response = await clients[name].post(url, content=json.dumps(body).encode())
                elapsed = (time.perf_counter() - started) * 1000
                if round_ >= warmup:
                    samples[name].append(elapsed)
                    errors[name] += not response.is_success or "errors" in response.json()
    finally:
        for client in clients.values():
            await client.aclose()
    return {name: summarize(samples[name], errors[name]) for name in targets}


async def lean_latency(
    targets: dict[str, tuple[str, Any, Any]],
    runs: int,
    warmup: int = 20,
    think_s: float = 0.0,
    turn: int = 1,
) -> dict[str, dict[str, Any]]:
    """``interleaved_latency`` (taking turns, one keep-alive connection per server) from the
    standard library's ``http.client`` in a thread of its own: a client that costs ~0.1 ms a
    request where httpx on asyncio cost ~0.7-1 ms (parsing the answer included), the same for
    every server, which pulled every ratio towards 1. wrk on one connection was not used: its
    coordinated-omission correction turns one 70 ms pause of a server into ~35 samples of a
    sequential user's latencies. ``think_s``: a pause before each request (not timed), as a user
    reading the last answer would leave (``bench.bench_idle``). ``turn``: requests a server
    answers in a row before the next server's turn; 1 (request by request) measures every
    request right after another server's, with the caches it left (``bench.bench_idle``: on
    these VMs that alone makes a request up to 1.5x slower); a longer turn measures what one
    user's consecutive requests to one server see, still interleaved against the machine's
    drift. Every sample is kept, the first of each turn included."""
    return await asyncio.to_thread(_lean_latency, targets, runs, warmup, think_s, turn)


def _lean_latency(
    targets: dict[str, tuple[str, Any, Any]], runs: int, warmup: int, think_s: float, turn: int
) -> dict[str, dict[str, Any]]:
    connections, requests = {}, {}
    for name, (url, body, token) in targets.items():
        parts = urllib.parse.urlsplit(url)
        connections[name] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        requests[name] = (parts.path or "/", json.dumps(body).encode(), headers)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    errors = dict.fromkeys(targets, 0)
    names = list(targets)
    try:
        for round_ in range(math.ceil((warmup + runs) / turn)):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                path, body, headers = requests[name]
                for index in range(round_ * turn, min((round_ + 1) * turn, warmup + runs)):
                    if think_s:
                        time.sleep(think_s)
                    started = time.perf_counter()
                    connections[name].request("POST", path, body, headers)
                    response = connections[name].getresponse()
                    answer = response.read()
                    elapsed = (time.perf_counter() - started) * 1000
                    if index >= warmup:
                        samples[name].append(elapsed)
                        errors[name] += not 200 <= response.status < 300 or b'"errors"' in answer
    finally:
        for connection in connections.values():
            connection.close()
    return {name: summarize(samples[name], errors[name]) for name in targets}


def summarize(samples: list[float], errors: int) -> dict[str, Any]:
    samples = sorted(samples)
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[math.ceil(len(samples) * 0.99) - 1], 2),
        "mean_ms": round(statistics.fmean(samples), 2),
        "errors": errors,
        "runs": len(samples),
    }
