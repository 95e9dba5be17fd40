"""Structured logs (one JSON object per line, from every logger) and the request-id / access-log
middleware.

``log_config`` is one ``logging.config.dictConfig`` for the whole process: a JSON handler on the
root logger and every library logger (uvicorn's error and access loggers, strawberry's, asyncio's,
ours) without handlers of its own, propagating to it. ``partner-hub serve`` hands it to uvicorn,
and the app's lifespan applies it again. A traceback travels inside its line, in ``exc``. Lines
logged while a request is handled carry its ``request_id``; a client's ``X-Request-ID`` is used
only when short and plain (1-64 of ``[A-Za-z0-9._-]``), else replaced by a generated one.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import time
from contextvars import ContextVar
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


_STANDARD |= {"color_message"}  # uvicorn's copy of the message with terminal colours
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "strawberry", "asyncio")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if entry.get("request_id") is None and (current := request_id_var.get()) is not None:
            entry["request_id"] = current
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a library's bad format arguments must not lose the line
        return f"{record.msg!s} {record.args!r}"


def log_config(level: str = "info") -> dict[str, Any]:
    """The process's logging configuration (``dictConfig``): JSON lines on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "graph.logging.JsonFormatter"}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["json"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True} for name in (*LIBRARY_LOGGERS, "partner_hub")
        },
    }


def configure_logging(level: str = "info") -> None:
    logging.config.dictConfig(log_config(level))


def request_id_from(incoming: bytes | None) -> str:
    """The client's request id when short and plain, else a generated one."""
    text = (incoming or b"").decode("latin-1")
    # 128 random bits as 32 hex digits (``uuid4().hex`` built a UUID object for the same)
    return text if _PLAIN_ID.fullmatch(text) else os.urandom(16).hex()


access_log = logging.getLogger("partner_hub.access")


class RequestLogMiddleware:
    """Gives every request an id (``X-Request-ID``, echoed back) and logs one line for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = request_id_from(headers.get(b"x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None
        failed = True

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            failed = False
        finally:
            if status is None:
                # Nothing was answered: the app failed (500), or it returned without an answer
                # because the client had gone (left while its body arrived or while it waited
                # for admission): 499, nginx's "client closed request", so that a dashboard of
                # server errors does not count clients that left.
                status = 500 if failed else 499
            extra = {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            if codes := state.get("ph_error_codes"):
                extra["error_codes"] = codes
            access_log.info("request", extra=extra)
            request_id_var.reset(token)
