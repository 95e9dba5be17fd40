"""What subscription changes cost: per-product monthly list prices and the amounts invoiced.

Prices are per licence and month, in cents of the invoice's currency; ``Settings``
(``PARTNER_HUB_LICENSE_PRICES_CENTS``) overrides any of these defaults. The README's price table
repeats them.

- Added licences are invoiced for the rest of the term, by the day: ``added x monthly x 12 x
  days / 365``, where ``days`` counts every started day from now to the end of the term, rounded
  to the nearest cent. Removed licences are not credited.
- A renewal is invoiced in full: ``termMonths x sum(purchased x monthly)`` over every licence
  line of the subscription.
- The first invoice of an order set up (when the subscription has none yet) covers its first
  year, or its whole term when shorter: ``min(term, 12) x sum(purchased x monthly)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from db.enums import Product

DEFAULT_MONTHLY_PRICE_CENTS: dict[str, int] = {
    Product.MEETINGS.value: 1500,
    Product.CALLING.value: 2500,
    Product.MESSAGING.value: 800,
    Product.REAL_TIME_TRANSLATION.value: 1000,
    Product.CONTACT_CENTER.value: 9000,
}
PAYMENT_TERM = timedelta(days=30)  # an invoice is due 30 days after it is issued
_DAY = 86_400


def remaining_days(now: datetime, end: datetime) -> int:
    """Started days from ``now`` to ``end`` (0 once the term has ended)."""
    seconds = (end - now).total_seconds()
    return max(0, -int(-seconds // _DAY))


def prorated_cents(licenses: int, monthly_cents: int, now: datetime, end: datetime) -> int:
    """``licenses`` added now, invoiced until ``end`` (rounded half up to the cent)."""
    return (licenses * monthly_cents * 12 * remaining_days(now, end) * 2 + 365) // (2 * 365)


def term_cents(lines: Iterable[tuple[str, int]], prices: Mapping[str, int], months: int) -> int:
    """``months`` of every (product, purchased) line at its monthly price."""
    return months * sum(purchased * prices[product] for product, purchased in lines)
