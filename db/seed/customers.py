"""Customers: ``CustomerFactory`` turns customer profiles (``db.seed.profiles``) into rows of
every table a customer touches — subscriptions, license lines with 13 weekly snapshots, invoices,
orders, tags, assignments — plus the derived ``customer_status_span`` and ``customer_product``
rows, computed with ``db.status`` exactly as the service computes them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from db.enums import ManagedBy
from db.seed.common import DAY, HOUR, PartnerContext, normalize_now, snapshot_weeks
from db.seed.lines import LineMaker
from db.seed.profiles import (
    PAID,
    PROFILE_NAMES,
    TRIAL_PROFILES,
    Planner,
    SubPlan,
)
from db.seed.words import (
    INDUSTRIES,
    LEGAL_SUFFIXES,
    NAME_HEADS,
    NAME_TAILS,
    REGIONS,
    SURNAMES,
)
from db.seed.writer import Batch, Ids
from db.status import StatusRules, SubscriptionFacts, compute_spans, customer_products

SIZE_BANDS = ((1, 10), (11, 50), (51, 250), (251, 1000), (1001, 5000))
SIZE_WEIGHTS = (25, 35, 25, 12, 3)
# The first customers of every partner get these attributes, so small seeds cover them too.
FORCED_SIGN_IN = {1: "never", 4: "stale", 9: "stale"}
FORCED_PARTNER_ORG = (2, 5)


@dataclass
class _Customer:
    id: int
    profile: str
    seats: int
    industry_tag: str
    created_at: datetime
    sign_in: str  # never, stale or recent
    name_key: str
    last_sign_in: datetime | None = None
    facts: list[SubscriptionFacts] = field(default_factory=list)
    plans: list[SubPlan] = field(default_factory=list)


class CustomerFactory:
    """Generates customers of one run; ``build`` appends every row of ``count`` customers."""

    def __init__(
        self,
        *,
        rng: random.Random,
        ids: Ids,
        now: datetime,
        rules: StatusRules,
        bind_datetime: Callable[[datetime], Any],
    ) -> None:
        self.rng = rng
        self.ids = ids
        self.now = normalize_now(now)
        self.today = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        self.rules = rules
        self.planner = Planner(rng, self.today)
        self.lines = LineMaker(rng, ids, self.now, snapshot_weeks(self.now), bind_datetime)

    def build(self, batch: Batch, ctx: PartnerContext, *, first_index: int, count: int) -> None:
        for index in range(first_index, first_index + count):
            self._customer(batch, ctx, index)

    def _customer(self, batch: Batch, ctx: PartnerContext, index: int) -> None:
        rng = self.rng
        profile = (
            PROFILE_NAMES[index] if index < len(PROFILE_NAMES) else self.planner.pick_profile()
        )
        band = rng.choices(SIZE_BANDS, weights=SIZE_WEIGHTS)[0]
        seats = rng.randint(*band)
        plans = self.planner.plans(profile)
        earliest = min(min(p.start for p in plans), self.today)
        created = earliest - timedelta(days=rng.randint(3, 60), seconds=rng.randrange(86400))
        name, industry_tag = self._name(ctx)
        cust = _Customer(
            id=self.ids.take("customer"),
            profile=profile,
            seats=seats,
            industry_tag=industry_tag,
            created_at=created,
            sign_in=FORCED_SIGN_IN.get(index) or self._sign_in_kind(profile),
            name_key=name.lower(),
            plans=plans,
        )
        cust.last_sign_in = self._sign_in_at(cust)
        provisioner = None
        if ctx.provisioners and rng.random() < (0.7 if profile in TRIAL_PROFILES else 0.1):
            provisioner = rng.choice(ctx.provisioners)
        managed_by = (
            ManagedBy.PARTNER_ORG
            if index in FORCED_PARTNER_ORG or rng.random() < 0.08
            else ManagedBy.EXTERNAL_ADMIN
        )
        batch.add(
            "customer",
            {
                "id": cust.id,
                "partner_id": ctx.partner_id,
                "external_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "name": name,
                "name_key": cust.name_key,
                "created_at": created,
                "managed_by": managed_by.value,
                "last_admin_sign_in_at": cust.last_sign_in,
                "provisioned_by_admin_id": provisioner,
            },
        )
        self._assignments(batch, ctx, cust, provisioner)
        sub_tags: list[tuple[int, str]] = []
        trial_ref: str | None = None
        for plan in plans:
            created_by = provisioner if plan.kind != PAID else None
            if plan.kind != PAID and created_by is None and ctx.provisioners:
                created_by = ctx.provisioners[0]
            sub_id, ref, facts = self.lines.subscription(
                batch,
                ctx,
                cust.id,
                plan,
                seats=seats,
                created=created,
                created_by=created_by,
                converted_from=trial_ref if plan.converted else None,
            )
            trial_ref = ref if plan.kind != PAID else None
            cust.facts.append(facts)
            sub_tags.extend((sub_id, tag) for tag in self._subscription_tags(plan, facts))
        self._tags(batch, ctx, cust, sub_tags)
        self._derived(batch, ctx, cust)

    def _name(self, ctx: PartnerContext) -> tuple[str, str]:
        rng = self.rng
        for attempt in range(6):
            if rng.random() < 0.8:
                brand = rng.choice(NAME_HEADS) + rng.choice(NAME_TAILS)
            else:
                brand = f"{rng.choice(SURNAMES)} & {rng.choice(SURNAMES)}"
            word, tag = rng.choice(INDUSTRIES)
            suffix = rng.choice(LEGAL_SUFFIXES)
            name = f"{brand} {word} {suffix}".strip()
            if attempt == 5:
                name = f"{name} ({rng.choice(REGIONS)} {rng.randint(2, 99)})"
            if name not in ctx.names:
                break
        ctx.names.add(name)
        return name, tag

    def _sign_in_kind(self, profile: str) -> str:
        roll = self.rng.random()
        if profile == "expired":
            return "never" if roll < 0.15 else "stale" if roll < 0.65 else "recent"
        if profile == "provisioning":
            return "never" if roll < 0.3 else "recent"
        return "never" if roll < 0.03 else "stale" if roll < 0.1 else "recent"

    def _sign_in_at(self, cust: _Customer) -> datetime | None:
        rng = self.rng
        if cust.sign_in == "never":
            return None
        if cust.sign_in == "stale":
            at = self.now - timedelta(days=rng.randint(31, 180), seconds=rng.randrange(86400))
            return at if at > cust.created_at else None
        window = min(25 * 86400, int((self.now - cust.created_at).total_seconds()))
        return self.now - timedelta(seconds=rng.randrange(max(window, 1)))

    def _assignments(
        self, batch: Batch, ctx: PartnerContext, cust: _Customer, provisioner: int | None
    ) -> None:
        rng = self.rng
        chosen: list[tuple[int, int | None]] = []
        if provisioner is not None:
            chosen.append((provisioner, provisioner))
        for admin_id, share in ctx.assignees:
            if admin_id != provisioner and rng.random() < share:
                chosen.append((admin_id, ctx.full_admin))
        for admin_id, by in chosen:
            batch.add(
                "customer_assignment",
                {
                    "customer_id": cust.id,
                    "admin_id": admin_id,
                    "partner_id": ctx.partner_id,
                    "assigned_at": min(cust.created_at + rng.randint(1, 96) * HOUR, self.now),
                    "assigned_by_admin_id": by,
                },
            )

    def _subscription_tags(self, plan: SubPlan, facts: SubscriptionFacts) -> list[str]:
        roll = self.rng.random()
        in_force = facts.state == "ACTIVE" and facts.start <= self.now < facts.end
        if not in_force:
            return []
        if plan.kind != PAID:
            return ["Pilot"] if roll < 0.4 else []
        if facts.over_licensed and roll < 0.5:
            return ["Upsell"]
        if facts.end <= self.now + 180 * DAY and roll < 0.3:
            return [f"Renewal Q{(facts.end.month - 1) // 3 + 1}"]
        return []

    def _tags(
        self,
        batch: Batch,
        ctx: PartnerContext,
        cust: _Customer,
        sub_tags: list[tuple[int, str]],
    ) -> None:
        r = self.rng.random
        names: list[str] = []
        if r() < 0.7:
            names.append(
                "Enterprise" if cust.seats > 250 else "Mid-market" if cust.seats > 50 else "SMB"
            )
        if cust.industry_tag and r() < 0.6:
            names.append(cust.industry_tag)
        paid_now = [
            f
            for f in cust.facts
            if f.kind == PAID and f.state == "ACTIVE" and f.start <= self.now < f.end
        ]
        if paid_now and paid_now[-1].end <= self.now + 365 * DAY and r() < 0.5:
            names.append(f"Renewal Q{(paid_now[-1].end.month - 1) // 3 + 1}")
        troubled = cust.profile in (
            "suspended", "overage", "calling_overage", "expiring_soon", "expired"
        )  # fmt: skip
        if (troubled or cust.sign_in != "recent") and r() < 0.5:
            names.append("At risk")
        upsell = ("overage", "calling_overage", "trial_and_paid", "all_products")
        if cust.profile in upsell and r() < 0.5:
            names.append("Upsell")
        if any("CALLING" in p.products and p.kind != PAID for p in cust.plans) and r() < 0.5:
            names.append("Calling migration")
        if cust.seats > 250 and r() < 0.3:
            names.append("Strategic")
        if cust.profile in TRIAL_PROFILES and r() < 0.6:
            names.append("Pilot")
        if (cust.profile == "low_allocation" or cust.sign_in == "stale") and r() < 0.5:
            names.append("Needs follow-up")
        if r() < 0.02:
            names.append("VIP support")
        for i, tag in enumerate(dict.fromkeys(names)):
            batch.add(
                "customer_tag",
                {
                    "customer_id": cust.id,
                    "tag_id": ctx.tags[tag],
                    "partner_id": ctx.partner_id,
                    "created_at": min(cust.created_at + (1 + i) * DAY, self.now),
                    "name_key": cust.name_key,
                },
            )
        for sub_id, tag in sub_tags:
            batch.add(
                "subscription_tag",
                {
                    "subscription_id": sub_id,
                    "tag_id": ctx.tags[tag],
                    "partner_id": ctx.partner_id,
                    "created_at": min(cust.created_at + 2 * DAY, self.now),
                },
            )

    def _derived(self, batch: Batch, ctx: PartnerContext, cust: _Customer) -> None:
        for status, start, end in compute_spans(cust.facts, cust.last_sign_in, self.rules):
            batch.add(
                "customer_status_span",
                {
                    "id": self.ids.take("customer_status_span"),
                    "partner_id": ctx.partner_id,
                    "customer_id": cust.id,
                    "status": status,
                    "valid_from": start,
                    "valid_to": end,
                    "name_key": cust.name_key,
                },
            )
        for product in sorted(customer_products(cust.facts)):
            batch.add(
                "customer_product",
                {"customer_id": cust.id, "product": product, "partner_id": ctx.partner_id},
            )
