"""A relationship's answer rendered by PostgreSQL: the JSON the API sends, built in the statement.

``db.queries.customer_detail`` reads a customer's relationships as JSON arrays of their rows,
which Python then turns into records, API objects and, field by field, the response's
dictionaries: for a directory page of 50 that was about half of the workers' time a request
(issue 17's profile), where PostgreSQL builds the same JSON in the statement for PostGraphile.
When the document's whole selection on a relationship is made of fields that are its rows'
columns (or a fixed expression of them), the statement builds the response's own objects
instead: one JSON array of objects whose keys are the document's response names, in the
document's order, with the values as the API serialises them. Python decodes it and hands it to
the response as it is (``graph.render``).

A ``Spec`` says what to build, in terms of the part's columns (by name), never of GraphQL:

- ``()``: a list of the part's single column (statuses, products);
- otherwise one entry per response key: ``(key, "col", name)`` the column as JSON gives it (text,
  integers, booleans, enum names as stored); ``(key, "time", name)`` an instant as
  ``datetime.isoformat()`` writes a UTC one; ``(key, "gid", type, name)`` a global id
  (``graph.ids.to_global_id``); ``(key, "lit", text)`` a constant (``__typename``);
  ``(key, "excess", a, b)`` ``max(a - b, 0)``; ``(key, "obj", spec)`` an object of the same
  row's columns; ``(key, "part", child, cap, spec)`` a nested part (a subscription's license
  lines) rendered in turn; ``(key, "empty")`` an empty list (a nested part the caller may not
  read).

PostgreSQL only: SQLite's aggregates promise no order, and its instants are text to reformat.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import case, func, literal_column
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.elements import ColumnElement

Entry = tuple[Any, ...]
Spec = tuple[Entry, ...]

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*\Z")
# json_build_object takes at most 100 arguments (50 keys); a selection with more is not
# rendered (nor one so large its statement would be: the entries of a spec, nested included).
MAX_KEYS = 50
MAX_ENTRIES = 200


def text_literal(value: str) -> ColumnElement[Any]:
    """A constant written into the statement: only names (GraphQL's, a type's), never data."""
    if not _NAME.match(value):
        raise ValueError(f"not a name: {value!r}")
    return literal_column(f"'{value}'")


_EMPTY: Any = literal_column("'[]'::json")
_SECONDS: Any = literal_column("""'YYYY-MM-DD"T"HH24:MI:SS'""")
_MICROS: Any = literal_column("'US'")
_NO_MICROS: Any = literal_column("'000000'")
_UTC: Any = literal_column("'UTC'")
_OFFSET: Any = literal_column("'+00:00'")
_DOT: Any = literal_column("'.'")
_NOTHING: Any = literal_column("''")


def _instant(value: Any) -> Any:
    """``value`` (timestamptz) as Python writes a UTC datetime: microseconds only when any."""
    utc = func.timezone(_UTC, value)
    micros = func.to_char(utc, _MICROS)
    fraction = case((micros == _NO_MICROS, _NOTHING), else_=_DOT.concat(micros))
    return func.to_char(utc, _SECONDS).concat(fraction).concat(_OFFSET)


def _global_id(type_name: str, value: Any) -> Any:
    """base64url of ``Type:pk`` without padding, as ``graph.ids.to_global_id``."""
    if not _NAME.match(type_name):
        raise ValueError(f"not a name: {type_name!r}")
    prefix: Any = literal_column(f"'{type_name}:'")
    raw = func.convert_to(prefix.concat(value), literal_column("'UTF8'"))
    encoded = func.encode(raw, literal_column("'base64'"))
    urlsafe = func.translate(encoded, literal_column("'+/'"), literal_column("'-_'"))
    return func.rtrim(urlsafe, literal_column("'='"))


def size(spec: Spec) -> int:
    """Entries in ``spec``, nested ones included."""
    total = 0
    for entry in spec:
        total += 1
        kind = entry[1]
        if kind == "obj":
            total += size(entry[2])
        elif kind == "part":
            total += size(entry[4])
    return total


def renderable(spec: Spec) -> bool:
    """Whether ``spec`` fits a statement: names only, at most MAX_KEYS keys an object."""
    if len(spec) > MAX_KEYS or size(spec) > MAX_ENTRIES:
        return False
    for entry in spec:
        if not _NAME.match(entry[0]):
            return False
        if entry[1] == "obj" and not renderable(entry[2]):
            return False
        if entry[1] == "part" and not renderable(entry[4]):
            return False
    return True


def json_object(
    spec: Spec,
    column: Callable[[str], Any],
    nested: Callable[[str, int | None, Spec], Any],
) -> Any:
    """The JSON object ``spec`` describes for one row: ``column(name)`` is the row's column,
    ``nested(child, cap, spec)`` the rendered array of a nested part."""
    values: list[Any] = []
    for entry in spec:
        key, kind = entry[0], entry[1]
        values.append(text_literal(key))
        if kind == "col":
            values.append(column(entry[2]))
        elif kind == "time":
            values.append(_instant(column(entry[2])))
        elif kind == "gid":
            values.append(_global_id(entry[2], column(entry[3])))
        elif kind == "lit":
            values.append(text_literal(entry[2]))
        elif kind == "excess":
            values.append(func.greatest(column(entry[2]) - column(entry[3]), 0))
        elif kind == "obj":
            values.append(json_object(entry[2], column, nested))
        elif kind == "part":
            values.append(nested(entry[2], entry[3], entry[4]))
        elif kind == "empty":
            values.append(_EMPTY)
        else:
            raise ValueError(f"unknown entry {entry!r}")
    return func.json_build_object(*values)


def json_array(element: Any, position: Any | None) -> Any:
    """The rendered elements in their positions' order; ``[]`` when there is none. Without a
    position, in the order the rows arrive: a plain aggregate over an ordered subquery (never
    parallel, never hashed: no GROUP BY) takes them as the subquery's ORDER BY returns them,
    as PostGraphile's statements rely on too; that saved a sort per part and customer (each
    with its own start-up: ~1.2 ms of a 9 ms filtered page, issue 17), and the tests compare
    every rendered order with the ordinary path's, which sorts in Python."""
    if position is None:
        return func.coalesce(func.json_agg(element), _EMPTY)
    return func.coalesce(func.json_agg(aggregate_order_by(element, position)), _EMPTY)


def in_order(values: Sequence[str], value: Any) -> Any:
    """``value``'s position among the names ``values`` (statuses in their enum's order)."""
    names = ", ".join(f"'{name}'" for name in values if _NAME.match(name))
    return func.array_position(literal_column(f"ARRAY[{names}]::text[]"), value)
