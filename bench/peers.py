"""Servers the load benchmarks talk to over HTTP: PostGraphile, Partner Hub and any ASGI app.

Each one runs as a child process in its own session (process group), so stopping it also stops
the workers it forked, and a failed benchmark never leaves a server holding a port. The URL it
yields is an ``Endpoint``: a plain ``str`` that also carries the PID whose process tree
``peak_rss`` samples (uvicorn and PostGraphile cluster workers are children of that PID).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import NOW, PG_BASE, ROOT

POSTGRAPHILE_DIR = ROOT / "bench" / "peers" / "postgraphile"
POSTGRAPHILE_BIN = POSTGRAPHILE_DIR / "node_modules" / ".bin" / "postgraphile"
PG_URL = PG_BASE.replace("+asyncpg", "")  # libpq-style URL for PostGraphile
VENV_BIN = Path(sys.executable).parent
# Cost rate limit for load tests: a benchmark token spends millions of cost points a minute, and
# a refused request would be measured as a fast error instead of as the work it stands for.
UNLIMITED_COST_PER_MINUTE = 10**12
READY_TIMEOUT_S = 120.0


class Endpoint(str):
    """A server's URL that also remembers the PID at the root of the server's process tree."""

    pid: int

    def __new__(cls, url: str, pid: int) -> Endpoint:
        endpoint = super().__new__(cls, url)
        endpoint.pid = pid
        return endpoint


def ensure_postgraphile() -> Path:
    """The PostGraphile 4 CLI, installed with npm into ``bench/peers/postgraphile`` on first use.

    It lives outside the Python environment (and outside git) because only the load benchmarks
    need it; when it is already there this is one ``stat``.
    """
    if not POSTGRAPHILE_BIN.exists():
        POSTGRAPHILE_DIR.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to install PostGraphile (apt-get install npm)")
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "postgraphile@4"],
            cwd=POSTGRAPHILE_DIR,
            check=True,
        )
    return POSTGRAPHILE_BIN


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def _wait_ready(
    process: asyncio.subprocess.Process, url: str, body: dict[str, Any] | None
) -> str | None:
    """Poll until ``url`` answers 200 (GET, or POST ``body``); else say why it never did."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                return f"server exited with status {process.returncode}"
            with contextlib.suppress(httpx.TransportError):
                response = await (client.post(url, json=body) if body else client.get(url))
                if response.status_code == 200:
                    return None
            await asyncio.sleep(0.2)
    return f"{url} not ready after {READY_TIMEOUT_S:.0f} s"


def _tail(log: str) -> str:
    return Path(log).read_text(errors="replace")[-2000:]


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole process group (workers included), SIGKILL it if it lingers."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
            return


