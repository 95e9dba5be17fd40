"""Argument values checked once, before execution, whatever field they are given to.

Resolvers validate what their domain knows (a tag name's length, a page size, a week count); what
no resolver should ever see is checked here, for every argument of every field and directive,
literal or variable, down through input objects and lists:

- a string holding a NUL byte (``\\x00``): PostgreSQL refuses it in text, so it would fail as an
  internal error deep in a statement (SQLite would store it); or a lone surrogate (JSON's
  ``"\\ud800"``), which is not Unicode text and which neither database driver encodes;
- a string longer than ``max_string_input`` characters (default 100,000: ten times the longest
  text a field takes, so fields keep answering their own ``*_TOO_LONG`` codes for ordinary
  overshoots);
- a list longer than ``max_list_input`` items (default 5,000: above every per-field limit, such
  as 1,000 call records or 100 objects to tag, and far below the 32,767 bind parameters a
  PostgreSQL statement may carry).

The first value at fault refuses the request with ``BAD_USER_INPUT`` naming its path
(``$input.rules[0].object`` for a variable, ``createTag.input.name`` for a literal) before any
resolver runs, so nothing is written. The walk uses explicit stacks: a deeply nested variable
cannot exhaust the interpreter's recursion limit. Dates outside the supported range are refused
by the ``Date`` and ``DateTime`` scalars themselves (``graph.types.scalars``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from weakref import ref

from graphql import (
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
)

from db.settings import Settings
from graph.errors import ApiError, ErrorCode

# Per parsed document (by identity: a node's hash walks the whole tree) and (operation, limits):
# the literal found out of bounds, or None. An entry goes with its document.
_LITERALS: dict[int, tuple[ref[DocumentNode], dict[tuple[str | None, int, int], Any]]] = {}


def _checked(document: DocumentNode) -> dict[tuple[str | None, int, int], Any]:
    key = id(document)
    entry = _LITERALS.get(key)
    if entry is None or entry[0]() is not document:
        entry = (ref(document, lambda _: _LITERALS.pop(key, None)), {})
        _LITERALS[key] = entry
    return entry[1]


def refuse_out_of_bounds(ec: Any) -> None:
    """Refuses the request before execution (sets ``ec.result``, a Strawberry execution
    context's) when an argument value is out of bounds: a step of the ``on_execute`` hook of
    ``graph.extensions.Guards``."""
    document = ec.graphql_document
    if document is not None and ec.result is None:
        settings = getattr(ec.context, "settings", None)
        limits = Limits.of(settings if isinstance(settings, Settings) else Settings())
        error = limits.check(document, ec.operation_name, ec.variables or {})
        if error is not None:
            ec.result = ExecutionResult(data=None, errors=[error])


class Limits:
    def __init__(self, max_string: int, max_list: int) -> None:
        self.max_string = max_string
        self.max_list = max_list

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_string_input, settings.max_list_input)

    def check(
        self, document: DocumentNode, operation_name: str | None, variables: dict[str, Any]
    ) -> ApiError | None:
        """The error for the first value out of bounds in the operation that runs, or None."""
        operation = _operation(document, operation_name)
        if operation is None:
            return None  # graphql-core refuses the request itself
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name in variables:
                error = self._raw(variables[name], f"${name}")
                if error is not None:
                    return error
        # What the document itself holds is checked once per parsed document (the parser
        # cache hands the same object back): walking a dashboard's selections took 0.2 ms.
        checked = _checked(document)
        key = (operation_name, self.max_string, self.max_list)
        if key not in checked:
            error = self._literals(document, operation)
            path = (error.extensions or {}).get("argument") if error is not None else None
            checked[key] = None if error is None else (error.message, str(path))
        found = checked[key]
        return None if found is None else _refuse(*found)

    def _literals(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> ApiError | None:
        for definition in operation.variable_definitions or ():
            if definition.default_value is not None:
                name = f"${definition.variable.name.value}"
                error = self._literal(definition.default_value, name)
                if error is not None:
                    return error
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        for path, value in _arguments(operation, fragments):
            error = self._literal(value, path)
            if error is not None:
                return error
        return None

    def _string(self, value: str, path: str) -> ApiError | None:
        if "\x00" in value:
            return _refuse(f"{path} contains a NUL byte (\\u0000), which no text accepts.", path)
        if not value.isascii() and not _encodable(value):
            return _refuse(f"{path} is not valid Unicode (a lone surrogate escape).", path)
        if len(value) > self.max_string:
            return _refuse(
                f"{path} is {len(value):,} characters long; the limit is "
                f"{self.max_string:,} (max_string_input).",
                path,
            )
        return None

    def _list(self, size: int, path: str) -> ApiError | None:
        if size > self.max_list:
            return _refuse(
                f"{path} has {size:,} items; the limit is {self.max_list:,} (max_list_input).",
                path,
            )
        return None

    def _raw(self, value: Any, path: str) -> ApiError | None:
        """Checks a variable's JSON value (strings, lists and objects at any depth)."""
        stack: list[tuple[Any, str]] = [(value, path)]
        while stack:
            item, at = stack.pop()
            error: ApiError | None = None
            if isinstance(item, str):
                error = self._string(item, at)
            elif isinstance(item, list):
                error = self._list(len(item), at)
                stack.extend((v, f"{at}[{i}]") for i, v in reversed(list(enumerate(item))))
            elif isinstance(item, dict):
                stack.extend((v, f"{at}.{k}") for k, v in reversed(list(item.items())))
            if error is not None:
                return error
        return None

    def _literal(self, value: ValueNode, path: str) -> ApiError | None:
        """Checks a value written in the document (variables are checked by ``_raw``)."""
        stack: list[tuple[ValueNode, str]] = [(value, path)]
        while stack:
            node, at = stack.pop()
            error: ApiError | None = None
            if isinstance(node, StringValueNode):
                error = self._string(node.value, at)
            elif isinstance(node, ListValueNode):
                error = self._list(len(node.values), at)
                stack.extend((v, f"{at}[{i}]") for i, v in reversed(list(enumerate(node.values))))
            elif isinstance(node, ObjectValueNode):
                stack.extend((f.value, f"{at}.{f.name.value}") for f in reversed(node.fields))
            if error is not None:
                return error
        return None


def check_values(settings: Settings, values: dict[str, Any]) -> None:
    """The same bounds for values that reach resolvers' helpers outside GraphQL (the CSV
    export's query parameters): raises the ``BAD_USER_INPUT`` error of the first at fault."""
    limits = Limits.of(settings)
    for name, value in values.items():
        error = limits._raw(value, name)
        if error is not None:
            raise error


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # "\ud800" in JSON: no database, nor orjson, takes it
        return False
    return True


def _refuse(message: str, path: str) -> ApiError:
    return ApiError(message, ErrorCode.BAD_USER_INPUT, argument=path)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        operations = [o for o in operations if o.name is not None and o.name.value == name]
    return operations[0] if len(operations) == 1 else None


def _arguments(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[tuple[str, ValueNode]]:
    """(path, value) of every argument in the operation, fragments followed once each; the
    path is the chain of field names from the root, then the argument's name."""
    seen: set[str] = set()
    yield from _directive_arguments(operation.directives, "")
    stack: list[tuple[SelectionSetNode | None, str]] = [(operation.selection_set, "")]
    while stack:
        selection_set, prefix = stack.pop()
        for selection in selection_set.selections if selection_set is not None else ():
            yield from _directive_arguments(selection.directives, prefix)
            if isinstance(selection, FieldNode):
                path = f"{prefix}{selection.name.value}"
                for argument in selection.arguments or ():
                    yield f"{path}.{argument.name.value}", argument.value
                stack.append((selection.selection_set, f"{path}."))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, prefix))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and fragment.name.value not in seen:
                    seen.add(fragment.name.value)
                    yield from _directive_arguments(fragment.directives, prefix)
                    stack.append((fragment.selection_set, prefix))


def _directive_arguments(
    directives: tuple[DirectiveNode, ...] | None, prefix: str
) -> Iterator[tuple[str, ValueNode]]:
    for directive in directives or ():
        for argument in directive.arguments or ():
            yield f"{prefix}@{directive.name.value}.{argument.name.value}", argument.value
