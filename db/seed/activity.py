"""What the demo partners' administrators did: helpdesk cases with their conversations, and the
audit log of the changes the demo data implies.

Built from the rows of a partner's ``Batch`` once its customers are generated, with its own
seeded ``random.Random`` (so adding activity does not move any customer's data). Cases are
numbered per partner from CS-000001 and the partner's ``helpdesk_case`` counter is left at the
last number, as ``openHelpdeskCase`` would leave it. Audit entries have the shapes the mutations
write (``startTrial``, ``extendTrial``, ``convertTrial``, ``assignPartnerAdmin``, ``createTag``
and the three helpdesk mutations), in time order, so the log reads newest first by id.
"""

from __future__ import annotations

import base64
import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson

from db.enums import HelpdeskSeverity, HelpdeskState, Product, Role
from db.queries.counters import HELPDESK_CASE
from db.seed.common import DAY, PartnerContext
from db.seed.helpdesk_texts import CASE_TEXTS, GENERAL_TEXTS, CaseText
from db.seed.writer import Batch, Ids

AUDIT_DAYS = 120  # how far back the log goes (tags are created once, earlier)
CASE_DAYS = 180
_PRODUCT_WEIGHTS = (
    (Product.CALLING.value, 35),
    (Product.MEETINGS.value, 25),
    (Product.CONTACT_CENTER.value, 14),
    (Product.MESSAGING.value, 10),
    (Product.REAL_TIME_TRANSLATION.value, 6),
    ("", 10),  # about the partner's account rather than one product
)
_SEVERITIES = tuple(s.value for s in HelpdeskSeverity)  # LOW, MEDIUM, HIGH, CRITICAL
_SEVERITY_WEIGHTS = (25, 40, 25, 10)


def global_id(type_name: str, pk: int) -> str:
    """The API's global ID of a row (``graph.ids.to_global_id``; db/ does not import graph/)."""
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def _json(value: Any) -> str | None:
    """As ``db.queries.audit.write_audit`` stores before/after."""
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


