"""Customer profiles: the subscription histories the generators draw customers from.

A profile is the story of one customer (healthy subscriber, trial about to end, suspended for
non-payment, ...). Each one yields ``SubPlan``s dated relative to ``today`` (midnight UTC of
``now``) so that the intended statuses hold at ``now``: "within N days" windows use whole days
from ``today``, which keeps every planned date clear of the rule boundaries.
"""

from __future__ import annotations

import random
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from db.enums import Product, SubscriptionKind, SubscriptionState

PAID = SubscriptionKind.PAID.value
TRIAL = SubscriptionKind.TRIAL.value
ACTIVE = SubscriptionState.ACTIVE.value
PROVISIONING = SubscriptionState.PROVISIONING.value
SUSPENDED = SubscriptionState.SUSPENDED.value
EXPIRED = SubscriptionState.EXPIRED.value
CANCELLED = SubscriptionState.CANCELLED.value

# (profile, weight): most customers are healthy subscribers, a few are in each problem state.
PROFILES: tuple[tuple[str, int], ...] = (
    ("healthy", 44),
    ("renewing", 8),
    ("about_to_expire", 4),
    ("expiring_soon", 3),
    ("trial", 7),
    ("trial_expiring", 2),
    ("trial_and_paid", 3),
    ("recent", 6),
    ("low_allocation", 4),
    ("overage", 3),
    ("calling_overage", 2),
    ("provisioning", 4),
    ("suspended", 2),
    ("expired", 6),
    ("messaging_only", 2),
    ("all_products", 1),
)
PROFILE_NAMES = tuple(name for name, _ in PROFILES)
PROFILE_CUM_WEIGHTS = tuple(
    sum(weight for _, weight in PROFILES[: i + 1]) for i in range(len(PROFILES))
)
TRIAL_PROFILES = ("trial", "trial_expiring")
_DAY = timedelta(days=1)
_TRIAL_PRODUCTS: tuple[tuple[str, ...], ...] = (
    (Product.MEETINGS,),
    (Product.MEETINGS,),
    (Product.MEETINGS, Product.CALLING),
    (Product.CALLING,),
    (Product.MEETINGS, Product.MESSAGING),
    (Product.CONTACT_CENTER,),
)


@dataclass(slots=True)
class SubPlan:
    kind: str
    state: str
    start: datetime
    end: datetime
    auto_renew: bool
    term_months: int | None
    products: tuple[str, ...]
    # How the license lines look: healthy, low, over, trial, new, suspended.
    mode: str = "healthy"
    renewal: bool = False  # follows an earlier term of the same customer
    extended: bool = False  # a trial extended by 30 days
    converted: bool = False  # a paid subscription converted from the trial before it
    over_product: str | None = None  # the product over its limit (mode "over")
    tags: list[str] = field(default_factory=list)


def add_months(value: datetime, months: int) -> datetime:
    years, month0 = divmod(value.month - 1 + months, 12)
    year, month = value.year + years, month0 + 1
    return value.replace(year=year, month=month, day=min(value.day, monthrange(year, month)[1]))


_PRODUCT_ORDER = tuple(p.value for p in Product)


