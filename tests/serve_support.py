"""Real ``partner-hub serve`` processes for black-box tests: a database with a token, free ports,
start, wait, signal, and the per-process view of their connections (``ss``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from db.engine import create_engine, session_factory
from db.migrate import migrate
from db.queries.admins import issue_token
from tests.authz_support import AuthzFactory
from tests.conftest import NOW
from tests.databases import drop_pg_database, postgres_unreachable_reason, recreate_pg_database

FULL = "full@acme.example"
VIEWER = "query { viewer { email } }"
COMMAND = Path(sys.executable).parent / "partner-hub"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def require_postgres() -> None:
    reason = await postgres_unreachable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires PostgreSQL: {reason}")
        pytest.skip(reason)


@asynccontextmanager
async def database_with_token(backend: str, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A migrated database (SQLite file or a fresh PostgreSQL one) with Acme's full admin:
    its URL and a token."""
    name = f"partner_hub_test_procs_{os.getpid()}"
    if backend == "postgresql":
        await require_postgres()
        url = await recreate_pg_database(name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    engine = create_engine(url)
    try:
        await migrate(engine)  # before the servers start, so they do not migrate concurrently
        f = AuthzFactory(engine)
        admin = await f.admin(await f.partner(), FULL, "FULL_ADMIN")
        async with session_factory(engine)() as session:
            token = await issue_token(session, admin_id=admin, now=NOW)
            await session.commit()
    finally:
        await engine.dispose()
    try:
        yield url, token
    finally:
        if backend == "postgresql":
            await drop_pg_database(name)


@dataclass
class Serve:
    """One ``partner-hub serve`` process (a supervisor when ``workers`` > 1)."""

    url: str
    port: int
    log: Path
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "PARTNER_HUB_DATABASE_URL": self.url,
            "PARTNER_HUB_NOW": NOW.isoformat(),
            "PARTNER_HUB_LOG_LEVEL": "warning",
            **self.env,
        }
        command = [str(COMMAND), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "--workers", str(self.workers)], env=env, stdout=out, stderr=out
            )

    async def wait_up(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, trust_env=False, timeout=5) as client:
            for _ in range(240):  # up to ~30 s on a busy machine
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited {self.process.returncode}: {self.tail()}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.125)
        raise AssertionError(f"serve did not answer within 30 s: {self.tail()}")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def exit_status(self, within: float = 20) -> int:
        assert self.process is not None
        for _ in range(int(within / 0.05)):
            if self.process.poll() is not None:
                return self.process.returncode
            await asyncio.sleep(0.05)
        raise AssertionError(f"serve still running {within} s after SIGTERM: {self.tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            workers = self.worker_pids()
            self.process.kill()  # first, so that it restarts none of them
            self.process.wait()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def established_per_pid(port: int) -> Counter[int]:
    """Established server-side connections on ``port``, by the process that accepted them."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Counter(int(m) for m in re.findall(r"pid=(\d+)", out))


async def graphql(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )
