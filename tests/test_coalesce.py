"""A response's head and body leave in one socket send (graph/coalesce.py), and nothing else
changes: the same bytes as uvicorn's own httptools protocol for every kind of answer, streams
still stream chunk by chunk under back-pressure, and a head sent alone is not held back.

In-process servers on real sockets, the stock protocol beside the coalescing one; the count of
data segments a client received (``TCP_INFO``: with TCP_NODELAY one write is one segment on
loopback) is what a client sees of the writes, so the last test checks it on real
``partner-hub serve`` processes too.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import orjson
import pytest
import uvicorn
from starlette.responses import JSONResponse, Response, StreamingResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from graph.coalesce import CoalescingHttpToolsProtocol
from graph.serving import Draining, http_protocol, listening_socket
from tests.serve_support import VIEWER, Serve, database_with_token, free_port

PROTOCOLS = [HttpToolsProtocol, CoalescingHttpToolsProtocol]
BODY = orjson.dumps({"data": {"__typename": "Query"}})
gates: dict[str, asyncio.Event] = {}
pulled: list[int] = []


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Answers by path, each the way the Partner Hub app does or a way an app may fail."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/json":
        while (await receive())["more_body"]:
            pass
        await JSONResponse({"data": {"__typename": "Query"}})(scope, receive, send)
    elif path == "/304":
        await Response(status_code=304, headers={"etag": '"x"'})(scope, receive, send)
    elif path == "/204":
        await Response(status_code=204)(scope, receive, send)
    elif path == "/close":
        await Response(b"bye", headers={"connection": "close"})(scope, receive, send)
    elif path == "/stream":
        await StreamingResponse(_gated_chunks(), media_type="text/csv")(scope, receive, send)
    elif path == "/endless":
        await StreamingResponse(_endless(), media_type="text/csv")(scope, receive, send)
    else:
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if path == "/raise":
            raise RuntimeError("after the start")
        if path == "/wait":
            await gates["wait"].wait()
            await send({"type": "http.response.body", "body": b"later"})
        # "/return": returns without a body; uvicorn closes the connection


async def _gated_chunks() -> AsyncIterator[bytes]:
    for n in range(3):
        await gates[f"chunk{n}"].wait()
        yield f"row {n}\n".encode()


async def _endless() -> AsyncIterator[bytes]:
    chunk = b"x" * 65536
    while True:
        pulled.append(1)
        yield chunk
        await asyncio.sleep(0)


@asynccontextmanager
async def serving(protocol: type[asyncio.Protocol]) -> AsyncIterator[int]:
    """A uvicorn server of ``app`` with ``protocol`` on a TCP_NODELAY socket: its port."""
    sock = listening_socket("127.0.0.1", 0)
    config = uvicorn.Config(
        Draining(app), http=protocol, lifespan="off", log_level="critical", date_header=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await _until(lambda: server.started)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


def data_segments_in(sock: socket.socket) -> int:
    """``tcpi_data_segs_in`` of ``struct tcp_info`` (Linux 4.6+)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, 152)[0])


def exchange(port: int, request: bytes, *, method: str = "GET", to_eof: bool = False) -> bytes:
    """The raw bytes answering ``request``: one whole response (parsed by an h11 client that
    sent ``method``, so HEAD and 304 end where they should), or all until the server closes."""
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    parser.send(h11.EndOfMessage())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            if to_eof:
                continue
            parser.receive_data(chunk)
            while (event := parser.next_event()) is not h11.NEED_DATA:
                if isinstance(event, h11.EndOfMessage):
                    return received
        return received


