"""Per-operation memos (``graph.memo``): kept while the operation lives, dropped with it; the
object plans shared across requests only for operations without directives."""

from __future__ import annotations

import gc

from graphql import parse

from graph import memo
from graph.execution import _shared_plans


def _fragments(document):
    return {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}


def test_a_memo_lives_as_long_as_its_operation():
    # given
    document = parse("{ customer(id: 1) { name } }")
    operation = document.definitions[0]
    kept = memo.operation_memo(operation)
    kept["nodes"] = [operation.selection_set.selections[0]]  # nodes below it do not keep it
    # then
    assert memo.operation_memo(operation) is kept
    assert memo.operation_memo(parse("{ customer(id: 1) { name } }").definitions[0]) is not kept
    # when
    del document, operation, kept
    gc.collect()
    # then
    assert not any(ref() is not None and "nodes" in m for ref, m in memo._MEMOS.values())


def test_plans_are_shared_only_without_directives():
    plain = parse("query { a { ...F } } fragment F on T { b }")
    skipping = parse("query($v: Boolean!) { a { b @skip(if: $v) } }")
    in_fragment = parse("query { a { ...F } } fragment F on T { b @include(if: true) }")
    deferred = parse("query { a { ... @defer { b } } }")
    assert _shared_plans(plain.definitions[0], _fragments(plain)) == {}
    for document in (skipping, in_fragment, deferred):
        assert _shared_plans(document.definitions[0], _fragments(document)) is None
