"""Low allocation's rows in their default order (allocation percent, then subscription) without
sorting the product's flagged rows: ``ix_license_product_total_low`` (partner, product, band,
state, ``allocation_tenths``, subscription) walked band by band from the cursor and the bands
merged up to the page's size; and the full rows of a page cut from thin flagged rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import CTE, and_, bindparam, select, tuple_, union_all

from db.license_totals import LICENSE_PRODUCT_TOTAL
from db.queries.analytics.common import TOTAL_COLUMNS, BoundScope, Medians, T, Times, low_parts


def low_in_order(
    product: str,
    at: Times,
    scope: BoundScope,
    medians: Medians,
    halves: Mapping[tuple[str, int], Any],
    bounds: Mapping[tuple[str, int], Any],
    down: bool,
    first: int,
    cursor: bool,
) -> CTE:
    """A low-allocation page in its default order (allocation percent, then subscription),
    thin rows with keys ``k0``, ``k1``, without sorting every flagged row of the product: each
    band's part walks its range of ``ix_license_product_total_low`` from the cursor in the
    page's order and stops after ``first`` + 1 rows, and the parts are merged up to as many
    (SQLite: a merge of the compound's ordered arms; PostgreSQL: a Merge Append under the
    Limit). Each part is a subquery with its own ORDER BY and LIMIT: PostgreSQL pulls no
    UNION ALL arm with a WHERE into an ordered append (its ``is_safe_append_member``), so bare
    arms were appended and sorted whole; the LIMIT bounds a part's walk whatever the plan.
    ``allocation_tenths`` is ``tenths_sql(assigned, purchased)``, the key the section's other
    statements compute."""
    keys = (T.allocation_tenths, T.subscription_id)
    conditions = []
    if cursor:
        after = tuple_(*[bindparam(f"after_{i}", type_=k.type) for i, k in enumerate(keys)])
        conditions.append(tuple_(*keys) < after if down else tuple_(*keys) > after)
    parts = low_parts(
        [product],
        at,
        scope,
        medians,
        thin=True,
        halves=halves,
        bounds=bounds,
        extra=[k.label(f"k{i}") for i, k in enumerate(keys)],
        conditions=conditions,
        # Descending from a cursor, the cursor is the range's upper end (below it, the ratio
        # test alone decides); with both, SQLite walked down from the bound through the rows
        # already paged.
        up_to_bound=not (down and cursor),
    )
    in_order = [k.desc() if down else k.asc() for k in keys]
    if len(parts) == 1:
        return parts[0].order_by(*in_order).limit(first + 1).cte("page")
    arms = [
        select(*walk.c)
        for walk in (
            part.order_by(*in_order).limit(first + 1).subquery(f"band_{i}")
            for i, part in enumerate(parts)
        )
    ]
    merged = union_all(*arms)
    ordered = [merged.selected_columns[f"k{i}"] for i in range(len(keys))]
    return (
        merged.order_by(*[k.desc() if down else k.asc() for k in ordered])
        .limit(first + 1)
        .cte("page")
    )


def full_rows(cut: CTE, keys: int) -> CTE:
    """A page cut from thin low-allocation rows, with the full rows read by key."""
    joined = cut.join(
        LICENSE_PRODUCT_TOTAL,
        and_(T.subscription_id == cut.c.sub_pk, T.product == cut.c.product),
    )
    k = [cut.c[f"k{i}"] for i in range(keys)]
    return select(*TOTAL_COLUMNS, T.band, cut.c.low, *k).select_from(joined).cte("full_page")
