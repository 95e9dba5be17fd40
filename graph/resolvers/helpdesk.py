"""Partner helpdesk: open, comment on and close cases; list and read them.

Cases are partner-wide: the ``helpdesk`` policy object decides who reads (``read``) and who
opens, comments on and closes (``write``) them, for every case of the partner. A case may name a
customer, which must be one the caller may see.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

import strawberry

from db.enums import HelpdeskState
from db.queries import customers as customer_q
from db.queries import helpdesk as q
from graph.auth.permissions import Act, Obj, require, scope_or_none
from graph.context import Context, Info
from graph.ids import pk_of, to_global_id
from graph.mutations import (
    Change,
    UserError,
    UserErrors,
    input_pk,
    run_mutation,
    user_error,
)
from graph.pagination import CursorCodec, fingerprint, paging
from graph.types.arguments import After, Before, First, Last
from graph.types.helpdesk import (
    AddHelpdeskCaseCommentInput,
    AddHelpdeskCaseCommentPayload,
    CloseHelpdeskCaseInput,
    CloseHelpdeskCasePayload,
    HelpdeskCase,
    HelpdeskCaseConnection,
    HelpdeskCaseEdge,
    HelpdeskCaseFilter,
    HelpdeskComment,
    OpenHelpdeskCaseInput,
    OpenHelpdeskCasePayload,
)

SUBJECT_MAX = 200
TEXT_MAX = 10_000
LIST_NAME = "helpdeskCases"


def _text_errors(
    value: str, field: str, prefix: str, maximum: int, *, required: bool = True
) -> tuple[str, list[UserError]]:
    """The trimmed text and what is wrong with it (``{prefix}_REQUIRED`` / ``_TOO_LONG``)."""
    text = value.strip()
    if required and not text:
        return text, [
            UserError(field=[field], message=f"{field} is required.", code=f"{prefix}_REQUIRED")
        ]
    if len(text) > maximum:
        return text, [
            UserError(
                field=[field],
                message=f"{field} is limited to {maximum:,} characters, got {len(text):,}.",
                code=f"{prefix}_TOO_LONG",
            )
        ]
    return text, []


def _case_pk(case_id: str) -> int:
    """The primary key of a helpdesk case's global ID; INVALID_ID as a user error."""
    return input_pk(case_id, "HelpdeskCase", "caseId")


async def _visible_customer(ctx: Context, session: Any, customer_id: str) -> int:
    pk = input_pk(customer_id, "Customer", "customerId")
    scope = scope_or_none(ctx, Obj.CUSTOMER, Act.READ)
    found = await customer_q.customers_by_ids(session, scope=scope, ids=[pk]) if scope else {}
    if pk not in found:
        raise user_error("NOT_FOUND", "No such customer.", "customerId")
    return pk


async def _open_case(c: Change, case_id: str) -> Any:
    """The caller's partner's case, locked, and still open; NOT_FOUND / CASE_CLOSED otherwise."""
    row = await q.helpdesk_case_for_update(
        c.session, partner_id=c.scope.partner_id, case_id=_case_pk(case_id)
    )
    if row is None:
        raise user_error("NOT_FOUND", "No such helpdesk case.", "caseId")
    if row.state != HelpdeskState.OPEN.value:
        raise user_error("CASE_CLOSED", "The case is closed.", "caseId")
    return row


async def _checked(
    lookup: Awaitable[Any], errors: list[UserError], *, lookup_first: bool = True
) -> Any:
    """Await ``lookup``; raise its user errors and ``errors`` together (in input field order),
    so that every problem of the input is reported at once."""
    try:
        found = await lookup
    except UserErrors as e:
        ordered = [*e.errors, *errors] if lookup_first else [*errors, *e.errors]
        raise UserErrors(*ordered) from None
    if errors:
        raise UserErrors(*errors)
    return found


def _audit_view(row: Any) -> dict[str, Any]:
    return {
        "product": row.product,
        "subject": row.subject,
        "description": row.description,
        "severity": row.severity,
        "state": row.state,
        "customerId": to_global_id("Customer", row.customer_id) if row.customer_id else None,
        "closedAt": row.closed_at,
    }


async def helpdesk_case_node(ctx: Context, pk: int) -> HelpdeskCase | None:
    """One case of the caller's partner by primary key; None when missing or not readable."""
    scope = scope_or_none(ctx, Obj.HELPDESK, Act.READ)
    if scope is None:
        return None
    async with ctx.db() as session:
        rows = await q.helpdesk_cases_by_ids(session, partner_id=scope.partner_id, ids=[pk])
    return HelpdeskCase.from_row(rows[pk]) if pk in rows else None


