"""uvicorn's httptools protocol, writing a response's head and body in one socket send.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two ``transport.write`` calls, and with
``TCP_NODELAY`` (graph/serving.py) two send syscalls and two packets per response. A send on
loopback TCP costs this VM ~50-150 µs of worker CPU (py-spy under wrk), so the second one was
a large share of a small response's cost. Node (PostGraphile) sends both at once.

``CoalescingHttpToolsProtocol`` wraps the connection's transport: the head write of a response
is held until the next write on the connection, which then sends both as one, or until the end
of the event-loop step that wrote it (``call_soon``) when nothing follows in that step. A
Starlette ``Response`` sends its start and its one body message without yielding in between, so
its head and body leave together; a stream's head leaves with its first chunk (or alone at the
end of the step), and every chunk is written when it is sent, as before, so back-pressure is
uvicorn's own. A close, ``write_eof`` or a write of the protocol itself (a 400 for a malformed
request) sends a held head first, so nothing is reordered or lost; the bytes are the same.

Only the head is held: the first write of a request's cycle once its response has started
(the ``100 Continue`` interim line is written before that, and passes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState


class CoalescingTransport(asyncio.Transport):
    """A connection's transport that holds the head write of the armed cycle's response until
    the next write (sent together) or the end of the loop step."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.transport = transport
        self._loop = loop
        self._cycle: RequestResponseCycle | None = None
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def arm(self, cycle: RequestResponseCycle) -> None:
        """Hold the head of ``cycle``'s response: its first write once the response started."""
        self._cycle = cycle

    def flush(self) -> None:
        """Write the held head, if any."""
        held = self._held
        if held is not None:
            self._held = None
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self.transport.write(held)

    def discard(self) -> None:
        """Forget the held head: the connection is lost, nothing can be written."""
        self._held = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            if not data:  # asyncio ignores an empty write: it neither sends nor frees the head
                return
            self._held = None
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self.transport.write(b"".join((held, data)))
            return
        cycle = self._cycle
        if cycle is not None and cycle.response_started and data:
            self._cycle = None
            self._held = bytes(data)
            self._flush = self._loop.call_soon(self.flush)
            return
        self.transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self.discard()
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.transport.get_protocol()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``CoalescingTransport``: one write per response whose
    body is sent in one message right after its start."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.coalescing: CoalescingTransport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(self.coalescing)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.coalescing is not None:
            self.coalescing.discard()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if self.coalescing is not None:
            self.coalescing.arm(cycle)
        super()._start_asgi_task(cycle, app)

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the connection over: it gets the socket's own transport.
        if self.coalescing is not None:
            self.coalescing.flush()
            self.transport = self.coalescing.transport
            self.coalescing = None
        super().handle_websocket_upgrade()
