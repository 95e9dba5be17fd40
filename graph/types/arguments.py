"""Arguments that recur across the schema, typed with their descriptions (``Annotated``).

A resolver writes ``first: First = 50`` instead of ``first: int = 50``: the GraphQL argument is
the same, and GraphiQL, IDEs and generated code show what it takes and what happens when it is
wrong. Arguments that occur once carry their own ``strawberry.argument(description=...)``.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

First = Annotated[
    int,
    strawberry.argument(
        description="Rows per page, 1-100 (the server's page-size limit); outside, "
        "INVALID_PAGE_SIZE. The cost of a query counts the page size asked for, not the rows found."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="Continue after this cursor: the previous page's `pageInfo.endCursor` (or an "
        "edge's `cursor`); omit it for the first page. Cursors are opaque and signed: one from "
        "another list, ordering or filter is refused (INVALID_CURSOR)."
    ),
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description="Page backward: the last rows before `before` (or of the whole list), 1-100 "
        "(outside, INVALID_PAGE_SIZE). Not with `first` or `after` (BAD_USER_INPUT); the rows "
        "still come in the list's order."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(
        description="Page backward from this cursor: the next page's `pageInfo.startCursor` (or "
        "an edge's `cursor`), with `last`; without `last`, the default page size. Signed like "
        "`after`: one from another list, ordering or filter is refused (INVALID_CURSOR)."
    ),
]
NodeId = Annotated[
    strawberry.ID,
    strawberry.argument(
        description="A global ID, as an object's `id` field gives it; a malformed one is "
        "refused (INVALID_ID)."
    ),
]
Weeks = Annotated[
    int,
    strawberry.argument(
        description="Weeks in the trend, 1-52, ending with the analytics week; outside, this "
        "field alone fails with BAD_USER_INPUT."
    ),
]