class ActivityMaker:
    """Adds the helpdesk cases and the audit entries of one partner to its batch."""

    def __init__(self, rng: random.Random, ids: Ids, now: datetime) -> None:
        self.rng = rng
        self.ids = ids
        self.now = now
        self.audit: list[tuple[datetime, int | None, str, str, str | None, Any, Any]] = []
        self.batch = Batch()

    def build(self, batch: Batch, ctx: PartnerContext) -> None:
        self.audit, self.batch = [], batch
        self._tags(batch, ctx)
        self._trials(batch, ctx)
        self._assignments(batch, ctx)
        self._helpdesk(batch, ctx)
        for at, admin_id, operation, kind, object_id, before, after in sorted(
            self.audit, key=lambda entry: entry[0]
        ):
            batch.add(
                "audit_log",
                {
                    "id": self.ids.take("audit_log"),
                    "partner_id": ctx.partner_id,
                    "admin_id": admin_id,
                    "operation": operation,
                    "object_type": kind,
                    "object_id": object_id,
                    "before": _json(before),
                    "after": _json(after),
                    "created_at": at,
                },
            )

    def _record(
        self,
        at: datetime,
        admin_id: int | None,
        operation: str,
        kind: str,
        object_id: str | None,
        *,
        before: Any = None,
        after: Any = None,
    ) -> None:
        if at <= self.now:
            self.audit.append((at, admin_id, operation, kind, object_id, before, after))

    def _tags(self, batch: Batch, ctx: PartnerContext) -> None:
        for tag in batch.rows["tag"]:
            after = {"name": tag["name"], "description": tag["description"]}
            self._record(
                tag["created_at"], ctx.full_admin, "createTag", "tag", global_id("Tag", tag["id"]),
                after=after,
            )  # fmt: skip

    def _trials(self, batch: Batch, ctx: PartnerContext) -> None:
        since = self.now - AUDIT_DAYS * DAY
        subs = {s["id"]: s for s in batch.rows["subscription"]}
        by_ref = {s["subscription_id"]: s for s in subs.values()}
        lines: defaultdict[int, dict[str, int]] = defaultdict(dict)
        for line in batch.rows["license_line"]:
            lines[line["subscription_id"]][line["product"]] = line["purchased"]
        extended_by: dict[int, datetime] = {}
        for order in batch.rows["subscription_order"]:
            sub = subs[order["subscription_id"]]
            at = order["placed_at"]
            if order["action"] == "TRIAL_EXTENSION":
                extended_by[sub["id"]] = at
            if at < since:
                continue
            gid = global_id("Subscription", sub["id"])
            if order["action"] == "TRIAL_EXTENSION":
                before = {"endDate": sub["end_date"] - 30 * DAY}
                self._record(
                    at, sub["created_by_admin_id"], "extendTrial", "subscription", gid,
                    before=before, after={"endDate": sub["end_date"]},
                )  # fmt: skip
            elif order["action"] == "CONVERSION":
                trial = by_ref[order["description"].split()[2].rstrip(",")]
                was = {**_trial_view(trial), "state": "ACTIVE"}
                after = {"trial": _trial_view(trial), "subscription": _trial_view(sub)}
                self._record(
                    at, ctx.full_admin, "convertTrial", "subscription",
                    global_id("Subscription", trial["id"]), before=was, after=after,
                )  # fmt: skip
        for sub in subs.values():
            if sub["kind"] != "TRIAL" or sub["created_by_admin_id"] is None:
                continue
            if not since <= sub["created_at"] <= self.now:
                continue
            end = sub["end_date"] - (30 * DAY if sub["id"] in extended_by else timedelta())
            view = {**_trial_view(sub), "state": "ACTIVE", "endDate": end}
            self._record(
                sub["created_at"], sub["created_by_admin_id"], "startTrial", "subscription",
                global_id("Subscription", sub["id"]),
                after={**view, "products": lines[sub["id"]]},
            )  # fmt: skip

    def _assignments(self, batch: Batch, ctx: PartnerContext) -> None:
        since = self.now - AUDIT_DAYS * DAY
        for row in batch.rows["customer_assignment"]:
            if row["assigned_by_admin_id"] != ctx.full_admin or row["assigned_at"] < since:
                continue
            self._record(
                row["assigned_at"], ctx.full_admin, "assignPartnerAdmin", "customer",
                global_id("Customer", row["customer_id"]),
                after={"adminId": global_id("Admin", row["admin_id"])},
            )  # fmt: skip

    def _helpdesk(self, batch: Batch, ctx: PartnerContext) -> None:
        rng, now = self.rng, self.now
        openers = [a for a, role in ctx.admin_roles.items() if role == Role.PARTNER_ADMIN]
        openers += [ctx.full_admin] * max(1, len(openers) // 2)
        products_of: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        customers = {c["id"]: c for c in batch.rows["customer"]}
        for row in batch.rows["customer_product"]:
            products_of[row["product"]].append(customers[row["customer_id"]])
        count = rng.randint(18, 26)
        ages = sorted((rng.uniform(0.2, CASE_DAYS) for _ in range(count)), reverse=True)
        products, weights = zip(*_PRODUCT_WEIGHTS, strict=True)
        for number, age in enumerate(ages, start=1):
            created = now - timedelta(days=age)
            product = rng.choices(products, weights)[0]
            texts: tuple[CaseText, ...] = CASE_TEXTS[product] if product else GENERAL_TEXTS
            subject, description, follow_up, reply, resolution = rng.choice(texts)
            product = product or rng.choice((Product.MEETINGS.value, Product.CALLING.value))
            candidates = [c for c in products_of[product] if c["created_at"] < created]
            customer = rng.choice(candidates) if candidates and rng.random() < 0.85 else None
            opener = rng.choice(openers)
            # The newest cases are still open, the oldest closed; in between, most are closed.
            closing = created + timedelta(days=rng.uniform(0.3, 12))
            recent = number > count - 3 or (age < 30 and rng.random() < 0.8)
            closed = number <= 3 or (not recent and closing < now)
            case_id = self.ids.take("helpdesk_case")
            row = {
                "id": case_id,
                "partner_id": ctx.partner_id,
                "number": number,
                "opened_by_admin_id": opener,
                "customer_id": customer["id"] if customer else None,
                "product": product,
                "subject": subject,
                "description": description,
                "severity": rng.choices(_SEVERITIES, _SEVERITY_WEIGHTS)[0],
                "state": HelpdeskState.CLOSED.value if closed else HelpdeskState.OPEN.value,
                "created_at": created,
                "closed_at": min(closing, now) if closed else None,
            }
            batch.add("helpdesk_case", row)
            gid = global_id("HelpdeskCase", case_id)
            view = {
                "product": product,
                "subject": subject,
                "description": description,
                "severity": row["severity"],
                "state": HelpdeskState.OPEN.value,
                "customerId": global_id("Customer", customer["id"]) if customer else None,
                "closedAt": None,
            }
            self._record(created, opener, "openHelpdeskCase", "helpdeskCase", gid, after=view)
            end = row["closed_at"] or now
            replied = created + timedelta(hours=rng.uniform(0.5, 8))
            followed = replied + timedelta(hours=rng.uniform(0.5, 20))
            conversation: list[tuple[datetime, int | None, str]] = [
                (replied, None, f"Partner support: {reply}")
            ]
            conversation.append((followed, opener, follow_up))
            for at, author, body in conversation:
                if at < end:
                    self._comment(case_id, author, body, at)
                    if author is not None:
                        after = {"commentId": self.ids.next["helpdesk_comment"] - 1, "body": body}
                        self._record(
                            at, author, "addHelpdeskCaseComment", "helpdeskCase", gid, after=after
                        )
            if closed:
                closer = rng.choice((opener, ctx.full_admin))
                self._comment(case_id, closer, resolution, end)
                after = {"state": row["state"], "closedAt": end, "resolution": resolution}
                self._record(
                    end, closer, "closeHelpdeskCase", "helpdeskCase", gid,
                    before={"state": HelpdeskState.OPEN.value}, after=after,
                )  # fmt: skip
        batch.add(
            "partner_counter",
            {"partner_id": ctx.partner_id, "name": HELPDESK_CASE, "value": count},
        )

    def _comment(self, case_id: int, author: int | None, body: str, at: datetime) -> None:
        self.batch.add(
            "helpdesk_comment",
            {
                "id": self.ids.take("helpdesk_comment"),
                "case_id": case_id,
                "admin_id": author,
                "body": body,
                "created_at": at,
            },
        )


def _trial_view(sub: dict[str, Any]) -> dict[str, Any]:
    """``graph.resolvers.trials._trial_audit`` of a subscription row."""
    return {
        "subscriptionId": sub["subscription_id"],
        "kind": sub["kind"],
        "state": sub["state"],
        "startDate": sub["start_date"],
        "endDate": sub["end_date"],
    }
