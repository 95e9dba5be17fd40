"""A cheaper path through graphql-core for plain attributes and prefetched relationships.

Most fields of a response are scalars or enums read straight off a row object (``name``,
``startDate``, ``purchased``). graphql-core resolves each of them like any other field: it builds a
resolve-info object, calls Strawberry's wrapper, checks whether the result is awaitable and
dispatches on the return type before serialising. For a directory page that is about 1,300
fields, and that generic path was the largest cost of the request (issue 8's profile).

The execution context below decides once per (type, field) what a field is:

- *plain*: a Strawberry field with no resolver and no field extensions (Strawberry's own "basic
  field") whose type is a scalar or enum, possibly non-null. It reads the attribute and
  serialises it directly.
- *ahead*: a relationship field without arguments or extensions on a type that carries
  ``ahead`` (``graph.prefetch``). When the page's resolver loaded it ahead, its resolver would
  only return ``ahead[name]``; the value goes straight to graphql-core's ``complete_value``,
  skipping Strawberry's argument conversion, info wrapper and resolver call.

- *attr*: any other Strawberry field without resolver or extensions (an object or a list read
  off an attribute, such as a connection's ``nodes``).

A prefetched value that is a ``RenderedJSON`` (the response's JSON built by PostgreSQL,
``graph.render``) is the field's answer as it is, on both direct paths: it stays in the result
data as it is, and the response's serialiser writes its text (``graph.response_json``).

Below a plain-attribute or prefetched object or list, whole objects are then answered without
graphql-core's per-value machinery (``_fast``): for each object the collected sub-selection is
walked once, plain fields serialised, prefetched and attribute children descended into, and the
result built as graphql-core would build it. Each (type, selection) shape is compiled once into
a straight-line function (``_completer``, in ``graph.completers`` with the serialisers and the
children's functions) that every later request with that shape reuses. The
first thing ``_fast`` cannot vouch for
(anything not plain, attr or prefetched, an abstract type, ``@defer``, a refused value, a null
in a non-null position, a failed ``is_type_of``) abandons the whole value, which then takes the
path above; nothing is produced twice because every value read there is already in memory.

Anything unusual (a null in a non-null field, a value the scalar refuses, a value not loaded
ahead, a field that is neither) takes graphql-core's ordinary path, so errors, paths and
nullability stay exactly as the specification and graphql-core produce them. Both paths are off
when an extension hooks field resolution (graphql middleware), since they skip resolvers.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import fields, is_dataclass
from typing import Any
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.execution.executor import to_nodes
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

import graph.settle  # noqa: F401  (siblings settle instead of being cancelled)
from db.queries.customer_render import RenderedJSON
from graph.completers import (
    _AHEAD,
    _ATTR,
    _PLAIN,
    _TYPENAME,
    AHEAD,
    _child,
    _completer,
    _leaves,
    _objects,
    _read_attribute,
    _serializer,
)
from graph.memo import operation_memo

# ("plain", attribute, leaf type, non-null) | ("ahead", field name) | ("attr", attribute);
# None for every other field.
Plan = tuple[Any, ...] | None
_PLANS: WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], Plan]] = WeakKeyDictionary()


def _carries_ahead(parent_type: GraphQLObjectType) -> bool:
    definition = (parent_type.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryObjectDefinition):
        return False
    origin = definition.origin
    return is_dataclass(origin) and any(f.name == AHEAD for f in fields(origin))


def _plan(parent_type: GraphQLObjectType, field_name: str) -> Plan:
    field_def = parent_type.fields.get(field_name)
    if field_def is None:
        return None
    field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField) or field.extensions:
        return None
    if field.base_resolver is not None:
        if not field.arguments and _carries_ahead(parent_type):
            return ("ahead", field_name)
        return None
    if not getattr(field_def.resolve, "_is_default", False) or field.python_name is None:
        return None
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    leaf = return_type.of_type if non_null else return_type
    if not is_leaf_type(leaf):
        return ("attr", field.python_name)
    return ("plain", field.python_name, leaf, non_null)


class PlainFieldExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with direct paths for plain and prefetched fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Decided once per schema and (type, field), shared by every later request.
        plans = _PLANS.get(self.schema)
        if plans is None:
            plans = _PLANS[self.schema] = {}
        self._plans = plans
        self._object_plans: dict[tuple[Any, int], tuple[Any, Any]] = {}
        middleware = self.middleware_manager
        self._direct = middleware is None or not middleware.middlewares
        # graphql-core hands resolvers helpers bound to the execution context, which the
        # context holds: a reference cycle that kept the context, the request's Context and
        # everything they reach alive until the cyclic collector ran (a pause of 100 ms or more
        # every few hundred requests). Through a weak reference the context is freed when the
        # request is done; it lives as long as execution runs its methods.
        own = weakref.ref(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: _alive(own).gather_async_work(values),
            track=lambda values: _alive(own).track_async_work(values),
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        """The operation's result once every field it started has settled.

        A field refused synchronously (an argument graphql-core refuses while coercing it:
        ``first: $v`` with ``$v`` null) whose error nulls its parent leaves the siblings already
        started to settle in the background (graphql-core's ``settle_in_background``), and the
        result was returned at once: the request's session was then closed while a sibling's
        statement still ran on its connection (PostgreSQL: "another operation is in progress",
        an INTERNAL_SERVER_ERROR with a logged traceback; both: a connection never checked
        in). As for siblings of a field failing asynchronously (``graph.settle``), they are
        awaited: the answer is the same, sent after the slowest sibling."""
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._settled(result)
        if self.background_futures:
            return self._settled(None, result)
        return result

    async def _settled(self, awaited: Any, result: Any = None) -> Any:
        try:
            if awaited is not None:
                result = await awaited
        finally:
            background = self.background_futures
            while background:
                await asyncio.wait(list(background))
        return result

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        if self._direct:
            field_name = field_details_list[0].node.name.value
            key = (parent_type.name, field_name)
            try:
                plan = self._plans[key]
            except KeyError:
                plan = self._plans[key] = _plan(parent_type, field_name)
            if plan is not None:
                kind = plan[0]
                if kind == "plain":
                    value = _plain(source, plan)
                    if value is not Undefined:
                        return value
                elif kind == "ahead":
                    ahead = _read_attribute(source, AHEAD)
                    if ahead and field_name in ahead:
                        return self._complete_ahead(
                            parent_type,
                            ahead[field_name],
                            field_details_list,
                            path,
                            position_context,
                        )
                else:
                    value = _read_attribute(source, plan[1])
                    if value is not Undefined:
                        return_type = parent_type.fields[field_name].type
                        info = self.build_resolve_info(
                            parent_type.fields[field_name],
                            to_nodes(field_details_list),
                            parent_type,
                            path,
                        )
                        fast = self._fast(return_type, field_details_list, info, value)
                        if fast is not Undefined:
                            return fast
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _complete_ahead(
        self,
        parent_type: GraphQLObjectType,
        value: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        """graphql-core's ``execute_field`` from the point where the resolver has returned."""
        if type(value) is RenderedJSON:  # the response's JSON already (``graph.render``)
            return value
        field_def = parent_type.fields[field_details_list[0].node.name.value]
        return_type = field_def.type
        info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
        fast = self._fast(return_type, field_details_list, info, value)
        if fast is not Undefined:
            return fast
        try:
            completed = self.complete_value(
                return_type, field_details_list, info, path, value, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        if self.is_awaitable(completed):
            return self._await_completed(completed, return_type, field_details_list, path)
        return completed

    def _fast(
        self, return_type: GraphQLOutputType, field_details_list: Any, info: Any, value: Any
    ) -> Any:
        """``value`` completed as ``return_type``, or Undefined when the ordinary path must."""
        if isinstance(return_type, GraphQLNonNull):
            if value is None:
                return Undefined
            return_type = return_type.of_type
        elif value is None:
            return None
        if isinstance(return_type, GraphQLList):
            if not isinstance(value, list | tuple):
                return Undefined
            item_type = return_type.of_type
            if isinstance(item_type, GraphQLNonNull):
                # The shapes a completer's children take directly (``_child``); the list is not
                # None here, so that the list itself is non-null changes nothing.
                if isinstance(item_type.of_type, GraphQLObjectType):
                    return _objects(
                        self, (True, item_type.of_type, field_details_list), info, value
                    )
                if is_leaf_type(item_type.of_type):
                    return _leaves(self, (True, _serializer(item_type.of_type)), info, value)
            completed: list[Any] = []
            append = completed.append
            for item in value:
                done = self._fast(item_type, field_details_list, info, item)
                if done is Undefined:
                    return Undefined
                append(done)
            return completed
        if isinstance(return_type, GraphQLObjectType):
            return self._fast_object(return_type, field_details_list, info, value)
        if is_leaf_type(return_type):
            return _serializer(return_type)(value)
        return Undefined  # an interface or a union: graphql-core resolves the type

    def _fast_object(
        self, object_type: GraphQLObjectType, field_details_list: Any, info: Any, value: Any
    ) -> Any:
        if object_type.is_type_of is not None:
            try:
                if object_type.is_type_of(value, info) is not True:
                    return Undefined
            except Exception:
                return Undefined
        plan = self._object_plan(object_type, field_details_list)
        if plan is None:
            return Undefined
        complete, children = plan
        return complete(value, self, info, children)

    def _object_plan(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        """How ``_fast_object`` answers this selection on this type: the compiled completer of
        its shape and the children's (type, sub-selection) it is given; None when it cannot
        answer it. Made once per request like ``collect_subfields``, and kept for later
        requests of the same operation when it has no directive (``_shared_plans``)."""
        key = (object_type, id(field_details_list))
        cached = self._object_plans.get(key)
        if cached is not None:
            return cached[1]
        shared = _shared_plans(self.operation, self.fragments)
        node_ids = (object_type, *[id(details.node) for details in field_details_list])
        if shared is not None and node_ids in shared:
            plan = shared[node_ids]
            self._object_plans[key] = (field_details_list, plan)
            return plan
        entries = self._make_object_plan(object_type, field_details_list)
        plan = None
        if entries is not None:
            shape = tuple(entry if entry[1] is _PLAIN else entry[:3] for entry in entries)
            children = tuple(_child(*entry[3]) for entry in entries if entry[1] in (_AHEAD, _ATTR))
            plan = (_completer(shape), children)
        # The list is kept alive with the plan so that its id is not reused in this request.
        self._object_plans[key] = (field_details_list, plan)
        if shared is not None:
            shared[node_ids] = plan
        return plan

    def _make_object_plan(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> tuple[tuple[Any, ...], ...] | None:
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return None
        entries: list[tuple[Any, ...]] = []
        for response_name, sub_details in grouped_field_set.items():
            details = sub_details[0]
            if details.defer_usage is not None:
                return None
            field_name = details.node.name.value
            if field_name == "__typename":
                entries.append((response_name, _TYPENAME, object_type.name, None, True))
                continue
            key = (object_type.name, field_name)
            try:
                plan = self._plans[key]
            except KeyError:
                plan = self._plans[key] = _plan(object_type, field_name)
            if plan is None:
                return None
            if plan[0] == "plain":
                _, attribute, leaf, non_null = plan
                entries.append((response_name, _PLAIN, attribute, _serializer(leaf), non_null))
            else:
                kind = _AHEAD if plan[0] == "ahead" else _ATTR
                field_type = object_type.fields[field_name].type
                entries.append((response_name, kind, plan[1], (field_type, sub_details), False))
        return tuple(entries)

    async def _await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: Any,
        path: Path,
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


def _shared_plans(operation: Any, fragments: Any) -> dict[tuple[Any, ...], Any] | None:
    """The object plans shared by every request of ``operation`` (``graph.memo``), by (type,
    the ids of the field nodes selecting it); None when a selection of the operation or its
    fragments carries a directive. Without one, what ``collect_subfields`` collects for those
    nodes depends on the document alone, not on the variables (``@skip``/``@include``) nor on
    ``@defer``. Making the plans again took about 100 us of the customer detail's request
    (issue 17)."""
    memo = operation_memo(operation)
    try:
        return memo[_PLANS_KEY]
    except KeyError:
        pass
    fixed = not any(_directed(node) for node in (operation, *fragments.values()))
    plans = memo[_PLANS_KEY] = {} if fixed else None
    return plans


_PLANS_KEY = "execution.object_plans"


def _directed(node: Any) -> bool:
    """Whether a selection below ``node`` (an operation or a fragment) carries a directive."""
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return False
    for selection in selection_set.selections:
        if selection.directives or _directed(selection):
            return True
    return False


def _alive(ref: weakref.ReferenceType[PlainFieldExecutionContext]) -> PlainFieldExecutionContext:
    context = ref()
    if context is None:  # a resolver kept its info past the end of execution
        raise RuntimeError("The operation's execution has ended.")
    return context


def _plain(source: Any, plan: tuple[Any, ...]) -> Any:
    """The serialised attribute, or Undefined when the ordinary path must decide."""
    _, attribute, leaf, non_null = plan
    try:  # inlined _read_attribute: this runs for most fields of a response
        value = getattr(source, attribute, Undefined)
    except Exception:
        return Undefined
    if value is None:
        return Undefined if non_null else None
    if value is Undefined:
        return Undefined
    return _serializer(leaf)(value)
