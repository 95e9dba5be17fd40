"""A relationship's answer rendered by PostgreSQL: the JSON the API sends, built in the statement.

``db.queries.customer_detail`` reads a customer's relationships as JSON arrays of their rows,
which Python then turns into records, API objects and, field by field, the response's
dictionaries: for a directory page of 50 that was about half of the workers' time a request
(issue 17's profile), where PostgreSQL builds the same JSON in the statement for PostGraphile.
When the document's whole selection on a relationship is made of fields that are its rows'
columns (or a fixed expression of them), the statement builds the response's own objects
instead: one JSON array of objects whose keys are the document's response names, in the
document's order, with the values as the API serialises them.

That text goes into the response as it is (``RenderedJSON``, ``graph.response_json``), never
decoded: decoding a directory page's parts, walking them to count the response's objects and
encoding them again cost ~0.45 ms and ~1,500 Python objects a request. So the text is written
exactly as orjson writes the same values (no whitespace, the same escapes: PostgreSQL's
``to_json`` of a string escapes as orjson does, ``tests/test_render_json.py``), by
concatenation rather than ``json_build_object``/``json_agg`` (which put spaces around ``:`` and
after ``,``), and it comes with the number of objects it holds (its part of
``actualQueryCost``), counted by the statement: a count of braces in Python would count those
of user strings.

A ``Spec`` says what to build, in terms of the part's columns (by name), never of GraphQL:

- ``()``: a list of the part's single column (statuses, products);
- otherwise one entry per response key: ``(key, "col", name)`` the column as JSON gives it (text,
  integers, booleans); ``(key, "enum", name, names)`` an enum's name as stored, one of
  ``names``; ``(key, "time", name)`` an instant as ``datetime.isoformat()`` writes a UTC one;
  ``(key, "gid", type, name)`` a global id (``graph.ids.to_global_id``); ``(key, "lit", text)``
  a constant (``__typename``); ``(key, "excess", a, b)`` ``max(a - b, 0)``; ``(key, "obj",
  spec)`` an object of the same row's columns; ``(key, "part", child, cap, spec)`` a nested part
  (a subscription's license lines) rendered in turn; ``(key, "empty")`` an empty list (a nested
  part the caller may not read).

A value the ordinary path would refuse (an enum's name the API does not know, an instant Python
cannot hold, a count past GraphQL's Int: data written past the API, or by a newer version of it)
must not be written as it is: the ordinary path answers an error there, and a client would read
a value its schema does not allow. ``checks`` are the conditions each row's values meet when they
are ones the ordinary path serialises as written; a part any row of which fails them is
answered NULL (``vouched``), and the request reads its parts again the ordinary way
(``graph.detail``), whose answer (its error) it then gives.

PostgreSQL only: SQLite's aggregates promise no order, and its instants are text to reformat.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, Text, and_, case, cast, func, literal_column
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.elements import ColumnElement

Entry = tuple[Any, ...]
Spec = tuple[Entry, ...]

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*\Z")
# The constant pieces of the JSON text: names and JSON punctuation, nothing an SQL literal
# escapes, and no ``:`` before a name (a parameter to the statement's text, ``db.engine.frozen``).
_PIECE = re.compile(r"(?:[_0-9A-Za-z\[\]{},\"]|:(?![_0-9A-Za-z]))*\Z")
# An object of at most 50 keys (as ``json_build_object``'s 100 arguments allowed); a selection
# with more is not rendered (nor one so large its statement would be: the entries of a spec,
# nested included).
MAX_KEYS = 50
MAX_ENTRIES = 200
# PostgreSQL's functions take at most 100 arguments: a longer ``concat`` is one of concats.
_MAX_ARGS = 100


class RenderedJSON:
    """A relationship's value as the response carries it: ``text``, the JSON PostgreSQL wrote,
    and ``count``, the objects it holds (``actualQueryCost``'s count, ``graph.cost``). Goes
    into the response's data as it is: ``graph.response_json`` writes ``text`` in its place,
    ``graph.cost.count_objects`` counts ``count``, ``graph.prefetch.ahead_or_load`` loads the
    relationship the ordinary way should graphql-core's own completion reach one.

    ``fragment`` is ``text`` as orjson writes it as it is, made here: made by orjson's
    ``default`` while it serialises, each cost ~0.2 us more (a directory page's 204 parts:
    ~45 us a serialisation)."""

    __slots__ = ("count", "fragment", "text")

    def __init__(self, text: str | bytes, count: int) -> None:
        self.text = text
        self.count = count
        self.fragment = orjson.Fragment(text)

    def __repr__(self) -> str:
        return f"RenderedJSON({self.text!r}, {self.count})"


# The value of a rendered part its customer does not have (a customer gone since its page was
# read): no text, no object. Immutable in use: nothing writes to a RenderedJSON.
EMPTY = RenderedJSON("[]", 0)


def _piece(value: str) -> ColumnElement[Any]:
    """A constant piece of JSON text written into the statement: names and punctuation."""
    if not _PIECE.match(value):
        raise ValueError(f"not a piece of JSON: {value!r}")
    return literal_column(f"'{value}'", Text())


_NULL = _piece("null")
_NOTHING: Any = literal_column("''", Text())
_QUOTE: Any = _piece('"')
_SECONDS: Any = literal_column("""'YYYY-MM-DD"T"HH24:MI:SS'""")
_MICROS: Any = literal_column("'US'")
_NO_MICROS: Any = literal_column("'000000'")
_UTC: Any = literal_column("'UTC'")
_OFFSET: Any = literal_column("'+00:00'")
_DOT: Any = literal_column("'.'")
# The instants the ordinary path reads back: PostgreSQL writes them as JSON text in the
# session's time zone, which Python parses (years 1 to 9999 only; not infinity, not BC), so a
# day short of either end (no offset is a day); an instant in that day takes the ordinary path.
_FIRST_INSTANT: Any = literal_column("'0001-01-02 UTC'")
_END_INSTANT: Any = literal_column("'9999-12-31 UTC'")
# GraphQL's Int, which the ordinary path's serialiser refuses past (``excess`` is computed as a
# bigint: ``purchased - assigned`` of two integers may leave the integers' range).
_INT_MAX: Any = literal_column("2147483647", BigInteger())


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


def _excess(column: Callable[[str], Any], entry: Entry) -> Any:
    """``max(a - b, 0)`` of the row's columns ``entry[2]``, ``entry[3]``, as a bigint (never out
    of range: two integers' difference may be)."""
    return func.greatest(cast(column(entry[2]), BigInteger) - column(entry[3]), 0)


def _names(names: Sequence[str]) -> list[Any]:
    """An enum's names as SQL literals (names only: nothing to escape)."""
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"not a name: {name!r}")
    return [literal_column(f"'{name}'", Text()) for name in names]


