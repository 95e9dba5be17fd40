"""Generator code shared by the demo and the synthetic seeds: the clock helpers, and partners
with their admins and tags (``add_partner``). Customers come from ``db.seed.customers``.

Only the ``random.Random`` instance passed in is used, so the output depends on the seed and
``now`` alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from db.enums import Role, SetupState
from db.seed.words import FIRST_NAMES, LAST_NAMES, TAGS
from db.seed.writer import Batch, Ids

WEEK = timedelta(days=7)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def normalize_now(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def snapshot_weeks(now: datetime) -> list[datetime]:
    """The 13 latest weeks that closed at or before ``now``, by start (Sunday 00:00 UTC), oldest
    first: the last one is "last week" of DESIGN.md section 3."""
    midnight = normalize_now(now).replace(hour=0, minute=0, second=0, microsecond=0)
    current = midnight - timedelta(days=(midnight.weekday() + 1) % 7)  # weekday(): Sunday is 6
    return [current - WEEK * k for k in range(13, 0, -1)]


@dataclass
class PartnerContext:
    """What the customer generator needs to know about a partner, plus its running counters."""

    partner_id: int
    code: str
    currency: str
    full_admin: int
    provisioners: tuple[int, ...]  # admins who start trials (partner and sales admins)
    assignees: tuple[tuple[int, float], ...]  # (admin id, share of customers assigned to it)
    tags: dict[str, int]
    admin_roles: dict[int, str] = field(default_factory=dict)  # admin id -> role
    names: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=lambda: {"invoice": 0, "order": 0})

    def next(self, counter: str) -> int:
        value = self.counters[counter]
        self.counters[counter] = value + 1
        return value


@dataclass(frozen=True)
class AdminSpec:
    local_part: str
    name: str
    role: str
    assign_share: float = 0.0  # share of customers this admin is assigned to


def standard_admins(rng: random.Random, extra_partner_admins: int = 0) -> list[AdminSpec]:
    """full@, partner@, readonly@ and sales@, plus named partner admins."""
    specs = [
        AdminSpec("full", _person(rng), Role.FULL_ADMIN),
        AdminSpec("partner", _person(rng), Role.PARTNER_ADMIN, 0.3),
        AdminSpec("readonly", _person(rng), Role.READ_ONLY_ADMIN),
        AdminSpec("sales", _person(rng), Role.SALES_ADMIN, 0.12),
    ]
    used = {"full", "partner", "readonly", "sales"}
    while len(specs) < 4 + extra_partner_admins:
        name = _person(rng)
        local = name.lower().replace(" ", ".").replace("'", "")
        if local not in used:
            used.add(local)
            specs.append(AdminSpec(local, name, Role.PARTNER_ADMIN, 0.08))
    return specs


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def add_partner(
    batch: Batch,
    ids: Ids,
    rng: random.Random,
    *,
    name: str,
    domain: str,
    code: str,
    currency: str,
    setup_state: str,
    admins: Sequence[AdminSpec],
    now: datetime,
) -> PartnerContext:
    """Rows of a partner, its admins and its tags; the context for its customers."""
    created = normalize_now(now) - timedelta(
        days=rng.randint(900, 1500), seconds=rng.randrange(86400)
    )
    partner_id = ids.take("partner")
    accepted = created + timedelta(days=rng.randint(1, 30))
    batch.add(
        "partner",
        {
            "id": partner_id,
            "name": name,
            "domain": domain,
            "setup_state": setup_state,
            "terms_accepted_at": accepted if setup_state != SetupState.NOT_STARTED else None,
            "setup_completed_at": (
                accepted + timedelta(hours=2) if setup_state == SetupState.READY else None
            ),
            "created_at": created,
        },
    )
    admin_ids: list[tuple[AdminSpec, int]] = []
    for i, spec in enumerate(admins):
        admin_id = ids.take("admin")
        admin_ids.append((spec, admin_id))
        batch.add(
            "admin",
            {
                "id": admin_id,
                "partner_id": partner_id,
                "email": f"{spec.local_part}@{domain}".lower(),
                "name": spec.name,
                "role": str(spec.role),
                "active": True,
                "created_at": created + timedelta(days=i * 11, hours=1),
                "deactivated_at": None,
            },
        )
    tags: dict[str, int] = {}
    for i, (tag_name, description) in enumerate(TAGS):
        tags[tag_name] = ids.take("tag")
        batch.add(
            "tag",
            {
                "id": tags[tag_name],
                "partner_id": partner_id,
                "name": tag_name,
                "name_key": tag_name.strip().lower(),
                "description": description,
                "created_at": created + timedelta(days=40 + i * 3),
            },
        )
    full = next(a for s, a in admin_ids if s.role == Role.FULL_ADMIN)
    return PartnerContext(
        partner_id=partner_id,
        code=code,
        currency=currency,
        full_admin=full,
        provisioners=tuple(
            a for s, a in admin_ids if s.role in (Role.PARTNER_ADMIN, Role.SALES_ADMIN)
        ),
        assignees=tuple((a, s.assign_share) for s, a in admin_ids if s.assign_share > 0),
        tags=tags,
        admin_roles={a: str(s.role) for s, a in admin_ids},
    )
