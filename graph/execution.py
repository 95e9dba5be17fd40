"""A cheaper path through graphql-core for the fields that are plain attributes.

Most fields of a response are scalars or enums read straight off a row object (``name``,
``startDate``, ``purchased``). graphql-core resolves each of them like any other field: it builds a
resolve-info object, calls Strawberry's wrapper, checks whether the result is awaitable and
dispatches on the return type before serialising. For a directory page that is about 1,300
fields, and that generic path was the largest cost of the request (issue 8's profile).

The execution context below decides once per (type, field) whether the field is *plain*: a
Strawberry field with no resolver and no field extensions (Strawberry's own "basic field"), whose
type is a scalar or enum, possibly non-null. For those it reads the attribute and serialises it
directly. Anything unusual (a null in a non-null field, a value the scalar refuses, a field that
is not plain) takes graphql-core's ordinary path, so errors, paths and nullability stay exactly
as the specification and graphql-core produce them.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# (attribute name, leaf type, non-null) of a plain field; None for every other field.
Plan = tuple[str, GraphQLLeafType, bool] | None
_PLANS: WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], Plan]] = WeakKeyDictionary()


def _plan(parent_type: GraphQLObjectType, field_name: str) -> Plan:
    field_def = parent_type.fields.get(field_name)
    if field_def is None:
        return None
    field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField) or not field.is_basic_field:
        return None
    if not getattr(field_def.resolve, "_is_default", False) or field.python_name is None:
        return None
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    leaf = return_type.of_type if non_null else return_type
    if not is_leaf_type(leaf):
        return None
    return field.python_name, leaf, non_null


class PlainFieldExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context with a direct path for plain scalar and enum fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Decided once per schema and (type, field), shared by every later request.
        plans = _PLANS.get(self.schema)
        if plans is None:
            plans = _PLANS[self.schema] = {}
        self._plans = plans

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        field_name = field_details_list[0].node.name.value
        key = (parent_type.name, field_name)
        try:
            plan = self._plans[key]
        except KeyError:
            plan = self._plans[key] = _plan(parent_type, field_name)
        if plan is not None:
            attribute, leaf, non_null = plan
            value = getattr(source, attribute, Undefined)
            if value is None and not non_null:
                return None
            if value is not None and value is not Undefined:
                try:
                    coerced = leaf.coerce_output_value(value)
                except Exception:  # the ordinary path below reports it properly
                    coerced = Undefined
                if coerced is not Undefined and coerced is not None:
                    return coerced
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
