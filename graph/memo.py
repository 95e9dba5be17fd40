"""What is worked out from a parsed operation alone, kept as long as the operation is.

The parsed documents are kept by ``graph.documents`` (bounded in entries and bytes), so the
requests of one document meet the same operation and field nodes; a memo keyed by the ids of
those nodes stays right while the operation lives. It is dropped when the operation is freed
(its document evicted and no request holding it): nothing here keeps a tree alive past its
eviction. The values must not refer to the operation itself (only to nodes below it), or it
would never be freed.
"""

from __future__ import annotations

import weakref
from typing import Any

_MEMOS: dict[int, tuple[weakref.ref[Any], dict[Any, Any]]] = {}


def operation_memo(operation: Any) -> dict[Any, Any]:
    """The memo of ``operation`` (an ``OperationDefinitionNode``), made empty on first use."""
    key = id(operation)
    entry = _MEMOS.get(key)
    if entry is not None and entry[0]() is operation:
        return entry[1]

    def forget(ref: weakref.ref[Any], key: int = key) -> None:
        found = _MEMOS.get(key)
        if found is not None and found[0] is ref:
            del _MEMOS[key]

    memo: dict[Any, Any] = {}
    _MEMOS[key] = (weakref.ref(operation, forget), memo)
    return memo