def one_of(value: Any, names: Sequence[str]) -> Any:
    """Whether ``value`` is one of the enum's ``names``."""
    return value.in_(_names(names))


def checks(spec: Spec, column: Callable[[str], Any]) -> list[Any]:
    """The conditions one row meets when every value ``spec`` writes of it is one the ordinary
    path serialises as written (an enum's name it knows, an instant it can hold, an Int): FALSE
    when one is not, NULL or TRUE otherwise (a NULL instant of a nullable column compares
    NULL, which ``bool_and`` skips). Nested parts check their own rows."""
    found: list[Any] = []
    for entry in spec:
        kind = entry[1]
        if kind == "enum":
            found.append(one_of(column(entry[2]), entry[3]))
        elif kind == "time":
            value = column(entry[2])
            found += [value >= _FIRST_INSTANT, value < _END_INSTANT]
        elif kind == "excess":
            found.append(_excess(column, entry) <= _INT_MAX)
        elif kind == "obj":
            found += checks(entry[2], column)
    return found


def vouched(text: Any, conditions: Sequence[Any]) -> Any:
    """An aggregate's ``text``, NULL when a row it aggregates fails ``conditions`` (``checks``):
    the part is then read the ordinary way."""
    if not conditions:
        return text
    every = func.bool_and(and_(*conditions) if len(conditions) > 1 else conditions[0])
    return case((every.is_not(False), text))