def _case_query(ctx: Context, f: HelpdeskCaseFilter | None) -> q.HelpdeskCaseQuery:
    if f is None:
        return q.HelpdeskCaseQuery()

    def values(items: list[Any] | None) -> tuple[str, ...] | None:
        return tuple(sorted({i.value for i in items})) if items is not None else None

    customer_pk = pk_of(f.customer_id, "Customer", "filter.customerId") if f.customer_id else None
    return q.HelpdeskCaseQuery(
        states=values(f.states),
        products=values(f.products),
        severities=values(f.severities),
        customer_id=customer_pk,
        customer_scope=scope_or_none(ctx, Obj.CUSTOMER, Act.READ) if customer_pk else None,
    )


@strawberry.type
class HelpdeskQueries:
    @strawberry.field(
        description="The partner's helpdesk cases, newest first, filtered and keyset-paged "
        "(`first` 1-100). Needs the helpdesk read permission."
    )
    async def helpdesk_cases(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
        filter: Annotated[
            HelpdeskCaseFilter | None,
            strawberry.argument(description="Only cases matching every condition given."),
        ] = None,
        last: Last = None,
        before: Before = None,
    ) -> HelpdeskCaseConnection:
        ctx = info.context
        scope = require(ctx, Obj.HELPDESK, Act.READ)
        page = paging(info, first, after, last, before, ctx.settings.max_page_size)
        query = _case_query(ctx, filter)
        codec = CursorCodec(ctx.services.secret)
        # The customer scope is part of what the filter means, hence of the fingerprint.
        fp = fingerprint(scope.partner_id, repr(query))
        cursor_id = (
            codec.decode(page.cursor, LIST_NAME, fp, ("int",))[0]
            if page.cursor is not None
            else None
        )

        async def count() -> int:
            async with ctx.db() as session:
                return await q.count_helpdesk_cases(
                    session, partner_id=scope.partner_id, query=query
                )

        async with ctx.db() as session:
            read, more = await q.helpdesk_cases_page(
                session,
                partner_id=scope.partner_id,
                query=query,
                first=page.size,
                before_id=cursor_id,
                backward=page.backward,
            )
        rows = page.arrange(read)
        nodes = [HelpdeskCase.from_row(r) for r in rows]
        cursors = [codec.encode(LIST_NAME, fp, (r.id,)) for r in rows]
        return HelpdeskCaseConnection(
            edges=[HelpdeskCaseEdge(node=n, cursor=c) for n, c in zip(nodes, cursors, strict=True)],
            nodes=nodes,
            page_info=page.page_info(cursors, more),
            count=count,
        )

    @strawberry.field(
        description="One helpdesk case of the partner by global ID; null when missing or not "
        "readable."
    )
    async def helpdesk_case(
        self,
        info: Info,
        id: Annotated[
            strawberry.ID,
            strawberry.argument(
                description="The case's `id`; the ID of another type is refused (INVALID_ID)."
            ),
        ],
    ) -> HelpdeskCase | None:
        return await helpdesk_case_node(info.context, pk_of(id, "HelpdeskCase"))


async def _open(
    c: Change, input: OpenHelpdeskCaseInput, subject: str, description: str, errors: list[Any]
) -> OpenHelpdeskCasePayload:
    ctx, session = c.ctx, c.session
    customer_pk = None
    if input.customer_id is not None:
        customer_pk = await _checked(
            _visible_customer(ctx, session, input.customer_id), errors, lookup_first=False
        )
    elif errors:
        raise UserErrors(*errors)
    row = await q.create_helpdesk_case(
        session,
        partner_id=c.scope.partner_id,
        admin_id=ctx.principal.admin_id,
        customer_id=customer_pk,
        product=input.product.value,
        subject=subject,
        description=description,
        severity=input.severity.value,
        now=ctx.now,
    )
    c.record("helpdeskCase", to_global_id("HelpdeskCase", row.id), after=_audit_view(row))
    return OpenHelpdeskCasePayload(case=HelpdeskCase.from_row(row), user_errors=[])


