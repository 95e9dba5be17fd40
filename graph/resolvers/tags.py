"""Tag mutations: create, rename, delete, and bulk attach/detach (DESIGN.md section 2, "Tag")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import strawberry

from db.queries import customer_children as kids
from db.queries import customers as cq
from db.queries import tags as tq
from db.queries.writes import lock_customers
from db.scope import Scope
from graph.auth.permissions import Act, Obj, scope_or_none
from graph.context import Context, Info
from graph.errors import forbidden
from graph.ids import pk_of, to_global_id
from graph.mutations import Change, UserError, UserErrors, input_pk, run_mutation, user_error
from graph.types.customers import Customer, Subscription
from graph.types.tag_inputs import (
    CreateTagInput,
    CustomerTagsInput,
    CustomerTagsPayload,
    DeleteTagInput,
    DeleteTagPayload,
    SubscriptionTagsInput,
    SubscriptionTagsPayload,
    TagPayload,
    UpdateTagInput,
)
from graph.types.tags import Tag

MAX_NAME = 25
MAX_DESCRIPTION = 500
MAX_BULK = 100
Right = tuple[Obj, Act]
CUSTOMER_READ: Right = (Obj.CUSTOMER, Act.READ)
SUBSCRIPTION_READ: Right = (Obj.SUBSCRIPTION, Act.READ)


def _name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise user_error("TAG_NAME_REQUIRED", "A tag name cannot be empty.", "name")
    # The case-insensitive key must fit as well ("İ" lower-cases to two characters).
    if len(name) > MAX_NAME or len(name.lower()) > MAX_NAME:
        raise user_error(
            "TAG_NAME_TOO_LONG", f"A tag name is at most {MAX_NAME} characters.", "name"
        )
    return name


def _description(raw: str | None) -> str | None:
    if raw is not None and len(raw) > MAX_DESCRIPTION:
        raise user_error(
            "DESCRIPTION_TOO_LONG", f"At most {MAX_DESCRIPTION} characters.", "description"
        )
    return raw.strip() or None if raw is not None else None


def _pks(ids: Sequence[str], type_name: str, field: str) -> list[int]:
    pks = [input_pk(raw, type_name, field, str(i)) for i, raw in enumerate(ids)]
    return list(dict.fromkeys(pks))


def _at(ids: Sequence[str], type_name: str, pk: int) -> str:
    """Position of ``pk`` in the caller's list (``_pks`` dropped duplicates, so an index into its
    result would point at the wrong element)."""
    return str(next(i for i, raw in enumerate(ids) if pk_of(raw, type_name) == pk))


def _taken() -> UserErrors:
    return user_error("TAG_NAME_TAKEN", "The partner already has a tag with this name.", "name")


async def _tag_to_change(session: Any, scope: Scope, raw_id: str) -> Any:
    """The tag a rename or delete changes, locked; under an ``assigned`` scope ``FORBIDDEN``
    when the tag is on a customer (or a subscription of one) outside the caller's customers,
    whose tags would change with it."""
    pk = _pks([raw_id], "Tag", "id")[0]
    row = await tq.lock_tag(session, partner_id=scope.partner_id, tag_id=pk)
    if row is None:
        raise user_error("NOT_FOUND", "No such tag.", "id")
    if scope.assigned_admin_id is not None and await tq.tag_reaches_outside(
        session, tag_id=pk, scope=scope
    ):
        raise forbidden(
            "The tag is on customers you do not manage: only an admin who manages all of "
            "them may rename or delete it."
        )
    return row


async def _within_all(
    ctx: Context, session: Any, scope: Scope, customer_pks: Sequence[int], rights: Sequence[Right]
) -> set[int]:
    """Of ``customer_pks`` (all within ``scope``, the caller's tag write scope), those each of
    the parent objects' ``rights`` also reaches: a role may write tags but read only some
    customers, or none of their subscriptions. Built-in roles need no statement here."""
    kept = set(customer_pks)
    for obj, act in rights:
        other = scope_or_none(ctx, obj, act)
        if other is None:
            return set()
        if other.assigned_admin_id in (None, scope.assigned_admin_id):
            continue  # the whole partner, or the very customers of ``scope``
        kept &= set(await cq.customers_by_ids(session, scope=other, ids=list(kept)))
    return kept


async def _tag_pks(session: Any, scope: Scope, ids: Sequence[str]) -> list[int]:
    pks = _pks(ids, "Tag", "tagIds")
    if not pks:
        raise user_error("TAGS_REQUIRED", "Give at least one tag.", "tagIds")
    if len(pks) > MAX_BULK:  # also keeps the IN list far below the databases' bind limits
        raise user_error("TOO_MANY_OBJECTS", f"At most {MAX_BULK} tags per call.", "tagIds")
    found = await tq.tags_by_ids(session, partner_id=scope.partner_id, ids=pks, share=True)
    for pk in pks:
        if pk not in found:
            raise user_error("NOT_FOUND", "No such tag.", "tagIds", _at(ids, "Tag", pk))
    return pks


def _bulk_size(pks: Sequence[int], field: str) -> None:
    if not pks:
        raise user_error("NOTHING_TO_TAG", "Give at least one object.", field)
    if len(pks) > MAX_BULK:
        raise user_error("TOO_MANY_OBJECTS", f"At most {MAX_BULK} per call.", field)


async def _create(c: Change, input: CreateTagInput) -> TagPayload:
    name, description = _name(input.name), _description(input.description)
    if await tq.tag_name_taken(c.session, partner_id=c.scope.partner_id, name_key=name.lower()):
        raise _taken()
    row = await tq.create_tag(
        c.session, partner_id=c.scope.partner_id, name=name, description=description, now=c.ctx.now
    )
    c.record("tag", to_global_id("Tag", row.id), after={"name": name, "description": description})
    return TagPayload(tag=Tag.from_row(row), user_errors=[])


async def _update(c: Change, input: UpdateTagInput) -> TagPayload:
    session, scope = c.session, c.scope
    values: dict[str, Any] = {}
    if input.name is not None:
        values["name"] = _name(input.name)
    if input.description is not None:
        values["description"] = _description(input.description)
    row = await _tag_to_change(session, scope, input.id)
    if "name" in values and await tq.tag_name_taken(
        session, partner_id=scope.partner_id, name_key=values["name"].lower(), except_id=row.id
    ):
        raise _taken()
    if c.record_update("tag", to_global_id("Tag", row.id), row, values):
        await tq.update_tag(session, tag_id=row.id, values=values)
    row = (await tq.tags_by_ids(session, partner_id=scope.partner_id, ids=[row.id]))[row.id]
    return TagPayload(tag=Tag.from_row(row), user_errors=[])


async def _delete(c: Change, input: DeleteTagInput) -> DeleteTagPayload:
    row = await _tag_to_change(c.session, c.scope, input.id)
    await tq.delete_tag(c.session, tag_id=row.id, now=c.ctx.now)
    c.record(
        "tag",
        to_global_id("Tag", row.id),
        before={"name": row.name, "description": row.description},
    )
    return DeleteTagPayload(
        deleted_tag_id=strawberry.ID(to_global_id("Tag", row.id)), user_errors=[]
    )


def _tag_refused(errors: list[UserError]) -> TagPayload:
    return TagPayload(tag=None, user_errors=errors)


@strawberry.type
class TagMutations:
    @strawberry.mutation(description="Create a tag (roles allowed to write tags).")
    async def create_tag(
        self,
        info: Info,
        input: Annotated[
            CreateTagInput,
            strawberry.argument(description="The tag's name and optional description."),
        ],
    ) -> TagPayload:
        return await run_mutation(
            info.context,
            operation="createTag",
            obj=Obj.TAG,
            act=Act.WRITE,
            work=lambda c: _create(c, input),
            refused=_tag_refused,
            on_conflict=_taken,  # lost a race with a concurrent createTag
        )

    @strawberry.mutation(
        description="Rename a tag or change its description. A caller that writes tags only on "
        "its own customers gets FORBIDDEN when the tag is on any other customer or subscription."
    )
    async def update_tag(
        self,
        info: Info,
        input: Annotated[
            UpdateTagInput,
            strawberry.argument(description="The tag and its new name, description, or both."),
        ],
    ) -> TagPayload:
        return await run_mutation(
            info.context,
            operation="updateTag",
            obj=Obj.TAG,
            act=Act.WRITE,
            work=lambda c: _update(c, input),
            refused=_tag_refused,
            on_conflict=_taken,
        )

    @strawberry.mutation(
        description="Delete a tag; it is detached from every customer first. A caller that "
        "writes tags only on its own customers gets FORBIDDEN when the tag is on any other."
    )
    async def delete_tag(
        self,
        info: Info,
        input: Annotated[DeleteTagInput, strawberry.argument(description="The tag to delete.")],
    ) -> DeleteTagPayload:
        return await run_mutation(
            info.context,
            operation="deleteTag",
            obj=Obj.TAG,
            act=Act.WRITE,
            work=lambda c: _delete(c, input),
            refused=lambda errors: DeleteTagPayload(deleted_tag_id=None, user_errors=errors),
        )

    @strawberry.mutation(description="Attach tags to up to 100 customers (all or nothing).")
    async def add_tags_to_customers(
        self,
        info: Info,
        input: Annotated[
            CustomerTagsInput,
            strawberry.argument(description="The tags and the customers (up to 100)."),
        ],
    ) -> CustomerTagsPayload:
        return await _run_customer_tags(info.context, input, attach=True)

    @strawberry.mutation(description="Detach tags from up to 100 customers (all or nothing).")
    async def remove_tags_from_customers(
        self,
        info: Info,
        input: Annotated[
            CustomerTagsInput,
            strawberry.argument(description="The tags and the customers (up to 100)."),
        ],
    ) -> CustomerTagsPayload:
        return await _run_customer_tags(info.context, input, attach=False)

    @strawberry.mutation(description="Attach tags to up to 100 subscriptions (all or nothing).")
    async def add_tags_to_subscriptions(
        self,
        info: Info,
        input: Annotated[
            SubscriptionTagsInput,
            strawberry.argument(description="The tags and the subscriptions (up to 100)."),
        ],
    ) -> SubscriptionTagsPayload:
        return await _run_subscription_tags(info.context, input, attach=True)

    @strawberry.mutation(description="Detach tags from up to 100 subscriptions.")
    async def remove_tags_from_subscriptions(
        self,
        info: Info,
        input: Annotated[
            SubscriptionTagsInput,
            strawberry.argument(description="The tags and the subscriptions (up to 100)."),
        ],
    ) -> SubscriptionTagsPayload:
        return await _run_subscription_tags(info.context, input, attach=False)


async def _check_limit(
    c: Change, kind: str, owners: list[int], tags: list[int], field: str, ids: Sequence[str]
) -> None:
    limit = c.ctx.settings.max_tags_per_customer
    counts = await tq.tag_counts_after(
        c.session, scope=c.scope, kind=kind, owner_ids=owners, tag_ids=tags
    )
    for owner in owners:
        if counts[owner] > limit:
            raise user_error(
                "TOO_MANY_TAGS",
                f"A {kind} carries at most {limit} tags.",
                field,
                _at(ids, kind.title(), owner),
            )


async def _tagging(
    c: Change, kind: str, owner_pks: list[int], tag_pks: list[int], attach: bool
) -> int:
    """Attach (or detach) the tags to (from) owners the caller may tag; the audit entry."""
    if attach:
        changed = await tq.attach_tags(
            c.session,
            kind=kind,
            partner_id=c.scope.partner_id,
            owner_ids=owner_pks,
            tag_ids=tag_pks,
            now=c.ctx.now,
        )
    else:
        changed = await tq.detach_tags(
            c.session,
            scope=c.scope,
            kind=kind,
            owner_ids=owner_pks,
            tag_ids=tag_pks,
            now=c.ctx.now,
        )
    type_name = kind.title()
    c.record(
        kind,
        None,
        after={
            f"{kind}Ids": [to_global_id(type_name, pk) for pk in owner_pks],
            "tagIds": [to_global_id("Tag", pk) for pk in tag_pks],
            "changed": changed,
        },
    )
    return changed


async def _customer_tags(
    c: Change, input: CustomerTagsInput, customer_pks: list[int], *, attach: bool
) -> CustomerTagsPayload:
    session, scope = c.session, c.scope
    await lock_customers(session, customer_pks)
    tag_pks = await _tag_pks(session, scope, input.tag_ids)
    visible = await cq.customers_by_ids(session, scope=scope, ids=customer_pks)
    readable = await _within_all(c.ctx, session, scope, list(visible), [CUSTOMER_READ])
    for pk in customer_pks:
        if pk not in readable:
            raise user_error(
                "NOT_FOUND",
                "No such customer.",
                "customerIds",
                _at(input.customer_ids, "Customer", pk),
            )
    if attach:
        await _check_limit(c, "customer", customer_pks, tag_pks, "customerIds", input.customer_ids)
    changed = await _tagging(c, "customer", customer_pks, tag_pks, attach)
    return CustomerTagsPayload(
        customers=[Customer.from_row(visible[pk]) for pk in customer_pks],
        changed=changed,
        user_errors=[],
    )


async def _run_customer_tags(
    ctx: Context, input: CustomerTagsInput, *, attach: bool
) -> CustomerTagsPayload:
    customer_pks: list[int] = []

    def validate() -> None:
        customer_pks.extend(_pks(input.customer_ids, "Customer", "customerIds"))
        _bulk_size(customer_pks, "customerIds")

    return await run_mutation(
        ctx,
        operation="addTagsToCustomers" if attach else "removeTagsFromCustomers",
        obj=Obj.TAG,
        act=Act.WRITE,
        validate=validate,
        work=lambda c: _customer_tags(c, input, customer_pks, attach=attach),
        refused=lambda errors: CustomerTagsPayload(customers=[], changed=0, user_errors=errors),
    )


async def _subscription_tags(
    c: Change, input: SubscriptionTagsInput, sub_pks: list[int], *, attach: bool
) -> SubscriptionTagsPayload:
    session, scope = c.session, c.scope
    visible = await kids.subscriptions_by_ids(session, scope=scope, ids=sub_pks)
    owners = {row.customer_id for row in visible.values()}
    readable = await _within_all(
        c.ctx, session, scope, list(owners), [CUSTOMER_READ, SUBSCRIPTION_READ]
    )
    for pk in sub_pks:
        if pk not in visible or visible[pk].customer_id not in readable:
            raise user_error(
                "NOT_FOUND",
                "No such subscription.",
                "subscriptionIds",
                _at(input.subscription_ids, "Subscription", pk),
            )
    await lock_customers(session, [visible[pk].customer_id for pk in sub_pks])
    tag_pks = await _tag_pks(session, scope, input.tag_ids)
    if attach:
        await _check_limit(
            c, "subscription", sub_pks, tag_pks, "subscriptionIds", input.subscription_ids
        )
    changed = await _tagging(c, "subscription", sub_pks, tag_pks, attach)
    return SubscriptionTagsPayload(
        subscriptions=[Subscription.from_row(visible[pk]) for pk in sub_pks],
        changed=changed,
        user_errors=[],
    )


async def _run_subscription_tags(
    ctx: Context, input: SubscriptionTagsInput, *, attach: bool
) -> SubscriptionTagsPayload:
    sub_pks: list[int] = []

    def validate() -> None:
        sub_pks.extend(_pks(input.subscription_ids, "Subscription", "subscriptionIds"))
        _bulk_size(sub_pks, "subscriptionIds")

    return await run_mutation(
        ctx,
        operation="addTagsToSubscriptions" if attach else "removeTagsFromSubscriptions",
        obj=Obj.TAG,
        act=Act.WRITE,
        validate=validate,
        work=lambda c: _subscription_tags(c, input, sub_pks, attach=attach),
        refused=lambda errors: SubscriptionTagsPayload(
            subscriptions=[], changed=0, user_errors=errors
        ),
    )
