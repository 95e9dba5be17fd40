"""A customer, or a page of them, with its relationships in one statement (the ``customer``
query; a directory page's, ``page_plans``: issue 17, 7 statements down to 3, then to 1 when the
page's own statement reads them, ``db.queries.customer_pages``).

The relationships a document selects on the customer, and on its subscriptions and trials, are
read with the customer itself by ``db.queries.customer_detail`` (JSON arrays built by the
database) instead of one loader statement each: issue 8's detail document took 12 statements,
it now takes 2 (the token lookup and this one).

Authorization is the loaders' own (``graph.loaders._loader``), decided here before the statement
from the same rule (``Loader.rule``) with ``reach_under``: a relationship the caller may not
read is answered empty without SQL, as the loader answers it; one it may read below every
customer it sees is read in the statement, bound to the scope's partner like the loader's; one
that needs ``visible_under``'s statement (an ``assigned`` scope narrower than the customer's) is
left to the loaders (``graph.prefetch``), unchanged. The customer itself is read within the
caller's scope, as ``customers_by_ids`` reads it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from db.queries.customer_detail import Detail, customer_detail, customers_parts
from db.queries.customer_parts import DetailPlan
from db.queries.customer_render import EMPTY, Spec
from db.scope import Scope
from graph import render
from graph.auth.permissions import Act, Obj, Reach, reach_under, scope_or_none
from graph.context import Context
from graph.prefetch import Picked, Relation, prefetch, selected
from graph.types.customers import CUSTOMER_RELATIONS, SUBSCRIPTION_RELATIONS, Customer

# GraphQL field -> the part of ``db.queries.customer_parts`` that reads what its loader reads.
CUSTOMER_PARTS = {
    "statuses": "statuses",
    "products": "products",
    "tags": "tags",
    "subscriptions": "subscriptions",
    "trials": "trials",
    "partnerAdmins": "assigned_admins",
}
SUBSCRIPTION_PARTS = {
    "licenses": "license_lines",
    "invoices": "invoices",
    "orders": "orders",
    "tags": "tags",
}


# A relation's loader rule and cap, by the relation (constants of ``graph.types.customers``):
# read off its loader once, rather than making the request's loader (a DataLoader, ~10 us) for
# each relationship field only to read them; the loaders are made with constant rules and caps.
_RULES: dict[int, tuple[tuple[Obj, Obj], int | None]] = {}


def _rule(ctx: Context, relation: Relation) -> tuple[tuple[Obj, Obj], int | None]:
    found = _RULES.get(id(relation))
    if found is None:
        loader = relation.loader(ctx.loaders)
        found = _RULES[id(relation)] = (loader.rule, loader.cap)
    return found


def _plan(
    ctx: Context, fields: Sequence[Picked], relations: dict[str, Relation], parts: Any
) -> tuple[list[tuple[str, str, int | None]], list[str], list[str]]:
    """Of the relationship fields selected: those the statement reads (field, part, cap),
    those refused (answered empty) and those left to the loaders."""
    read: list[tuple[str, str, int | None]] = []
    refused: list[str] = []
    left: list[str] = []
    partner = ctx.principal.partner_id
    names = {f.name for f in fields}
    for field, part in parts.items():
        if field not in names:
            continue
        (obj, parent), cap = _rule(ctx, relations[field])
        reach = reach_under(ctx, obj, Act.READ, parent=parent)
        scope = scope_or_none(ctx, obj, Act.READ)
        if reach is Reach.NONE or scope is None:
            refused.append(field)
        elif reach is Reach.ALL and scope.partner_id == partner:
            read.append((field, part, cap))
        else:
            left.append(field)
    return read, refused, left


Plans = tuple[list[tuple[str, str, int | None]], list[str], list[str]]


_MAX_PLANS = 1024


def _plans(ctx: Context, selection: Sequence[Picked]) -> tuple[DetailPlan, Plans, dict[str, Plans]]:
    """``_make_plans``, kept until the policies change (``Authorizer.derived``) per caller's
    role, admin and partner (all its scopes depend on) and selection: the selections ``below``
    gives are the same objects for every request of a document (held weakly here and compared
    by identity). Making them took ~60-80 us of each detail request."""
    derived = ctx.services.authorizer.derived
    principal = ctx.principal
    key = (
        "detail",
        render.RENDER,
        principal.role,
        principal.admin_id,
        principal.partner_id,
        *map(id, selection),
    )
    found = derived.get(key)
    refs = found[0] if found is not None else ()
    if found is not None and len(refs) == len(selection) and _same(refs, selection):
        return found[1]
    made = _make_plans(ctx, selection)
    if len(derived) >= _MAX_PLANS:
        derived.clear()
    derived[key] = ([weakref.ref(picked) for picked in selection], made)
    return made


def _same(refs: Sequence[weakref.ref[Picked]], selection: Sequence[Picked]) -> bool:
    return all(ref() is picked for ref, picked in zip(refs, selection, strict=True))


def _make_plans(
    ctx: Context, selection: Sequence[Picked]
) -> tuple[DetailPlan, Plans, dict[str, Plans]]:
    """The statement's plan, the customer fields' split and that of each subscription list."""
    plans = _plan(ctx, selection, CUSTOMER_RELATIONS, CUSTOMER_PARTS)
    nested: dict[str, Plans] = {}
    for field in ("subscriptions", "trials"):
        if any(f == field for f, _, _ in plans[0]):
            below = [g for f in selection if f.name == field for g in selected(f.selections)]
            nested[field] = _plan(ctx, below, SUBSCRIPTION_RELATIONS, SUBSCRIPTION_PARTS)
    plan = DetailPlan(
        parts=tuple((part, cap) for _, part, cap in plans[0]),
        subscription_parts=tuple((p, c) for _, p, c in nested.get("subscriptions", ([],))[0]),
        trial_parts=tuple((p, c) for _, p, c in nested.get("trials", ([],))[0]),
        rendered=_rendered(ctx, selection, plans, nested),
    )
    return plan, plans, nested


def _rendered(
    ctx: Context, selection: Sequence[Picked], plans: Plans, nested: dict[str, Plans]
) -> tuple[tuple[str, Spec], ...]:
    """The parts read in the statement that PostgreSQL renders as the response's JSON
    (``graph.render``), with what to render."""
    if ctx.session.get_bind().dialect.name != "postgresql":
        return ()
    rendered = []
    for field, part, _ in plans[0]:
        spec = render.spec_of(field, [f for f in selection if f.name == field], nested.get(field))
        if spec is not None:
            rendered.append((part, spec))
    shape = tuple(rendered)
    if not shape or not render.admitted(ctx.services.rendered_shapes, shape):
        return ()
    return shape


async def _apply(
    ctx: Context,
    plan: DetailPlan,
    customers: Sequence[Customer],
    details: Mapping[int, Detail],
    selection: Sequence[Picked],
    plans: Plans,
    nested: dict[str, Plans],
) -> None:
    """Each customer's values read by the statement (or refused) into ``ahead``; the loaders
    then load what was left to them, for all customers at once (``graph.prefetch``)."""
    read, refused, left = plans
    for customer in customers:
        for field in refused:
            customer.ahead[field] = CUSTOMER_RELATIONS[field].convert([])
    for field, part, _ in read:
        if plan.spec(part) is not None:  # the response's own JSON (``graph.render``)
            for customer in customers:
                detail = details.get(customer.pk)
                customer.ahead[field] = detail.rendered[part] if detail is not None else EMPTY
            continue
        relation = CUSTOMER_RELATIONS[field]
        children: list[Any] = []
        child_read, child_refused, child_left = nested.get(field, ([], [], []))
        for customer in customers:
            detail = details.get(customer.pk)
            value = relation.convert(detail.parts[part] if detail is not None else [])
            customer.ahead[field] = value
            if field not in nested or detail is None:
                continue
            for child in value:
                for name in child_refused:
                    child.ahead[name] = SUBSCRIPTION_RELATIONS[name].convert([])
                for name, child_part, _ in child_read:
                    rows = detail.children[f"{part}.{child_part}"].get(child.pk, [])
                    child.ahead[name] = SUBSCRIPTION_RELATIONS[name].convert(rows)
            children.extend(value)
        if child_left and children:
            below = [g for f in selection if f.name == field for g in selected(f.selections)]
            fields = [g for g in below if g.name in child_left]
            await prefetch(ctx, children, fields, SUBSCRIPTION_RELATIONS)
    if left:
        fields = [f for f in selection if f.name in left]
        await prefetch(ctx, list(customers), fields, CUSTOMER_RELATIONS)


async def customer_with_relations(
    ctx: Context, pk: int, selection: Sequence[Picked]
) -> Customer | None:
    """The customer ``pk`` as ``customer`` returns it, its selected relationships loaded ahead."""
    scope = scope_or_none(ctx, Obj.CUSTOMER, Act.READ)
    if scope is None or scope.partner_id != ctx.principal.partner_id:
        return None
    plan, plans, nested = _plans(ctx, selection)
    async with ctx.db() as session:
        found = await customer_detail(session, scope=scope, id=pk, now=ctx.now, plan=plan)
        if found is not None and not found.vouched:
            # A rendered part holds a value the ordinary path would not write as it is: read
            # as rows, which answers what rendering off would (its error included).
            plan = plan.ordinary()
            found = await customer_detail(session, scope=scope, id=pk, now=ctx.now, plan=plan)
    if found is None:
        return None
    customer = Customer.from_row(found.row)
    await _apply(ctx, plan, [customer], {pk: found}, selection, plans, nested)
    return customer


PagePlans = tuple[DetailPlan, Plans, dict[str, Plans]]


def page_plans(ctx: Context, selection: Sequence[Picked]) -> PagePlans:
    """The page's plans (``_plans``), made once per request: the page's own statement reads the
    parts of the first (``customers_page(parts=...)``) and ``page_relations`` answers with all
    of them. Made twice, policies replaced in between (another request syncing a newer version,
    a policy mutation) planned a part the statement had not read: a KeyError, answered
    INTERNAL_SERVER_ERROR."""
    return _plans(ctx, selection)


async def page_relations(
    ctx: Context,
    scope: Scope,
    customers: Sequence[Customer],
    selection: Sequence[Picked],
    plans: PagePlans,
    details: Mapping[int, Detail] | None = None,
) -> None:
    """The selected relationships of a page's ``customers`` (read within ``scope``) loaded
    ahead as ``plans`` (``page_plans``) says: those ``_plan`` reads in one statement for the
    whole page (``details`` when the page's statement read them), the rest by the loaders, as
    for ``customer_with_relations``."""
    if not customers:
        return
    plan, split, nested = plans
    if details is None and plan.parts:
        details = await _parts(ctx, scope, customers, plan)
    if details is not None and not all(detail.vouched for detail in details.values()):
        # A rendered part holds a value the ordinary path would not write as it is: the parts
        # are read again as rows (``customer_with_relations``).
        plan = plan.ordinary()
        details = await _parts(ctx, scope, customers, plan)
    await _apply(ctx, plan, customers, details or {}, selection, split, nested)


async def _parts(
    ctx: Context, scope: Scope, customers: Sequence[Customer], plan: DetailPlan
) -> Mapping[int, Detail]:
    async with ctx.db() as session:
        return await customers_parts(
            session,
            scope=scope,
            ids=[customer.pk for customer in customers],
            now=ctx.now,
            plan=plan,
        )