def canonical(products: set[str] | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``products`` without repeats, in the order of ``Product``."""
    return tuple(p for p in _PRODUCT_ORDER if p in products)


class Planner:
    """Draws the subscription plans of one customer of a given profile."""

    def __init__(self, rng: random.Random, today: datetime) -> None:
        self.rng = rng
        self.today = today

    def pick_profile(self) -> str:
        return self.rng.choices(PROFILE_NAMES, cum_weights=PROFILE_CUM_WEIGHTS)[0]

    def plans(self, profile: str) -> list[SubPlan]:
        rng = self.rng
        if profile == "healthy":
            plan = self._paid(elapsed=None, auto_renew=rng.random() < 0.85)
            return [*self._history(plan), plan]
        if profile == "renewing":
            return [self._paid(remaining=rng.randint(1, 90), auto_renew=True)]
        if profile == "about_to_expire":
            return [self._paid(remaining=rng.randint(8, 90), auto_renew=False)]
        if profile == "expiring_soon":
            return [self._paid(remaining=rng.randint(1, 7), auto_renew=False)]
        if profile == "trial":
            return [self._trial(remaining_range=(8, 90))]
        if profile == "trial_expiring":
            return [self._trial(remaining_range=(1, 7))]
        if profile == "trial_and_paid":
            paid = self._paid(elapsed=None, products=(Product.MEETINGS, Product.MESSAGING))
            extra = rng.choice((Product.CALLING, Product.CONTACT_CENTER))
            return [paid, self._trial(remaining_range=(8, 90), products=(extra,))]
        if profile == "recent":
            plan = self._paid(elapsed=rng.randint(1, 89), auto_renew=rng.random() < 0.8)
            return [*self._history(plan, trial_only=True), plan]
        if profile == "low_allocation":
            return [self._paid(elapsed=None, min_elapsed=45, mode="low")]
        if profile in ("overage", "calling_overage"):
            product = Product.MEETINGS if profile == "overage" else Product.CALLING
            plan = self._paid(elapsed=None, min_elapsed=30, mode="over")
            plan.products = canonical({*plan.products, product.value})
            plan.over_product = product.value
            return [plan]
        if profile == "provisioning":
            return self._provisioning()
        if profile == "suspended":
            return [self._paid(elapsed=None, min_elapsed=45, state=SUSPENDED, mode="suspended")]
        if profile == "expired":
            return [self._expired()]
        if profile == "messaging_only":
            return [self._paid(elapsed=None, products=(Product.MESSAGING,))]
        if profile == "all_products":
            return [self._paid(elapsed=None, products=canonical(tuple(Product)))]
        raise ValueError(f"unknown profile {profile!r}")

    def products(self) -> tuple[str, ...]:
        r = self.rng.random
        chosen = set()
        if r() < 0.88:
            chosen.add(Product.MEETINGS.value)
        if r() < 0.55:
            chosen.add(Product.CALLING.value)
        if r() < 0.45:
            chosen.add(Product.MESSAGING.value)
        if Product.MEETINGS in chosen and r() < 0.15:
            chosen.add(Product.REAL_TIME_TRANSLATION.value)
        if r() < 0.08:
            chosen.add(Product.CONTACT_CENTER.value)
        if Product.MEETINGS not in chosen and Product.CALLING not in chosen:
            chosen.add(Product.MEETINGS.value if r() < 0.7 else Product.CALLING.value)
        return canonical(chosen)

    def _term(self) -> int:
        return self.rng.choices((12, 24, 36), weights=(6, 1, 3))[0]

    def _paid(
        self,
        *,
        elapsed: int | None = None,
        remaining: int | None = None,
        min_elapsed: int = 90,
        auto_renew: bool | None = None,
        state: str = ACTIVE,
        mode: str = "healthy",
        products: tuple[str, ...] | None = None,
    ) -> SubPlan:
        """A paid subscription in its current term, started ``elapsed`` days ago or ending in
        ``remaining`` days; by default it started at least ``min_elapsed`` days ago and ends in
        more than 90 days."""
        rng = self.rng
        term = self._term()
        if remaining is not None:
            end = self.today + remaining * _DAY
            start = add_months(end, -term)
        else:
            if elapsed is None:
                elapsed = rng.randint(min_elapsed, term * 30 - 95)
            start = self.today - elapsed * _DAY
            end = add_months(start, term)
        if auto_renew is None:
            auto_renew = rng.random() < 0.85
        return SubPlan(
            kind=PAID,
            state=state,
            start=start,
            end=end,
            auto_renew=auto_renew,
            term_months=term,
            products=products or self.products(),
            mode=mode,
        )

    def _trial(
        self, *, remaining_range: tuple[int, int], products: tuple[str, ...] | None = None
    ) -> SubPlan:
        rng = self.rng
        duration = rng.choice((14, 30, 30, 60, 90))
        remaining = rng.randint(remaining_range[0], min(remaining_range[1], duration))
        end = self.today + remaining * _DAY
        return SubPlan(
            kind=TRIAL,
            state=ACTIVE,
            start=end - duration * _DAY,
            end=end,
            auto_renew=False,
            term_months=None,
            products=canonical(products or rng.choice(_TRIAL_PRODUCTS)),
            mode="trial",
            extended=duration >= 60 and rng.random() < 0.35,
        )

    def _history(self, current: SubPlan, *, trial_only: bool = False) -> list[SubPlan]:
        """Sometimes an earlier term or a converted trial precedes the current subscription."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            duration = rng.choice((30, 60))
            current.converted = True
            return [
                SubPlan(
                    kind=TRIAL,
                    state=EXPIRED,
                    start=current.start - duration * _DAY,
                    end=current.start,
                    auto_renew=False,
                    term_months=None,
                    products=canonical(
                        [p for p in current.products if p != Product.MESSAGING] or current.products
                    ),
                    mode="trial",
                )
            ]
        if roll < 0.4 and not trial_only:
            current.renewal = True
            return [
                SubPlan(
                    kind=PAID,
                    state=EXPIRED,
                    start=add_months(current.start, -12),
                    end=current.start,
                    auto_renew=current.auto_renew,
                    term_months=12,
                    products=current.products,
                )
            ]
        return []

    def _provisioning(self) -> list[SubPlan]:
        rng = self.rng
        start = self.today + rng.randint(-5, 14) * _DAY
        term = self._term()
        if rng.random() < 0.6:
            # A new customer whose first order is still being set up.
            return [
                SubPlan(PAID, PROVISIONING, start, add_months(start, term), True, term,
                        self.products(), mode="new")
            ]  # fmt: skip
        current = self._paid(elapsed=None)
        addon = rng.choice((Product.CALLING, Product.CONTACT_CENTER, Product.REAL_TIME_TRANSLATION))
        order = SubPlan(PAID, PROVISIONING, start, add_months(start, term), True, term,
                        (addon.value,), mode="new")  # fmt: skip
        return [current, order]

    def _expired(self) -> SubPlan:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            end = self.today - rng.randint(3, 200) * _DAY
            duration = rng.choice((14, 30, 60, 90))
            return SubPlan(
                TRIAL, EXPIRED, end - duration * _DAY, end, False, None,
                canonical(rng.choice(_TRIAL_PRODUCTS)), mode="trial",
            )  # fmt: skip
        if roll < 0.7:
            end = self.today - rng.randint(1, 400) * _DAY
            return SubPlan(PAID, EXPIRED, add_months(end, -12), end, False, 12, self.products())
        if roll < 0.9:
            # Cancelled part-way through the term: the end date is the cancellation date.
            end = self.today - rng.randint(5, 300) * _DAY
            start = add_months(end, -rng.randint(3, 11))
            return SubPlan(PAID, CANCELLED, start, end, False, 12, self.products())
        # Ended a few days ago; the billing system has not flipped its state yet.
        end = self.today - rng.randint(1, 20) * _DAY
        return SubPlan(PAID, ACTIVE, add_months(end, -12), end, False, 12, self.products())
