"""``serve`` parses HTTP with httptools (C, uvicorn's protocol writing each response in one
send: graph/coalesce.py) on asyncio's loop by default; settings pick h11 or
uvloop (which starved some requests under load), and a wrong value is refused before anything
serves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from uvicorn.protocols.http.h11_impl import H11Protocol

from db.settings import Settings, get_settings
from graph.coalesce import CoalescingHttpToolsProtocol
from graph.serving import server_for


async def _app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
    raise AssertionError("never called")


def make_app() -> object:
    return _app


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _loaded(monkeypatch: pytest.MonkeyPatch, **env: str) -> object:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    config = server_for("tests.test_serve_loop:make_app", factory=True).config
    config.load()
    return config


def _loop_module(config: object) -> str:
    loop = config.get_loop_factory()()  # type: ignore[attr-defined]
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        return type(loop).__module__
    finally:
        loop.close()


def test_serve_defaults_to_httptools_on_asyncios_loop(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    config = _loaded(monkeypatch)
    assert config.http_protocol_class is CoalescingHttpToolsProtocol  # type: ignore[attr-defined]
    assert not _loop_module(config).startswith("uvloop")


def test_settings_choose_h11_or_uvloop(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    config = _loaded(monkeypatch, PARTNER_HUB_SERVE_LOOP="uvloop", PARTNER_HUB_SERVE_HTTP="h11")
    assert config.http_protocol_class is H11Protocol  # type: ignore[attr-defined]
    assert _loop_module(config).startswith("uvloop")


@pytest.mark.parametrize(
    ("name", "value"), [("SERVE_LOOP", "trio"), ("SERVE_HTTP", "h2"), ("SERVE_HTTP", "")]
)
def test_an_unknown_loop_or_parser_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"PARTNER_HUB_{name}", value)
    with pytest.raises(ValidationError):
        Settings()


def test_serve_keeps_idle_connections_longer_than_the_proxies_in_front(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """An idle keep-alive connection outlives a proxy's (nginx, load balancers: 60 s) and a
    client pool's (httpx: 5 s): the server never closes one a request may be on its way on."""
    config = _loaded(monkeypatch)
    assert config.timeout_keep_alive == 75  # type: ignore[attr-defined]
    config = _loaded(monkeypatch, PARTNER_HUB_SERVE_KEEP_ALIVE_SECONDS="7")
    assert config.timeout_keep_alive == 7  # type: ignore[attr-defined]
    monkeypatch.setenv("PARTNER_HUB_SERVE_KEEP_ALIVE_SECONDS", "0")
    get_settings.cache_clear()
    with pytest.raises(ValidationError):
        get_settings()
