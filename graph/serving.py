"""Running the app under uvicorn, with worker processes that keep TCP_NODELAY.

With ``workers > 1`` uvicorn binds the listening socket itself with ``proto`` 0 (uvicorn issue
#3149, open in 0.54). asyncio only sets ``TCP_NODELAY`` on accepted sockets whose ``proto`` is
``IPPROTO_TCP``, so every keep-alive response after a connection's first then waited ~40 ms for
the client's delayed ACK (found by issue 8's load test: three requests on one connection took
0.9, 44 and 44 ms with two workers, 0.9, 0.5 and 0.5 ms with one). Partner Hub binds the socket
itself, as a TCP socket, and hands it to uvicorn's supervisor.
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (``IPPROTO_TCP``) that worker processes can inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def serve(app: str, *, host: str, port: int, workers: int, factory: bool = False) -> None:
    """Serve the ASGI app ``module:attribute`` with ``workers`` processes (blocks)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from db.settings import get_settings
    from graph.logging import log_config

    config = uvicorn.Config(
        app,
        factory=factory,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # Every line JSON from the first (uvicorn's start-up lines included), in the workers too.
        log_config=log_config(get_settings().log_level),
        access_log=False,
    )
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[listening_socket(host, port)]).run()
