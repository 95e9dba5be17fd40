"""Depth and alias limits over the expanded document, replacing Strawberry's
``QueryDepthLimiter`` and ``MaxAliasesLimiter``.

Both count through fragment spreads and inline fragments, as if every spread were written out:
the depth is that of the deepest field (a field with a selection counts 1 plus its deepest
child; leaves and introspection, which the cost walk prices, count 0) and every aliased field
counts once per time it would appear. Strawberry's walks re-expanded a fragment at every spread,
so fragments spreading the next one twice took 2**n steps to validate (40 of them: a CPU-bound
request that never ends); here each fragment is measured once and reused, and the counts of a
document are computed in time linear in its size. Errors carry ``QUERY_TOO_COMPLEX``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class _Measure:
    """Depth and aliases of selection sets, each fragment measured once."""

    fragments: dict[str, FragmentDefinitionNode]
    memo: dict[str, tuple[int, int]] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)

    def selection(self, node: SelectionSetNode) -> tuple[int, int]:
        deepest = aliases = 0
        for sel in node.selections:
            if isinstance(sel, FieldNode):
                if sel.alias is not None:
                    aliases += 1
                if sel.selection_set is None:
                    continue
                depth, inner = self.selection(sel.selection_set)
                aliases += inner
                if not sel.name.value.startswith("__"):
                    deepest = max(deepest, 1 + depth)
            elif isinstance(sel, InlineFragmentNode):
                depth, inner = self.selection(sel.selection_set)
                deepest, aliases = max(deepest, depth), aliases + inner
            elif isinstance(sel, FragmentSpreadNode):
                depth, inner = self.fragment(sel.name.value)
                deepest, aliases = max(deepest, depth), aliases + inner
        return deepest, aliases

    def fragment(self, name: str) -> tuple[int, int]:
        found = self.memo.get(name)
        if found is not None:
            return found
        fragment = self.fragments.get(name)
        if fragment is None or name in self.open:
            return 0, 0  # reported by KnownFragmentNames / NoFragmentCycles
        self.open.add(name)
        found = self.memo[name] = self.selection(fragment.selection_set)
        self.open.discard(name)
        return found


def limits_rule(max_depth: int, max_aliases: int) -> type[ValidationRule]:
    """A validation rule refusing operations deeper than ``max_depth`` or with more than
    ``max_aliases`` aliases (over all operations of the document, as Strawberry counted)."""

    class DocumentLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            measure = _Measure(
                {
                    d.name.value: d
                    for d in document.definitions
                    if isinstance(d, FragmentDefinitionNode)
                }
            )
            total_aliases = 0
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                try:
                    depth, aliases = measure.selection(definition.selection_set)
                except RecursionError:
                    depth, aliases = max_depth + 1, 0
                total_aliases += aliases
                if depth > max_depth:
                    name = definition.name.value if definition.name else "anonymous"
                    context.report_error(
                        _error(
                            f"'{name}' exceeds maximum operation depth of {max_depth} (depth "
                            f"{depth}, counting fields reached through fragments).",
                            definition,
                        )
                    )
            if total_aliases > max_aliases:
                context.report_error(
                    _error(f"{total_aliases} aliases found. Allowed: {max_aliases}", None)
                )

    return DocumentLimits


def _error(message: str, node: OperationDefinitionNode | None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value})
