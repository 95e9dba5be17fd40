"""``partner-hub serve --workers N`` listens on a TCP socket, so its connections get TCP_NODELAY.

uvicorn's own multi-worker socket has ``proto`` 0 and asyncio skips TCP_NODELAY on the sockets it
accepts from it: every keep-alive response after the first then waits for the client's delayed
ACK (~40 ms). The check here is the one that matters, on a socket accepted the way a worker
accepts it (``asyncio.start_server(sock=...)``).
"""

from __future__ import annotations

import asyncio
import socket

from graph.serving import listening_socket


async def nodelay_of_accepted(sock: socket.socket) -> int:
    """TCP_NODELAY of a connection asyncio accepted from the listening socket ``sock``."""
    sock.listen()
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        value = await asyncio.wait_for(seen, 10)
        writer.close()
        return value
    finally:
        server.close()
        await server.wait_closed()


async def test_connections_accepted_from_the_workers_socket_have_tcp_nodelay() -> None:
    assert await nodelay_of_accepted(listening_socket("127.0.0.1", 0)) != 0


async def test_a_socket_bound_like_uvicorns_would_not() -> None:
    # The flaw graph.serving works around, so the test above cannot pass by accident.
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plain.bind(("127.0.0.1", 0))
    assert await nodelay_of_accepted(plain) == 0


async def test_each_workers_reuseport_socket_keeps_tcp_nodelay() -> None:
    # graph.supervisor gives each worker its own socket on the port (SO_REUSEPORT)
    first = listening_socket("127.0.0.1", 0, reuse_port=True)
    second = listening_socket("127.0.0.1", first.getsockname()[1], reuse_port=True)
    first.close()
    assert await nodelay_of_accepted(second) != 0
