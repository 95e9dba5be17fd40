"""One subscription's rows: the subscription, its license lines with 13 weekly snapshots, its
invoices and its order history."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from db.enums import Product
from db.seed.profiles import (
    ACTIVE,
    CANCELLED,
    PAID,
    PROVISIONING,
    SUSPENDED,
    TRIAL,
    SubPlan,
    add_months,
)
from db.seed.words import COMMON_AREA, LICENSE_TYPES, PRODUCT_LABELS, UNIT_PRICE_CENTS
from db.seed.writer import Batch, Ids
from db.status import SubscriptionFacts

if TYPE_CHECKING:
    from db.seed.common import PartnerContext

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MEETINGS = Product.MEETINGS.value
CALLING = Product.CALLING.value
_KPI_PRODUCTS = (MEETINGS, CALLING)
# Line = [product, license type, purchased, assigned, used]
Line = list


def subscription_ref(kind: str, pk: int) -> str:
    """The business id of the subscription with primary key ``pk``: ``Sub`` (paid) or
    ``Trial-`` (trial) and six scrambled digits, the format ``startTrial`` and ``convertTrial``
    give new ones.

    Keyed on the primary key, which is unique in the whole deployment, rather than on a count
    per partner: two partners seeded side by side (the demo's Acme and Globex) never show the
    same id. 524287 is prime to 900000, so the first 900,000 keys permute 100000..999999.
    """
    prefix = "Sub" if kind == PAID else "Trial-"
    k = pk - 1
    if k < 900_000:
        return f"{prefix}{100_000 + (k * 524_287 + 345_678) % 900_000}"
    return f"{prefix}{100_000 + k}"


class LineMaker:
    def __init__(
        self,
        rng: random.Random,
        ids: Ids,
        now: datetime,
        weeks: list[datetime],
        bind_datetime: Callable[[datetime], Any],
    ) -> None:
        self.rng = rng
        self.ids = ids
        self.now = now
        self.weeks = weeks
        # Snapshot rows carry week starts already converted for the database (see writer).
        self.week_values = [bind_datetime(week) for week in weeks]
        self.week_ends = [w + WEEK for w in weeks]
        self.used_cutoff = now - WEEK

    def subscription(
        self,
        batch: Batch,
        ctx: PartnerContext,
        customer_id: int,
        plan: SubPlan,
        *,
        seats: int,
        created: datetime,
        created_by: int | None,
        converted_from: str | None = None,
    ) -> tuple[int, str, SubscriptionFacts]:
        """The rows of one subscription; its primary key, business id and status facts.
        ``converted_from`` names the trial a paid subscription was converted from."""
        rng = self.rng
        sub_id = self.ids.take("subscription")
        ref = subscription_ref(plan.kind, sub_id)
        if plan.kind == PAID:
            placed = plan.start - timedelta(days=rng.randint(1, 14), seconds=rng.randrange(86400))
        else:
            placed = plan.start + timedelta(seconds=rng.randrange(8 * 3600, 18 * 3600))
        placed = min(max(placed, created + timedelta(hours=1)), self.now)
        batch.add(
            "subscription",
            {
                "id": sub_id,
                "partner_id": ctx.partner_id,
                "customer_id": customer_id,
                "subscription_id": ref,
                "kind": plan.kind,
                "state": plan.state,
                "start_date": plan.start,
                "end_date": plan.end,
                "auto_renew": plan.auto_renew,
                "renewal_date": plan.end if plan.auto_renew else None,
                "term_months": plan.term_months,
                "created_at": placed,
                "created_by_admin_id": created_by,
            },
        )
        lines = self._lines(plan, seats)
        for product, license_type, purchased, assigned, used in lines:
            line_id = self.ids.take("license_line")
            batch.add(
                "license_line",
                {
                    "id": line_id,
                    "partner_id": ctx.partner_id,
                    "subscription_id": sub_id,
                    "product": product,
                    "license_type": license_type,
                    "purchased": purchased,
                    "assigned": assigned,
                    "used": used,
                },
            )
            self._snapshots(
                batch, ctx.partner_id, line_id, sub_id, product, purchased, assigned, used, plan
            )
        if converted_from is not None:
            placed = plan.start  # convertTrial opens the paid subscription when the trial ends
        self._orders(batch, ctx, sub_id, ref, plan, placed, lines, converted_from)
        if plan.kind == PAID and plan.state != PROVISIONING:
            self._invoices(batch, ctx, sub_id, plan, lines)
        return (
            sub_id,
            ref,
            SubscriptionFacts(
                kind=plan.kind,
                state=plan.state,
                start=plan.start,
                end=plan.end,
                auto_renew=plan.auto_renew,
                over_licensed=any(line[3] > line[2] for line in lines),
                products=tuple(sorted({line[0] for line in lines})),
            ),
        )

    def _quantity(self, product: str, seats: int, kind: str) -> int:
        rng = self.rng
        if kind == TRIAL:
            cap = 25 if product == Product.CONTACT_CENTER else 100
            return max(1, min(seats, cap, rng.choice((10, 25, 50, 100))))
        if product == CALLING:
            # Calling is bought for the staff who need a phone line, a part of the seats.
            factor = rng.uniform(0.05, 0.3)
        elif product == Product.REAL_TIME_TRANSLATION:
            factor = rng.uniform(0.05, 0.2)
        elif product == Product.CONTACT_CENTER:
            factor = rng.uniform(0.02, 0.1)
        else:
            factor = rng.uniform(0.9, 1.1)
        return max(1, round(seats * factor))

    def _lines(self, plan: SubPlan, seats: int) -> list[Line]:
        rng = self.rng
        uniform = rng.uniform
        lines: list[Line] = []
        for product in plan.products:
            types, weights = LICENSE_TYPES[product]
            license_type = types[0] if len(types) == 1 else rng.choices(types, weights)[0]
            lines.append([product, license_type, self._quantity(product, seats, plan.kind), 0, 0])
            if product == CALLING and plan.kind == PAID and rng.random() < 0.15:
                lines.append(
                    [product, COMMON_AREA, max(1, round(seats * uniform(0.02, 0.08))), 0, 0]
                )
        over = -1
        if plan.mode == "over":
            wanted = (plan.over_product,) if plan.over_product else _KPI_PRODUCTS
            over = next((i for i, line in enumerate(lines) if line[0] in wanted), 0)
        idle = plan.end <= self.used_cutoff
        for i, line in enumerate(lines):
            purchased = line[2]
            if plan.mode == "new":
                assigned = used = 0
            elif i == over:
                assigned = purchased + max(1, round(purchased * uniform(0.03, 0.3)))
                used = round(assigned * uniform(0.6, 0.95))
            elif plan.mode == "low" and line[0] in _KPI_PRODUCTS:
                assigned = int(purchased * uniform(0.0, 0.2))
                used = round(assigned * uniform(0.3, 0.9))
            elif plan.mode == "trial":
                assigned = round(purchased * uniform(0.2, 0.9))
                used = round(assigned * uniform(0.3, 0.9))
            elif plan.mode == "suspended":
                assigned = round(purchased * uniform(0.6, 1.0))
                used = round(assigned * uniform(0.05, 0.4))
            else:
                assigned = round(purchased * uniform(0.6, 1.0))
                used = round(assigned * uniform(0.45, 0.95))
            line[3], line[4] = assigned, 0 if idle else used
        return lines

    def _snapshots(
        self,
        batch: Batch,
        partner_id: int,
        line_id: int,
        sub_id: int,
        product: str,
        purchased: int,
        assigned: int,
        used: int,
        plan: SubPlan,
    ) -> None:
        """13 weeks ending at the line's current values; zeros in weeks that closed before the
        subscription started or began after it ended."""
        rng = self.rng
        first = 0
        while first < 13 and self.week_ends[first] <= plan.start:
            first += 1
        ramp = first > 0 or plan.kind == TRIAL
        if assigned > purchased:
            a0 = purchased * rng.uniform(0.85, 1.0)
        else:
            a0 = assigned * (rng.uniform(0.1, 0.5) if ramp else rng.uniform(0.75, 1.0))
        u0 = used * (rng.uniform(0.3, 0.8) if ramp else rng.uniform(0.7, 1.1))
        cap = purchased if purchased > assigned else assigned
        steps = 12 - first if first < 12 else 1
        end = plan.end
        next_id = self.ids.next["license_snapshot"]
        self.ids.next["license_snapshot"] = next_id + 13
        grow_a, grow_u = (assigned - a0) / steps, (used - u0) / steps
        wobble_a, wobble_u = assigned * 0.06, used * 0.06
        random = rng.random
        weeks = self.week_values
        append = batch.snapshots.append
        for i, week in enumerate(self.weeks):
            if i < first or week >= end:
                p = a = u = 0
            elif i == 12:
                p, a, u = purchased, assigned, used
            else:
                # A linear trend towards today's values, with a little week-to-week noise.
                k, wobble = i - first, random() - 0.5
                a = int(a0 + grow_a * k + wobble_a * wobble + 0.5)
                a = 0 if a < 0 else cap if a > cap else a
                u = int(u0 + grow_u * k + wobble_u * wobble + 0.5)
                u = 0 if u < 0 else a if u > a else u
                p = purchased
            append((next_id + i, partner_id, line_id, sub_id, product, weeks[i], p, a, u))

    def _invoices(
        self, batch: Batch, ctx: PartnerContext, sub_id: int, plan: SubPlan, lines: list[Line]
    ) -> None:
        """One invoice per started year of the term (billed annually in advance)."""
        monthly = sum(line[2] * UNIT_PRICE_CENTS[line[1]] for line in lines)
        years = max(1, (plan.term_months or 12) // 12)
        issued = [add_months(plan.start, 12 * k) for k in range(years)]
        issued = [at for at in issued if at <= self.now and at < plan.end]
        due = [at + 30 * DAY for at in issued]
        last_due = max((k for k, at in enumerate(due) if at <= self.now), default=-1)
        for k, at in enumerate(issued):
            if due[k] > self.now:
                status = "OPEN"
            elif plan.state == SUSPENDED and k == last_due:
                status = "OVERDUE"
            else:
                status = "PAID"
            batch.add(
                "invoice",
                {
                    "id": self.ids.take("invoice"),
                    "partner_id": ctx.partner_id,
                    "subscription_id": sub_id,
                    "invoice_number": f"INV-{ctx.code}-{ctx.next('invoice') + 1:07d}",
                    "issued_at": at,
                    "due_at": due[k],
                    "amount_cents": monthly * 12,
                    "currency": ctx.currency,
                    "status": status,
                },
            )

    def _orders(
        self,
        batch: Batch,
        ctx: PartnerContext,
        sub_id: int,
        ref: str,
        plan: SubPlan,
        placed: datetime,
        lines: list[Line],
        converted_from: str | None,
    ) -> None:
        rng = self.rng
        summary = ", ".join(f"{line[2]} x {PRODUCT_LABELS[line[0]]} {line[1]}" for line in lines)
        orders: list[tuple[str, datetime, str, str]] = []
        if plan.kind == TRIAL:
            orders.append(("TRIAL_START", placed, f"Trial {ref} started: {summary}", "COMPLETED"))
            at = plan.end - 30 * DAY - rng.randint(1, 5) * DAY
            if plan.extended and placed < at <= self.now:
                text = f"Trial {ref} extended by 30 days to {plan.end:%Y-%m-%d}"
                orders.append(("TRIAL_EXTENSION", at, text, "COMPLETED"))
        else:
            status = "IN_PROGRESS" if plan.state == PROVISIONING else "COMPLETED"
            if converted_from is not None:
                text = f"Converted from {converted_from}, {plan.term_months} months: {summary}"
                orders.append(("CONVERSION", placed, text, status))
            else:
                action, label = (
                    ("RENEWAL", "Renewal") if plan.renewal else ("NEW", "New subscription")
                )
                orders.append((action, placed, f"{label} {ref}: {summary}", status))
            window = (self.weeks[0] - plan.start).days - 30
            if plan.state == CANCELLED:
                at = min(plan.end - rng.randint(0, 5) * DAY, self.now)
                orders.append(("CANCELLATION", at, f"Subscription {ref} cancelled", "COMPLETED"))
            elif plan.state == ACTIVE and window > 1 and rng.random() < 0.2:
                line = lines[0]
                added = max(1, line[2] // 10)
                at = plan.start + (30 + rng.randint(0, window - 1)) * DAY
                text = f"Added {added} x {PRODUCT_LABELS[line[0]]} {line[1]} to {ref}"
                orders.append(("ADD_LICENSES", at, text, "COMPLETED"))
        for action, at, description, status in orders:
            batch.add(
                "subscription_order",
                {
                    "id": self.ids.take("subscription_order"),
                    "partner_id": ctx.partner_id,
                    "subscription_id": sub_id,
                    "order_number": f"ORD-{ctx.code}-{ctx.next('order') + 1:07d}",
                    "placed_at": at,
                    "action": action,
                    "description": description[:500],
                    "status": status,
                },
            )
