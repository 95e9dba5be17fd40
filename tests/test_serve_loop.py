"""``serve`` runs on uvloop and httptools by default (uvicorn's C loop and parser); settings pick
the pure-Python ones, and a wrong value is refused before anything serves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from db.settings import Settings, get_settings
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


def test_serve_defaults_to_uvloop_and_httptools(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    config = _loaded(monkeypatch)
    assert config.http_protocol_class is HttpToolsProtocol  # type: ignore[attr-defined]
    loop_factory = config.get_loop_factory()  # type: ignore[attr-defined]
    assert loop_factory is not None
    loop = loop_factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_settings_choose_the_pure_python_loop_and_parser(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    config = _loaded(monkeypatch, PARTNER_HUB_SERVE_LOOP="asyncio", PARTNER_HUB_SERVE_HTTP="h11")
    assert config.http_protocol_class is H11Protocol  # type: ignore[attr-defined]
    loop = config.get_loop_factory()()  # type: ignore[attr-defined]
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert not type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("name", "value"), [("SERVE_LOOP", "trio"), ("SERVE_HTTP", "h2"), ("SERVE_HTTP", "")]
)
def test_an_unknown_loop_or_parser_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"PARTNER_HUB_{name}", value)
    with pytest.raises(ValidationError):
        Settings()