async def _comment(
    c: Change, input: AddHelpdeskCaseCommentInput, body: str, errors: list[Any]
) -> AddHelpdeskCaseCommentPayload:
    ctx = c.ctx
    case = await _checked(_open_case(c, input.case_id), errors)
    comment = await q.add_helpdesk_comment(
        c.session,
        case_id=case.id,
        admin_id=ctx.principal.admin_id,
        body=body,
        now=ctx.now,
        case=case,
    )
    c.record(
        "helpdeskCase",
        to_global_id("HelpdeskCase", case.id),
        after={"commentId": comment.id, "body": body},
    )
    return AddHelpdeskCaseCommentPayload(
        case=HelpdeskCase.from_row(case), comment=HelpdeskComment.from_row(comment), user_errors=[]
    )


async def _close(
    c: Change, input: CloseHelpdeskCaseInput, resolution: str, errors: list[Any]
) -> CloseHelpdeskCasePayload:
    ctx, session = c.ctx, c.session
    before = await _checked(_open_case(c, input.case_id), errors)
    if resolution:
        await q.add_helpdesk_comment(
            session,
            case_id=before.id,
            admin_id=ctx.principal.admin_id,
            body=resolution,
            now=ctx.now,
        )
    after = await q.close_helpdesk_case(
        session, partner_id=c.scope.partner_id, case_id=before.id, now=ctx.now
    )
    if after is None:  # closed by someone else since we read it
        raise user_error("CASE_CLOSED", "The case is closed.", "caseId")
    c.record(
        "helpdeskCase",
        to_global_id("HelpdeskCase", after.id),
        before={"state": before.state},
        after={"state": after.state, "closedAt": after.closed_at, "resolution": resolution or None},
    )
    return CloseHelpdeskCasePayload(case=HelpdeskCase.from_row(after), user_errors=[])


@strawberry.type
class HelpdeskMutations:
    @strawberry.mutation(
        description="Open a case with the Partner Helpdesk. Needs the helpdesk write permission."
    )
    async def open_helpdesk_case(
        self,
        info: Info,
        input: Annotated[
            OpenHelpdeskCaseInput,
            strawberry.argument(
                description="Product, severity, subject and description of the problem, and "
                "the customer affected when there is one."
            ),
        ],
    ) -> OpenHelpdeskCasePayload:
        subject, subject_errors = _text_errors(input.subject, "subject", "SUBJECT", SUBJECT_MAX)
        description, description_errors = _text_errors(
            input.description, "description", "DESCRIPTION", TEXT_MAX
        )
        errors = [*subject_errors, *description_errors]
        return await run_mutation(
            info.context,
            operation="openHelpdeskCase",
            obj=Obj.HELPDESK,
            act=Act.WRITE,
            work=lambda c: _open(c, input, subject, description, errors),
            refused=lambda found: OpenHelpdeskCasePayload(case=None, user_errors=found),
        )

    @strawberry.mutation(
        description="Add a comment to an open case. Needs the helpdesk write permission."
    )
    async def add_helpdesk_case_comment(
        self,
        info: Info,
        input: Annotated[
            AddHelpdeskCaseCommentInput,
            strawberry.argument(description="The open case and the comment."),
        ],
    ) -> AddHelpdeskCaseCommentPayload:
        body, errors = _text_errors(input.body, "body", "COMMENT", TEXT_MAX)
        return await run_mutation(
            info.context,
            operation="addHelpdeskCaseComment",
            obj=Obj.HELPDESK,
            act=Act.WRITE,
            work=lambda c: _comment(c, input, body, errors),
            refused=lambda found: AddHelpdeskCaseCommentPayload(
                case=None, comment=None, user_errors=found
            ),
        )

    @strawberry.mutation(
        description="Close an open case, optionally with its resolution. Needs the helpdesk "
        "write permission."
    )
    async def close_helpdesk_case(
        self,
        info: Info,
        input: Annotated[
            CloseHelpdeskCaseInput,
            strawberry.argument(description="The open case and, optionally, how it was resolved."),
        ],
    ) -> CloseHelpdeskCasePayload:
        resolution, errors = _text_errors(
            input.resolution or "", "resolution", "RESOLUTION", TEXT_MAX, required=False
        )
        return await run_mutation(
            info.context,
            operation="closeHelpdeskCase",
            obj=Obj.HELPDESK,
            act=Act.WRITE,
            work=lambda c: _close(c, input, resolution, errors),
            refused=lambda found: CloseHelpdeskCasePayload(case=None, user_errors=found),
        )
