"""Running the app under uvicorn: TCP_NODELAY sockets, graceful shutdown, one or N workers.

Sockets: uvicorn's own multi-worker socket has ``proto`` 0 (uvicorn issue #3149, open in 0.54)
and asyncio only sets ``TCP_NODELAY`` on accepted sockets whose ``proto`` is ``IPPROTO_TCP``, so
every keep-alive response after a connection's first then waited ~40 ms for the client's delayed
ACK (issue 8's load test). Partner Hub binds its sockets itself, as TCP sockets.

Workers (``--workers N``, N > 1): ``graph.supervisor`` gives each worker a listening socket of
its own with ``SO_REUSEPORT``, so the kernel spreads connections across workers; with one shared
socket whichever worker's accept loop woke first drained it, and at 32 connections one worker
often held every connection (issue 17).

Shutdown (SIGTERM or SIGINT): the server stops accepting, answers the requests that arrive on
its open keep-alive connections for a short drain with ``Connection: close`` (closing an idle
connection at once races the client's next request on it), finishes the requests in flight for
at most ``shutdown_grace`` seconds, runs the app's shutdown and exits 0.

Writes: with httptools, a response's head and body leave in one socket send, not two
(graph/coalesce.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

# How long a stopping server keeps serving requests on its open keep-alive connections (each
# answered with ``Connection: close``) before closing the idle ones; within the grace.
DRAIN_SECONDS = 1.0


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket (``IPPROTO_TCP``) that worker processes can inherit; with
    ``reuse_port`` one of several sockets on the same port, between which the kernel spreads
    incoming connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class Draining:
    """ASGI wrapper: once the server is stopping, every response closes its connection."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: uvicorn.Server | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Any) -> None:
            stopping = self.server is not None and self.server.should_exit
            if message["type"] == "http.response.start" and stopping:
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, with a drain before its shutdown and exit status 0 after a signal."""

    grace: float = 10.0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting; uvicorn closes them again (a no-op)
        for sock in sockets or []:
            sock.close()
        loop = asyncio.get_running_loop()
        started = loop.time()
        drain_until = started + min(DRAIN_SECONDS, self.grace)
        # uvicorn's state has no event for "a connection closed": poll, as its shutdown does.
        while self.server_state.connections and loop.time() < drain_until and not self.force_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        left = self.grace - (loop.time() - started)
        self.config.timeout_graceful_shutdown = max(0, math.ceil(left))
        await super().shutdown(sockets=None)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn raises the captured signal again once shut down, so a graceful stop ended
        # with -SIGTERM; a process manager expects 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def http_protocol(name: str) -> str | type[asyncio.Protocol]:
    """uvicorn's ``http`` setting for ``name`` ("auto", "httptools" or "h11"): httptools' own
    protocol writing each response's head with its body (graph/coalesce.py) when httptools is
    installed; otherwise the name, for uvicorn to resolve (to h11, or to its own error)."""
    if name == "h11":
        return name
    try:
        from graph.coalesce import CoalescingHttpToolsProtocol
    except ImportError:  # no httptools
        return name
    return CoalescingHttpToolsProtocol


def server_for(app: str, *, factory: bool = False) -> GracefulServer:
    """A graceful uvicorn server of the ASGI app ``module:attribute``."""
    from uvicorn.importer import import_from_string

    from db.settings import get_settings
    from graph.logging import log_config

    settings = get_settings()
    target = import_from_string(app)
    draining = Draining(target() if factory else target)
    config = uvicorn.Config(
        draining,
        log_level="warning",
        # Every line JSON from the first (uvicorn's start-up lines included), in the workers too.
        log_config=log_config(settings.log_level),
        access_log=False,
        loop=settings.serve_loop,
        http=http_protocol(settings.serve_http),
        timeout_keep_alive=settings.serve_keep_alive_seconds,
    )
    server = GracefulServer(config)
    server.grace = settings.shutdown_grace
    draining.server = server
    return server


def serve_socket(app: str, sock: socket.socket, *, factory: bool = False) -> None:
    """Serve ``app`` on the bound socket ``sock`` in this process until a signal (blocks)."""
    server_for(app, factory=factory).run(sockets=[sock])


def serve(app: str, *, host: str, port: int, workers: int, factory: bool = False) -> int:
    """Serve the ASGI app ``module:attribute`` with ``workers`` processes (blocks); the exit
    status."""
    if workers <= 1:
        serve_socket(app, listening_socket(host, port), factory=factory)
        return 0
    from graph.supervisor import Supervisor

    return Supervisor(app, host=host, port=port, workers=workers, factory=factory).run()


def _signal_when_orphaned() -> None:
    """Linux: SIGTERM this process when its parent dies (``PR_SET_PDEATHSIG``); elsewhere the
    worker's polling of its parent pid does it."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_main(argv: list[str] | None = None) -> None:
    """A supervised worker: ``python -m graph.serving APP --fd N`` serves on the inherited
    listening socket ``N`` and stops when its supervisor is gone."""
    parser = argparse.ArgumentParser(prog="partner-hub-worker")
    parser.add_argument("app")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--supervisor", type=int, default=None, help="the supervisor's pid")
    args = parser.parse_args(argv)
    supervisor = args.supervisor or os.getppid()
    _signal_when_orphaned()
    sock = socket.socket(fileno=args.fd)
    server = server_for(args.app, factory=args.factory)

    def orphaned() -> None:  # the supervisor was killed: stop rather than serve unsupervised
        while not server.should_exit:
            if os.getppid() != supervisor:
                server.should_exit = True
            threading.Event().wait(0.5)

    threading.Thread(target=orphaned, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    worker_main()