def json_value(value: Any) -> Any:
    """A column's value as JSON text, escaped as orjson escapes; ``null`` for NULL."""
    return func.coalesce(cast(func.to_json(value), Text), _NULL)


def _quoted(value: Any) -> Any:
    """Text that needs no escaping (an instant, a global id) as a JSON string; ``null``."""
    return func.coalesce(_QUOTE.concat(value).concat(_QUOTE), _NULL)


def concat(values: Sequence[Any]) -> Any:
    """``values`` (texts, numbers, none NULL) as one text: adjacent constant pieces (``str``)
    written as one, and nested ``concat`` calls past PostgreSQL's 100 arguments."""
    merged: list[Any] = []
    for value in values:
        if isinstance(value, str) and merged and isinstance(merged[-1], str):
            merged[-1] += value
        else:
            merged.append(value)
    args = [_piece(value) if isinstance(value, str) else value for value in merged]
    while len(args) > _MAX_ARGS:
        args = [
            func.concat(*args[i : i + _MAX_ARGS]) if len(args) - i > 1 else args[i]
            for i in range(0, len(args), _MAX_ARGS)
        ]
    return func.concat(*args) if len(args) != 1 else args[0]


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


def objects(spec: Spec) -> int:
    """The objects each element of a part rendered as ``spec`` holds, its nested parts aside:
    itself and its ``obj`` entries (an enum's name, ``()``, none). ``graph.cost`` counts these
    in the response: every dict."""
    if not spec:
        return 0
    return 1 + sum(objects(entry[2]) for entry in spec if entry[1] == "obj")


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
) -> list[Any]:
    """The JSON object ``spec`` describes for one row, as ``concat``'s values (``str``: a
    constant piece): ``column(name)`` is the row's column, ``nested(child, cap, spec)`` the
    rendered array of a nested part."""
    values: list[Any] = []
    for i, entry in enumerate(spec):
        key, kind = entry[0], entry[1]
        if not _NAME.match(key):
            raise ValueError(f"not a name: {key!r}")
        values.append(f'{"," if i else "{"}"{key}":')
        if kind in ("col", "enum"):
            values.append(json_value(column(entry[2])))
        elif kind == "time":
            values.append(_quoted(_instant(column(entry[2]))))
        elif kind == "gid":
            values.append(_quoted(_global_id(entry[2], column(entry[3]))))
        elif kind == "lit":
            if not _NAME.match(entry[2]):
                raise ValueError(f"not a name: {entry[2]!r}")
            values.append(f'"{entry[2]}"')
        elif kind == "excess":  # GREATEST ignores NULLs: never NULL
            values.append(_excess(column, entry))
        elif kind == "obj":
            values.extend(json_object(entry[2], column, nested))
        elif kind == "part":
            values.append(nested(entry[2], entry[3], entry[4]))
        elif kind == "empty":
            values.append("[]")
        else:
            raise ValueError(f"unknown entry {entry!r}")
    values.append("}" if spec else "{}")
    return values


def json_elements(element: list[Any], position: Any | None) -> Any:
    """The rendered elements in their positions' order, separated by commas, without the
    brackets; ``''`` when there is none. Without a position, in the order the rows arrive: a
    plain aggregate (no GROUP BY: never hashed; a correlated subplan: never parallel) over an
    ordered subquery, or over it joined to its nested parts' ``LATERAL`` subqueries (a nested
    loop, the ordered rows outside), takes them in the subquery's ORDER BY, as PostGraphile's
    statements rely on too. That saved a sort per part and customer, each with its own
    start-up (~1 ms of a 6-9 ms filtered page statement, issue 17); the tests write rows
    against the API's order and compare every rendered order with the ordinary path's, which
    sorts in Python."""
    if position is None:
        joined = func.string_agg(concat(element), _piece(","))
    else:
        joined = func.string_agg(concat(element), aggregate_order_by(_piece(","), position))
    return func.coalesce(joined, _NOTHING)


def in_order(values: Sequence[str], value: Any) -> Any:
    """``value``'s position among the names ``values`` (statuses in their enum's order)."""
    names = ", ".join(f"'{name}'" for name in values if _NAME.match(name))
    return func.array_position(literal_column(f"ARRAY[{names}]::text[]"), value)
