"""The depth limit, counted through fragments (the depth of the deepest field of the expanded
document), replacing Strawberry's ``QueryDepthLimiter``, whose walk re-expands a fragment at
every spread (exponential in nested spreads) and fails on unknown fragments."""

from __future__ import annotations

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

from graph.errors import ErrorCode


def depth_rule(max_depth: int) -> type[ValidationRule]:
    """A validation rule refusing operations deeper than ``max_depth`` (``QUERY_TOO_COMPLEX``).

    The depth is that of the deepest field of the expanded document: a field with a selection
    counts 1 plus its deepest child, through fragment spreads and inline fragments; leaves and
    introspection (priced by the cost walk) count 0. Each fragment's depth is computed once, so
    fragments spreading each other many times do not multiply the work.
    """

    class DepthRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            memo: dict[str, int] = {}
            for definition in document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    try:
                        depth = _depth(definition.selection_set, fragments, memo, set())
                    except RecursionError:
                        depth = max_depth + 1
                    if depth > max_depth:
                        name = definition.name.value if definition.name else "anonymous"
                        context.report_error(
                            GraphQLError(
                                f"'{name}' exceeds maximum operation depth of {max_depth}"
                                f" (depth {depth}, counted through fragments).",
                                definition,
                                extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value},
                            )
                        )

    return DepthRule


def _depth(
    node: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    memo: dict[str, int],
    open_: set[str],
) -> int:
    deepest = 0
    for sel in node.selections:
        if isinstance(sel, FieldNode):
            if sel.selection_set is None or sel.name.value.startswith("__"):
                continue
            deepest = max(deepest, 1 + _depth(sel.selection_set, fragments, memo, open_))
        elif isinstance(sel, InlineFragmentNode):
            deepest = max(deepest, _depth(sel.selection_set, fragments, memo, open_))
        elif isinstance(sel, FragmentSpreadNode):
            name = sel.name.value
            fragment = fragments.get(name)
            if fragment is None or name in open_:
                continue  # reported by KnownFragmentNames / NoFragmentCycles
            if name not in memo:
                open_.add(name)
                memo[name] = _depth(fragment.selection_set, fragments, memo, open_)
                open_.discard(name)
            deepest = max(deepest, memo[name])
    return deepest