@contextlib.asynccontextmanager
async def serve_command(
    cmd: list[str],
    env: Mapping[str, str],
    ready_url: str,
    *,
    ready_body: dict[str, Any] | None = None,
    base_url: str | None = None,
    cwd: Path = ROOT,
) -> AsyncIterator[Endpoint]:
    """Run ``cmd`` (with ``env`` over ours) until the block ends; yield once ``ready_url`` is 200.

    The port must be free first: otherwise a stale server from an earlier run would answer the
    readiness check and be benchmarked instead. Output goes to a temporary log, shown on failure.
    """
    port = httpx.URL(ready_url).port
    if port is not None and not _port_is_free(port):
        raise RuntimeError(f"port {port} is already in use")
    with tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log") as log:
        process = await asyncio.create_subprocess_exec(
            *cmd,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            failure = await _wait_ready(process, ready_url, ready_body)
            if failure:
                raise RuntimeError(f"{' '.join(cmd)}: {failure}\n{_tail(log.name)}")
            yield Endpoint(base_url or ready_url, process.pid)
        finally:
            await _stop(process)


@contextlib.asynccontextmanager
async def postgraphile(database: str, port: int, workers: int = 1) -> AsyncIterator[Endpoint]:
    """PostGraphile 4 over ``database`` as it would run in production; yields its /graphql URL.

    No GraphiQL, no query log, no schema watching, ``NODE_ENV=production`` (express and graphql-js
    skip development checks). ``workers`` > 1 uses ``--cluster-workers`` so it can use as many
    cores as a ``--workers N`` Partner Hub. Default mutations stay on: ``createCustomerTag`` is
    its counterpart of our tag attach.
    """
    cmd = [
        str(await asyncio.to_thread(ensure_postgraphile)),
        *("-c", f"{PG_URL}/{database}", "-s", "public"),
        *("--host", "127.0.0.1", "--port", str(port)),
        "--disable-query-log",
        "--disable-graphiql",
        *(["--cluster-workers", str(workers)] if workers > 1 else []),
    ]
    url = f"http://127.0.0.1:{port}/graphql"
    env = {"NODE_ENV": "production"}
    async with serve_command(cmd, env, url, ready_body={"query": "{ __typename }"}) as endpoint:
        yield endpoint


def hub_env(database_url: str, **extra: str) -> dict[str, str]:
    """``PARTNER_HUB_*`` settings for a benchmarked server: pinned clock, quiet log, no rate
    limit (see ``UNLIMITED_COST_PER_MINUTE``). Also fits the naive baseline app."""
    return {
        "PARTNER_HUB_DATABASE_URL": database_url,
        "PARTNER_HUB_NOW": NOW.isoformat(),
        "PARTNER_HUB_LOG_LEVEL": "warning",
        "PARTNER_HUB_COST_PER_MINUTE": str(UNLIMITED_COST_PER_MINUTE),
        # No overflow connections (issue 17): with 20 a worker (db/engine.py POOL_SIZES), the
        # servers of one run (3 x 2 workers x 30, PostGraphile's 2 x 10, other checkouts' tests)
        # could ask for more than PostgreSQL's max_connections (100), and a request whose
        # connection was refused failed ("too many clients"): the 12 failed requests at 32
        # connections. An overflow connection is also opened and closed per burst (a backend
        # forked per request at 32 connections); waiting for one of the 10 is cheaper.
        "PARTNER_HUB_DATABASE_POOL_OVERFLOW": "0",
        **extra,
    }


@contextlib.asynccontextmanager
async def partner_hub_server(
    database_url: str, port: int, workers: int, env: Mapping[str, str] | None = None
) -> AsyncIterator[Endpoint]:
    """``partner-hub serve`` (migrates, then uvicorn with ``workers``); yields its base URL.

    With ``PYTHONPATH`` in ``env`` (another checkout, for a before/after), the server also runs
    from the first directory of it: the workers are ``python -m graph.serving``, whose module
    search path starts with the working directory, so from this checkout's directory they ran
    this checkout's code whatever ``PYTHONPATH`` said (issue 17: "before" measured "after")."""
    cmd = [str(VENV_BIN / "partner-hub"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    settings = hub_env(database_url, **(env or {}))
    other = (env or {}).get("PYTHONPATH", "").split(os.pathsep)[0]
    cwd = Path(other) if other else ROOT
    async with serve_command(cmd, settings, f"{base}/readyz", base_url=base, cwd=cwd) as endpoint:
        yield endpoint


def serve_asgi(app: str, port: int, workers: int) -> None:
    """``app`` (an ASGI app factory) under uvicorn the way ``partner-hub serve`` runs the product
    (``graph.serving``: a TCP listening socket, so workers keep TCP_NODELAY)."""
    from graph.serving import serve

    serve(app, host="127.0.0.1", port=port, workers=workers, factory=True)


@contextlib.asynccontextmanager
async def asgi_server(
    app: str,
    port: int,
    workers: int,
    env: Mapping[str, str],
    ready_path: str = "/readyz",
) -> AsyncIterator[Endpoint]:
    """Any ASGI app factory (``module:factory``, e.g. ``bench.naive:create_naive_app``) under
    uvicorn with ``workers`` processes (see ``serve_asgi``); yields its base URL."""
    cmd = [sys.executable, "-m", "bench.peers", app, str(port), str(workers)]
    base = f"http://127.0.0.1:{port}"
    async with serve_command(cmd, env, base + ready_path, base_url=base) as endpoint:
        yield endpoint


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # the process (or thread) has just exited
        return ""


def _children(pid: int) -> list[int]:
    """Direct children, from every thread's ``children`` list (a thread may fork too)."""
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.glob("*") for c in _read(f"{t}/children").split()]


def tree_rss_mb(roots: Iterable[int]) -> float:
    """Resident memory (VmRSS) of ``roots`` and all their descendants, in MB."""
    pending, total_kb = list(roots), 0
    while pending:
        pid = pending.pop()
        resident = _read(f"/proc/{pid}/statm").split()[1:2]
        total_kb += int(resident[0]) * PAGE_KB if resident else 0
        pending.extend(_children(pid))
    return total_kb / 1024


@dataclass
class RssPeak:
    """Peak of the summed RSS seen so far; ``mb`` is final once the ``peak_rss`` block exits."""

    mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)


@contextlib.contextmanager
def peak_rss(pids: Iterable[int], interval: float = 0.1) -> Iterator[RssPeak]:
    """Sample the process trees of ``pids`` every ``interval`` s in a thread; yield the peak.

    A thread rather than an asyncio task: a busy event loop in the benchmark must not make it
    miss the peak, and reading /proc is blocking I/O anyway.
    """
    roots, peak = list(pids), RssPeak()

    def sample() -> None:
        while True:
            peak.mb = max(peak.mb, tree_rss_mb(roots))
            if peak._stop.wait(interval):
                return

    thread = threading.Thread(target=sample, name="peak-rss", daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        peak._stop.set()
        thread.join()


if __name__ == "__main__":
    serve_asgi(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
