"""The caller, its partner and the partner's administrators."""

from __future__ import annotations

import strawberry

from db.queries import admins as q
from db.queries.admin_pages import admins_page
from db.queries.own_rows import admin_row, partner_row
from graph.auth.permissions import Act, Obj, require
from graph.context import Info
from graph.errors import caller_gone
from graph.pagination import CursorCodec, paging
from graph.types.admins import Admin, AdminConnection, AdminEdge, Partner
from graph.types.arguments import After, Before, First, Last


@strawberry.type
class AdminQueries:
    @strawberry.field(description="The authenticated administrator.")
    async def viewer(self, info: Info) -> Admin:
        ctx = info.context
        principal = ctx.principal
        async with ctx.db() as session:
            row = await admin_row(
                session, partner_id=principal.partner_id, admin_id=principal.admin_id
            )
        if row is None:
            raise caller_gone()
        return Admin.from_row(row)

    @strawberry.field(description="The caller's partner.")
    async def partner(self, info: Info) -> Partner:
        ctx = info.context
        async with ctx.db() as session:
            row = await partner_row(session, partner_id=ctx.principal.partner_id)
        if row is None:
            raise caller_gone()
        return Partner.from_row(row)

    @strawberry.field(description="The partner's administrators with their roles, by creation.")
    async def admins(
        self,
        info: Info,
        first: First = 50,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> AdminConnection:
        ctx = info.context
        scope = require(ctx, Obj.ADMIN, Act.READ)
        page = paging(info, first, after, last, before, ctx.settings.max_page_size)
        codec = CursorCodec(ctx.services.secret)
        # Bound to the partner: another partner's cursor is refused, not silently reinterpreted.
        partner_fp = str(scope.partner_id)
        cursor_id = (
            codec.decode(page.cursor, "admins", partner_fp, ("int",))[0]
            if page.cursor is not None
            else None
        )

        async def count() -> int:  # only when ``totalCount`` is selected
            async with ctx.db() as session:
                return await q.count_admins(session, partner_id=scope.partner_id)

        async with ctx.db() as session:
            read, more = await admins_page(
                session,
                partner_id=scope.partner_id,
                first=page.size,
                after_id=cursor_id,
                backward=page.backward,
            )
        rows = page.arrange(read)
        nodes = [Admin.from_row(r) for r in rows]
        cursors = [codec.encode("admins", partner_fp, (r.id,)) for r in rows]
        return AdminConnection(
            edges=[AdminEdge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)],
            nodes=nodes,
            page_info=page.page_info(cursors, more),
            count=count,
        )
