"""Memory under hostile documents (issue 15, finding 3): RSS after ordinary, then hostile traffic.

Runs ``partner-hub serve`` (one worker, loopback only) over the demo data in a temporary SQLite
database, sends ``--requests`` ordinary requests (the benchmark queries, the viewer, searches
with varying variables), then as many hostile ones (every document distinct: a comment filling
the document up to the character limit, the token limit, or long distinct aliases), and reads
the server's RSS from ``/proc`` after each phase. Goal: RSS after the hostile phase within
50 MB of RSS after the ordinary one.

    PYTHONPATH=$PWD python -m bench.bench_memory            # this checkout
    PYTHONPATH=$PWD python -m bench.bench_memory --code /work/main   # another checkout's code
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import QUERIES, ROOT, machine

GOAL_MB = 50
EMAIL = "full@acme.example"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "graph.cli", *args],
        env=env,
        cwd=env["PYTHONPATH"],  # `-m` puts the working directory first on the path
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout.strip()


def ordinary(i: int, customer_ids: list[str]) -> dict[str, Any]:
    kind = i % 5
    if kind == 0:
        return {
            "query": (QUERIES / "directory_page.graphql").read_text(),
            "variables": {"first": 50},
        }
    if kind == 1:
        query = (QUERIES / "license_dashboard.graphql").read_text()
        return {"query": query, "variables": {"product": "MEETINGS"}}
    if kind == 2 and customer_ids:
        query = (QUERIES / "customer_detail.graphql").read_text()
        return {"query": query, "variables": {"id": customer_ids[i % len(customer_ids)]}}
    if kind == 3:
        query = (
            "query S($s: String) { customers(first: 20, search: $s) { totalCount nodes { name } } }"
        )
        return {"query": query, "variables": {"s": f"a{i % 37}"}}
    return {"query": "query Me { viewer { id name email role } partner { name } }"}


def hostile(i: int, max_chars: int, max_tokens: int, mix: str = "limits") -> dict[str, Any]:
    """Each document distinct, each just under a limit (``mix="issue"``: issue 15's reproduction,
    a one-megabyte comment and ``{ viewer { id } }``)."""
    if mix == "issue":
        return {"query": f"# {i} {'x' * 1_000_000}\n{{ viewer {{ id }} }}"}
    kind = i % 4 if i % 20 else 2  # 5% at the token limit: validating one takes ~1.7 s of CPU
    if kind in (0, 1, 2) and i % 20:  # a comment filling the document
        head = f"query H{i} {{ viewer {{ id }} }}\n#"
        return {"query": head + "x" * (max_chars - len(head) - 10)}
    if kind == 2:  # as many tokens as allowed
        fields = " ".join(["id"] * (max_tokens - 20))
        return {"query": f"query T{i} {{ viewer {{ {fields} }} }}"}
    aliases = " ".join(f"a{i}_{k}_{'z' * 1000}: name" for k in range(25))
    return {"query": f"query A{i} {{ customers(first: 5) {{ nodes {{ id {aliases} }} }} }}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per phase")
    parser.add_argument("--code", default=str(ROOT), help="checkout whose code the server runs")
    parser.add_argument("--max-chars", type=int, default=65_536, help="hostile document size")
    parser.add_argument("--max-tokens", type=int, default=4_000)
    parser.add_argument("--mix", choices=["limits", "issue"], default="limits")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": args.code,
            "PARTNER_HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "PARTNER_HUB_NOW": "2026-11-26T00:00:00Z",
            "PARTNER_HUB_COST_PER_MINUTE": "100000000",
            "PARTNER_HUB_LOG_LEVEL": "warning",
        }
        cli(env, "seed", "--demo", "--no-progress")
        token = cli(env, "token", "issue", EMAIL).split()[-1]
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "graph.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=args.code,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            report = run(server.pid, port, token, args)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(report)


def run(pid: int, port: int, token: str, args: argparse.Namespace) -> str:
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(300):  # bounded wait for start-up
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        page = client.post("/graphql", json={"query": "{ customers(first: 20) { nodes { id } } }"})
        ids = [n["id"] for n in page.json()["data"]["customers"]["nodes"]]
        started = rss_mb(pid)
        statuses: dict[str, int] = {}
        t0 = time.perf_counter()
        for i in range(args.requests):
            response = client.post("/graphql", json=ordinary(i, ids))
            statuses[f"ordinary {response.status_code}"] = (
                statuses.get(f"ordinary {response.status_code}", 0) + 1
            )
        after_ordinary = rss_mb(pid)
        t1 = time.perf_counter()
        for i in range(args.requests):
            response = client.post(
                "/graphql", json=hostile(i, args.max_chars, args.max_tokens, args.mix)
            )
            statuses[f"hostile {response.status_code}"] = (
                statuses.get(f"hostile {response.status_code}", 0) + 1
            )
        after_hostile = rss_mb(pid)
        t2 = time.perf_counter()
    growth = after_hostile - after_ordinary
    verdict = "met" if growth <= GOAL_MB else "NOT met"
    return "\n".join(
        [
            f"bench_memory: {machine()}; code {args.code}; {args.requests} requests a phase;"
            f" hostile mix {args.mix}",
            f"RSS at start (after a warm-up request): {started:.0f} MB",
            f"RSS after {args.requests} ordinary: {after_ordinary:.0f} MB ({t1 - t0:.1f} s)",
            f"RSS after {args.requests} hostile: {after_hostile:.0f} MB ({t2 - t1:.1f} s)",
            f"growth from hostile documents: {growth:+.0f} MB (goal <= {GOAL_MB} MB: {verdict})",
            f"statuses: {statuses}",
        ]
    )


if __name__ == "__main__":
    main()