def _get(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def _post_json(extra: str = "") -> bytes:
    head = f"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n{extra}\r\n"
    return head.encode() + BODY


async def _answers(protocol: type[asyncio.Protocol]) -> dict[str, bytes]:
    async with serving(protocol) as port:

        def run(request: bytes, **how: Any) -> bytes:
            return exchange(port, request, **how)

        cases: dict[str, Callable[[], bytes]] = {
            "json": lambda: run(_post_json(), method="POST"),
            "head": lambda: run(_get("/json", "HEAD"), method="HEAD"),
            "304": lambda: run(_get("/304")),
            "204": lambda: run(_get("/204")),
            "close": lambda: run(_get("/close"), to_eof=True),
            "http/1.0": lambda: run(
                b"POST /json HTTP/1.0\r\nContent-Length: 0\r\n\r\n", to_eof=True
            ),
            "pipelined": lambda: run(_get("/204") + _get("/304") + _get("/close"), to_eof=True),
            "raise": lambda: run(_get("/raise"), to_eof=True),
            "return": lambda: run(_get("/return"), to_eof=True),
            "malformed": lambda: run(b"GARBAGE\r\n\r\n", to_eof=True),
        }
        answers = {name: await asyncio.to_thread(case) for name, case in cases.items()}
        answers["100-continue"] = await asyncio.to_thread(_continued, port)
        return answers


def _continued(port: int) -> bytes:
    """``Expect: 100-continue``: the interim line first, then the body is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_post_json("Expect: 100-continue\r\nConnection: close\r\n")[: -len(BODY)])
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
        return interim + rest


async def test_every_kind_of_answer_is_byte_identical_to_uvicorns_own() -> None:
    stock, coalescing = [await _answers(protocol) for protocol in PROTOCOLS]
    assert coalescing == stock
    assert stock["json"].endswith(BODY)
    assert b"\r\ncontent-length: 5\r\n" in stock["raise"]  # the head, then the close
    assert stock["malformed"].startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize(
    ("protocol", "sends"), [(HttpToolsProtocol, 2), (CoalescingHttpToolsProtocol, 1)]
)
async def test_a_response_is_one_send_on_keep_alive(
    protocol: type[asyncio.Protocol], sends: int
) -> None:
    async with serving(protocol) as port:

        def segments() -> list[int]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                counts = []
                for _ in range(3):
                    before = data_segments_in(sock)
                    sock.sendall(_post_json())
                    received = b""
                    while not received.endswith(BODY):
                        received += sock.recv(65536)
                    counts.append(data_segments_in(sock) - before)
                return counts

        assert await asyncio.to_thread(segments) == [sends] * 3


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def _reader(port: int, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    return reader, writer


async def test_a_stream_is_written_chunk_by_chunk() -> None:
    async with serving(CoalescingHttpToolsProtocol) as port:
        for n in range(3):
            gates[f"chunk{n}"] = asyncio.Event()
        reader, writer = await _reader(port, _get("/stream"))
        try:
            # the head waits for nothing: it leaves at the end of the step that sent it
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
            for n in range(3):
                gates[f"chunk{n}"].set()
                chunk = f"row {n}\n".encode()
                expected = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
            assert await asyncio.wait_for(reader.readexactly(5), 5) == b"0\r\n\r\n"
        finally:
            writer.close()


async def test_a_head_sent_alone_is_not_held_back() -> None:
    async with serving(CoalescingHttpToolsProtocol) as port:
        gates["wait"] = asyncio.Event()
        reader, writer = await _reader(port, _get("/wait"))
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head == b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\ncontent-length: 5\r\n\r\n"
            gates["wait"].set()
            assert await asyncio.wait_for(reader.readexactly(5), 5) == b"later"
        finally:
            writer.close()


async def test_a_stream_to_a_client_that_does_not_read_waits_for_it() -> None:
    async with serving(CoalescingHttpToolsProtocol) as port:
        pulled.clear()
        reader, writer = await _reader(port, _get("/endless"))
        try:
            await asyncio.sleep(0.5)
            stalled = len(pulled)
            await asyncio.sleep(0.5)
            assert len(pulled) == stalled < 1000  # paused: flow control, not 64 MB buffered
            while len(pulled) == stalled:  # reading drains it: it streams again
                await asyncio.wait_for(reader.read(65536), 5)
        finally:
            writer.close()


async def test_partner_hub_serve_answers_graphql_in_one_send(tmp_path: Path) -> None:
    # Both ways it runs: one process, and a supervisor's workers (graph.serving.server_for).
    async with database_with_token("sqlite", tmp_path) as (url, token):
        for workers in (1, 2):
            serve = Serve(url, free_port(), tmp_path / f"serve{workers}.log", workers=workers)
            serve.start()
            try:
                await serve.wait_up()
                counts, csv = await asyncio.to_thread(_graphql_then_csv, serve.port, token)
            finally:
                serve.kill()
            assert counts == [1, 1, 1], serve.tail()
            assert csv.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in csv
            assert b"\r\nname,external_id," in csv and csv.endswith(b"\r\n0\r\n\r\n")


def _graphql_then_csv(port: int, token: str) -> tuple[list[int], bytes]:
    body = orjson.dumps({"query": VIEWER})
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    counts = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(3):
            before = data_segments_in(sock)
            sock.sendall(request)
            received = b""
            while not received.endswith(b"}}}"):
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received
            counts.append(data_segments_in(sock) - before)
        sock.sendall(
            f"GET /export/customers.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        csv = b""
        while chunk := sock.recv(65536):
            csv += chunk
    return counts, csv


def test_without_httptools_uvicorn_picks_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    assert http_protocol("auto") is CoalescingHttpToolsProtocol
    assert http_protocol("httptools") is CoalescingHttpToolsProtocol
    assert http_protocol("h11") == "h11"
    monkeypatch.setitem(sys.modules, "graph.coalesce", None)  # its import fails, like httptools'
    assert [http_protocol(name) for name in ("auto", "httptools")] == ["auto", "httptools"]
