"""Compiled completers and serialisers for ``graph.execution``'s direct path.

Below a plain-attribute or prefetched object or list, ``graph.execution`` answers whole objects
without graphql-core's per-value machinery (``_fast``). Each (type, selection) shape is compiled
once into a straight-line function (``_completer``) that every later request with that shape
reuses: the sub-selection walked once, plain fields serialised (``_serializer``: a leaf type's
output coercion, with the values it returns unchanged tested inline), prefetched and attribute
children descended into through the ``_child`` functions, and the result built as graphql-core
would build it. Every answer here is the execution context's: Undefined when the ordinary path
must decide.

They live apart from the execution context because they hold no request state: the compiled
functions and the serialisers are kept per shape and per leaf type for the life of the process,
and the child functions are plain functions that reach the context only through an argument
(see ``PlainFieldExecutionContext.async_helpers``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from keyword import iskeyword
from typing import Any
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    is_leaf_type,
)
from graphql.pyutils import Undefined

from db.queries.customer_render import RenderedJSON
from graph.types.scalars import DATE_TIME

AHEAD = "ahead"

_PLAIN, _AHEAD, _ATTR, _TYPENAME = "plain", "ahead", "attr", "__typename"
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_SERIALIZERS: WeakKeyDictionary[Any, Callable[[Any], Any]] = WeakKeyDictionary()
# For the serialisers that return some values unchanged: the test (on ``{v}``) that a value is
# not one of those, inlined by ``_completer``.
_IDENTITY: dict[Callable[[Any], Any], str] = {}
# For the serialisers that are one method call for some values: the test (on ``{v}``) and the
# expression, inlined by ``_completer``.
_INLINE: dict[Callable[[Any], Any], tuple[str, str]] = {}
_DATES = (datetime, date)


def _serializer(leaf: Any) -> Callable[[Any], Any]:
    """The leaf type's output coercion for a non-null value: Undefined instead of an error or a
    null (the ordinary path then reports it). Values whose serialisation is themselves (a
    ``str`` for String or ID, an ``int`` in range for Int, a ``bool`` for Boolean) skip the call;
    an enum remembers the names of the values it has met."""
    found = _SERIALIZERS.get(leaf)
    if found is not None:
        return found
    coerce = leaf.coerce_output_value

    def general(value: Any) -> Any:
        try:
            coerced = coerce(value)
        except Exception:  # the ordinary path reports it properly
            return Undefined
        return Undefined if coerced is None else coerced

    serializer = general
    # The test (on ``{v}``) that a value is not one the serializer returns unchanged.
    identity = None
    if leaf is GraphQLString or leaf is GraphQLID:

        def serializer(value: Any) -> Any:
            return value if type(value) is str else general(value)

        identity = "type({v}) is not str"
    elif leaf is GraphQLInt:

        def serializer(value: Any) -> Any:
            if type(value) is int and _INT_MIN <= value <= _INT_MAX:
                return value
            return general(value)

        identity = f"type({{v}}) is not int or not {_INT_MIN} <= {{v}} <= {_INT_MAX}"
    elif leaf is GraphQLBoolean:

        def serializer(value: Any) -> Any:
            return value if type(value) is bool else general(value)

        identity = "type({v}) is not bool"

    elif coerce is DATE_TIME.serialize:  # DateTime and Date: ``value.isoformat()``

        def serializer(value: Any) -> Any:
            return value.isoformat() if type(value) in _DATES else general(value)

        _INLINE[serializer] = ("type({v}) in _DATES", "{v}.isoformat()")

    elif isinstance(leaf, GraphQLEnumType):
        # An enum's names never change: each (type, value) met is coerced once.
        names: dict[tuple[type, Any], Any] = {}

        def serializer(value: Any) -> Any:
            key = (type(value), value)
            try:
                return names[key]
            except KeyError:
                name = names[key] = general(value)
                return name
            except TypeError:  # unhashable
                return general(value)

    _SERIALIZERS[leaf] = serializer
    if identity is not None:
        _IDENTITY[serializer] = identity
    return serializer


_COMPLETERS: dict[tuple[Any, ...], Callable[..., Any]] = {}
_COMPLETER_CHARS = 0
COMPLETER_SOURCE_CHARS = 1_000_000


def _read(attribute: str) -> str:
    if attribute.isidentifier() and not iskeyword(attribute):
        return f"value.{attribute}"
    return f"getattr(value, {attribute!r})"


def _completer(shape: tuple[tuple[Any, ...], ...]) -> Callable[..., Any]:
    """A function completing one object of this shape, compiled once and shared by every later
    request (what graphql-jit does for JavaScript): the loop of ``_fast_object`` over the
    selection's entries unrolled into straight-line code, with the serialisers that return a
    value unchanged inlined as type tests.

    ``shape`` holds per response key (name, kind, attribute, serialiser, non-null) for plain
    fields and (name, kind, attribute) for the others; the completer is called with the value,
    the execution context, the resolve info and the ``_child`` (function, data) of each
    non-plain entry in order.
    Its answers are ``_fast_object``'s: Undefined for a missing attribute, a null in a non-null
    field, a value a serialiser refuses or a child ``_fast`` cannot answer."""
    found = _COMPLETERS.get(shape)
    if found is not None:
        return found
    names: dict[str, Any] = {
        "Undefined": Undefined,
        "AHEAD": AHEAD,
        "read": _read_attribute,
        "_DATES": _DATES,
        "RenderedJSON": RenderedJSON,
    }
    reads, checks, items = [], [], []
    child = 0
    for i, (response_name, kind, attribute, *plain) in enumerate(shape):
        v = f"v{i}"
        if kind is _TYPENAME:
            items.append(f"{response_name!r}: {attribute!r}")
            continue
        if kind is _AHEAD:
            checks += [
                f"if not ahead or {attribute!r} not in ahead: return Undefined",
                f"{v} = ahead[{attribute!r}]",
                # A part rendered by PostgreSQL (``graph.render``) is the answer as it is.
                f"if type({v}) is not RenderedJSON:",
                f"    {v} = children[{child}][0](ctx, children[{child}][1], info, {v})",
                f"    if {v} is Undefined: return Undefined",
            ]
            child += 1
        elif kind is _ATTR:
            reads.append(f"{v} = {_read(attribute)}")
            checks += [
                f"{v} = children[{child}][0](ctx, children[{child}][1], info, {v})",
                f"if {v} is Undefined: return Undefined",
            ]
            child += 1
        else:
            serialize, non_null = plain
            names[f"s{i}"] = serialize
            reads.append(f"{v} = {_read(attribute)}")
            identity = _IDENTITY.get(serialize)
            inline = _INLINE.get(serialize)
            convert = [
                f"{v} = s{i}({v})",
                f"if {v} is Undefined: return Undefined",
            ]
            if identity is not None:
                test = identity.format(v=v)
                convert = [f"if {test}:"] + ["    " + line for line in convert]
            elif inline is not None:
                test, expression = (text.format(v=v) for text in inline)
                convert = [f"if {test}:", f"    {v} = {expression}", "else:"] + [
                    "    " + line for line in convert
                ]
            if non_null:
                checks += [f"if {v} is None: return Undefined", *convert]
            else:
                checks += [f"if {v} is not None:"] + ["    " + line for line in convert]
        items.append(f"{response_name!r}: {v}")
    body = ["def complete(value, ctx, info, children):", "    try:"]
    body += ["        " + line for line in reads or ["pass"]]
    # A read that raises (not only AttributeError: a property, a lazy load) leaves the value
    # to the ordinary path, which reads it again and reports the error at its path.
    body += ["    except Exception:", "        return Undefined"]
    if any(entry[1] is _AHEAD for entry in shape):
        body.append("    ahead = read(value, AHEAD)")
    body += ["    " + line for line in checks]
    body.append("    return {" + ", ".join(items) + "}")
    source = "\n".join(body)
    exec(compile(source, f"<completer {len(_COMPLETERS)}>", "exec"), names)
    completer: Callable[..., Any] = names["complete"]
    # Documents are few, but a shape holds the client's aliases: bounded in entries and in
    # the size of what was compiled (a code object is a few times its source).
    global _COMPLETER_CHARS
    if len(_COMPLETERS) >= 4096 or _COMPLETER_CHARS + len(source) > COMPLETER_SOURCE_CHARS:
        _COMPLETERS.clear()
        _COMPLETER_CHARS = 0
    _COMPLETERS[shape] = completer
    _COMPLETER_CHARS += len(source)
    return completer


# A completer's non-plain children: per child (function, data), the function called as
# ``function(execution context, data, info, value)`` and answering as ``_fast`` would for the
# child's type. Chosen once per object plan by the child's type, so that a list of objects or of
# leaves skips ``_fast``'s dispatch. Plain functions and data that do not refer to the execution
# context: a plan held by the context creates no reference cycle (see ``async_helpers``).
Child = tuple[Callable[..., Any], tuple[Any, ...]]


def _child(field_type: GraphQLOutputType, sub_details: Any) -> Child:
    non_null = isinstance(field_type, GraphQLNonNull)
    inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if isinstance(inner, GraphQLList) and isinstance(inner.of_type, GraphQLNonNull):
        item = inner.of_type.of_type
        if isinstance(item, GraphQLObjectType):
            return _objects, (non_null, item, sub_details)
        if is_leaf_type(item):
            return _leaves, (non_null, _serializer(item))
    elif isinstance(inner, GraphQLObjectType):
        return _one_object, (non_null, inner, sub_details)
    return _general, (field_type, sub_details)


def _general(ctx: Any, data: tuple[Any, ...], info: Any, value: Any) -> Any:
    return ctx._fast(data[0], data[1], info, value)


def _one_object(ctx: Any, data: tuple[Any, ...], info: Any, value: Any) -> Any:
    """``_fast`` for an object type (non-null or not)."""
    non_null, object_type, sub_details = data
    if value is None:
        return Undefined if non_null else None
    return ctx._fast_object(object_type, sub_details, info, value)


def _objects(ctx: Any, data: tuple[Any, ...], info: Any, value: Any) -> Any:
    """``_fast`` for a list of non-null objects (the list non-null or not)."""
    non_null, object_type, sub_details = data
    if value is None:
        return Undefined if non_null else None
    if not isinstance(value, list | tuple):
        return Undefined
    completed: list[Any] = []
    if not value:
        return completed
    plan = ctx._object_plan(object_type, sub_details)
    if plan is None:
        return Undefined
    complete, children = plan
    is_type_of = object_type.is_type_of
    append = completed.append
    for item in value:
        if item is None:
            return Undefined
        if is_type_of is not None:
            try:
                if is_type_of(item, info) is not True:
                    return Undefined
            except Exception:
                return Undefined
        done = complete(item, ctx, info, children)
        if done is Undefined:
            return Undefined
        append(done)
    return completed


def _leaves(ctx: Any, data: tuple[Any, ...], info: Any, value: Any) -> Any:
    """``_fast`` for a list of non-null scalars or enums (the list non-null or not)."""
    non_null, serialize = data
    if value is None:
        return Undefined if non_null else None
    if not isinstance(value, list | tuple):
        return Undefined
    completed: list[Any] = []
    append = completed.append
    for item in value:
        if item is None:
            return Undefined
        done = serialize(item)
        if done is Undefined:
            return Undefined
        append(done)
    return completed


def _read_attribute(source: Any, attribute: str) -> Any:
    """``source.attribute``, or Undefined when it is missing or reading it raises: the ordinary
    path then reads it again and reports the error at the field's path, as graphql-core does.
    (A property that raises is evaluated twice; its error is reported once.)"""
    try:
        return getattr(source, attribute, Undefined)
    except Exception:
        return Undefined
