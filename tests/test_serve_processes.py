"""``partner-hub serve`` as a process (issue 17): its workers share the connections, a worker
that dies is restarted, SIGTERM finishes the requests in flight (within the grace) and exits 0,
and one of two instances restarts during a steady stream of requests without failing one.

Black-box: real processes on free ports, over a SQLite file (PostgreSQL for the two instances).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import orjson

from tests.serve_support import (
    VIEWER,
    Serve,
    database_with_token,
    established_per_pid,
    free_port,
    graphql,
)


def partial_request(port: int, token: str) -> tuple[socket.socket, bytes]:
    """A connection whose request the server has accepted and begun reading (it answered
    ``Expect: 100-continue``), with half the body sent; the rest.

    Waiting for the interim answer matters: a connection still in the kernel's accept queue
    when the worker closes its listening socket is reset, which is not the case under test.
    """
    body = orjson.dumps({"query": VIEWER})
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(head)
    interim = b""
    while b"\r\n\r\n" not in interim:
        chunk = sock.recv(1)
        assert chunk, "closed before answering 100-continue"
        interim += chunk
    assert interim.startswith(b"HTTP/1.1 100"), interim
    half = len(body) // 2
    sock.sendall(body[:half])
    return sock, body[half:]


def response_of(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def any_alive(pids: list[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_workers_share_the_connections_and_a_dead_worker_is_replaced(
    tmp_path: Path,
) -> None:
    async with database_with_token("sqlite", tmp_path) as (url, token):
        server = Serve(url, free_port(), tmp_path / "serve.log", workers=2)
        server.start()
        try:
            await server.wait_up()
            workers = server.worker_pids()
            assert len(workers) == 2

            # when: 16 keep-alive connections, each served once
            clients = [
                httpx.AsyncClient(base_url=server.base, trust_env=False, timeout=10)
                for _ in range(16)
            ]
            try:
                statuses = await asyncio.gather(*(graphql(c, token) for c in clients))
                assert {r.status_code for r in statuses} == {200}
                # then: both workers hold some (the kernel hashes each connection to a socket)
                held = established_per_pid(server.port)
                assert set(held) == set(workers), held
                assert sum(held.values()) == 16
            finally:
                for client in clients:
                    await client.aclose()

            # when: a worker dies
            os.kill(workers[0], signal.SIGKILL)

            # then: the supervisor starts another in its slot, and requests keep being served
            # meanwhile (the dead worker's socket queues its connections for the new one)
            for _ in range(8):
                async with httpx.AsyncClient(base_url=server.base, timeout=30) as fresh:
                    assert (await graphql(fresh, token)).status_code == 200
            for _ in range(300):
                if len(server.worker_pids()) == 2:
                    break
                await asyncio.sleep(0.1)
            replaced = server.worker_pids()
            assert len(replaced) == 2 and workers[0] not in replaced and workers[1] in replaced

            # when: the supervisor itself is killed; then its workers stop (none is left serving
            # unsupervised, holding the port)
            assert server.process is not None
            server.process.kill()
            server.process.wait()
            for _ in range(200):
                if not any_alive(replaced):
                    break
                await asyncio.sleep(0.1)
            assert not any_alive(replaced)
        finally:
            server.kill()


async def test_sigterm_finishes_the_request_in_flight_within_the_grace_and_exits_0(
    tmp_path: Path,
) -> None:
    async with database_with_token("sqlite", tmp_path) as (url, token):
        server = Serve(url, free_port(), tmp_path / "serve.log", workers=2)
        server.env = {"PARTNER_HUB_SHUTDOWN_GRACE": "3"}
        server.start()
        try:
            await server.wait_up()
            # given: two requests in flight (half their body sent); one client will finish its
            # body, the other never will
            sock, rest = await asyncio.to_thread(partial_request, server.port, token)
            stalled, _ = await asyncio.to_thread(partial_request, server.port, token)

            # when: SIGTERM to the server
            stopped_at = time.monotonic()
            server.terminate()
            await asyncio.sleep(0.5)

            # then: it accepts no new connection and finishes the request
            assert await asyncio.to_thread(refused, server.port)
            sock.sendall(rest)
            answer = await asyncio.to_thread(response_of, sock)
            sock.close()
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), answer
            assert b"connection: close" in head.lower()
            assert orjson.loads(body)["data"]["viewer"]["email"] == "full@acme.example"
            # then: the stalled one holds the exit for the grace only, and the exit is 0
            assert await server.exit_status() == 0
            assert time.monotonic() - stopped_at < 3 + 5
            stalled.close()
        finally:
            server.kill()


async def test_restarting_one_of_two_instances_during_a_stream_fails_no_request(
    tmp_path: Path,
) -> None:
    async with database_with_token("postgresql", tmp_path) as (url, token):
        servers = [Serve(url, free_port(), tmp_path / f"serve{i}.log") for i in range(2)]
        for server in servers:
            server.start()
        clients = [httpx.AsyncClient(base_url=s.base, trust_env=False, timeout=30) for s in servers]
        failures: list[str] = []
        served = [0, 0]
        redirected = 0
        streaming = True

        async def stream(offset: int) -> None:
            """Requests alternating between the instances; a refused connection goes to the
            other instance (as a load balancer would); any other failure counts."""
            nonlocal redirected
            i = offset
            while streaming:
                i += 1
                for attempt in range(2):
                    target = (i + attempt) % 2
                    try:
                        response = await graphql(clients[target], token)
                    except httpx.ConnectError:
                        redirected += 1
                        continue
                    except httpx.HTTPError as error:
                        failures.append(f"{target}: {error!r}")
                        break
                    if response.status_code != 200 or "errors" in response.json():
                        failures.append(f"{target}: {response.status_code} {response.text}")
                    served[target] += 1
                    break
                else:
                    failures.append("both refused")
                await asyncio.sleep(0.005)  # steady, leaving the restarting server some CPU

        try:
            for server in servers:
                await server.wait_up()
            streams = [asyncio.create_task(stream(k)) for k in range(3)]
            await asyncio.sleep(0.5)
            # when: one instance stops (SIGTERM) and starts again, the stream running
            before = served.copy()
            servers[0].terminate()
            assert await servers[0].exit_status() == 0
            servers[0].start()
            await servers[0].wait_up()
            for _ in range(150):  # the restarted instance's first answers (a busy machine)
                if served[0] > before[0] and served[1] > before[1]:
                    break
                await asyncio.sleep(0.1)
            # then: both instances served during that time
            assert served[0] > before[0] and served[1] > before[1], (before, served, failures)
            streaming = False
            await asyncio.gather(*streams)

            # then: not one accepted request failed
            assert failures == [], failures[:5]
            assert redirected > 0  # the stream did meet the stopped instance
        finally:
            streaming = False
            for client in clients:
                await client.aclose()
            for server in servers:
                server.kill()
