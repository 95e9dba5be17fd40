"""A response's JSON: the one serialiser of result data, with PostgreSQL's rendered parts in it.

A relationship rendered by PostgreSQL (``db.queries.customer_render``) reaches the result as a
``RenderedJSON``, its JSON text as the statement wrote it, exactly as orjson would write the
same values: it is written into the response as it is (``orjson.Fragment``, ~0.1 us a part),
never decoded into lists and dicts only to be encoded again (a directory page's 51 parts:
~0.14 ms and ~1,500 objects made and freed a request). Anything that serialises result data
goes through here (the response, the response cache's copy), so none can meet a
``RenderedJSON`` it does not know. (The response cache's copy of a response's data is also the
response's: ``graph.view`` writes the data once, as a ``RenderedJSON`` of those bytes.)
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from db.queries.customer_render import RenderedJSON

_dumps = orjson.dumps


def _fragment(value: Any) -> Any:
    """orjson's ``default``: only a rendered part; anything else stays unserialisable."""
    if type(value) is RenderedJSON:
        return value.fragment
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _decoded(value: Any) -> Any:
    """The standard library's ``default``: a rendered part decoded (the rare path below), and
    anything else as text, as before."""
    if type(value) is RenderedJSON:
        return json.loads(value.text)
    return str(value)


def dumps(data: Any) -> bytes:
    """``data`` (result data, or a response holding it) as JSON; raises orjson's
    ``JSONEncodeError`` on what orjson refuses (a lone surrogate)."""
    return _dumps(data, default=_fragment)


def encode_json(data: Any) -> bytes:
    """A response's JSON, whatever it holds."""
    try:
        return _dumps(data, default=_fragment)
    except orjson.JSONEncodeError:
        # A lone surrogate echoed from the request (an unknown operation name "\ud800"):
        # orjson refuses it; the standard library writes it as an escape, still JSON.
        return json.dumps(data, default=_decoded).encode()
