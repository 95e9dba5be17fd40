"""What every enum value means, as GraphiQL, IDEs and generated TypeScript show it.

The GraphQL enums are mostly the domain enums of ``db/`` registered with ``strawberry.enum``
(the database stores their plain strings), so their values cannot carry
``strawberry.enum_value(description=...)`` without changing what ``db/`` stores. The
descriptions are attached here instead, to the registered definitions, before the schema is
built; :func:`describe` refuses a table that misses a value or names one that does not exist, so
a value added later fails at import until it is described (tests/test_descriptions.py checks the
whole schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from db import enums
from db.calls_models import CallDirection
from db.queries import calls as calls_q
from db.queries.customer_pages import CustomerOrder
from db.queries.resources import ResourceType
from graph.types import calling, common, helpdesk, resources  # noqa: F401  (registration)
from graph.types.analytics import (
    AnalyticsProduct,
    ExpiringColumn,
    LowAllocationColumn,
    OverageColumn,
    RecentlyAddedColumn,
    RenewingColumn,
    SortDirection,
)
from graph.types.resources import ResourceAudience
from graph.types.webhooks import WebhookDeliveryStatus, WebhookEventName


def describe(enum: type[Enum], descriptions: Mapping[str, str]) -> None:
    """Give each GraphQL value of the registered ``enum`` its description, all or nothing."""
    definition: Any = enum.__strawberry_definition__  # type: ignore[attr-defined]
    names = {value.name for value in definition.values}
    missing, unknown = names - descriptions.keys(), descriptions.keys() - names
    if missing or unknown:
        raise ValueError(
            f"{definition.name}: undescribed {sorted(missing)}, unknown {sorted(unknown)}"
        )
    for value in definition.values:
        value.description = descriptions[value.name]


IN_FORCE = "in force (ACTIVE and start <= now < end)"

describe(
    enums.Product,
    {
        "MEETINGS": "Webex Meetings: video meetings and webinars.",
        "CALLING": "Webex Calling: cloud phone system (the calling analytics cover it).",
        "MESSAGING": "Webex Messaging: team spaces and chat (outside the license KPIs).",
        "REAL_TIME_TRANSLATION": "Real-time translation of meetings.",
        "CONTACT_CENTER": "Webex Contact Center: queues and agents for customer service.",
    },
)
describe(
    enums.ManagedBy,
    {
        "EXTERNAL_ADMIN": "The partner administers the customer's organization as an external "
        "admin.",
        "PARTNER_ORG": "The customer is part of the partner's own organization.",
    },
)
describe(
    enums.SubscriptionKind,
    {
        "PAID": "An ordered, paid subscription.",
        "TRIAL": "A trial started from Partner Hub (1-90 days, extendable in 30-day steps, "
        "convertible to PAID); its identifier is the trial identifier.",
    },
)
describe(
    enums.SubscriptionState,
    {
        "PROVISIONING": "Ordered, not yet fully set up (the customer shows READY_FOR_ORDER_SETUP).",
        "ACTIVE": "Set up and paid: in force between its start and end dates.",
        "SUSPENDED": "Not paid: service suspended until payment.",
        "EXPIRED": "Reached its end date without renewal.",
        "CANCELLED": "Cancelled before its end date.",
    },
)
describe(
    enums.OrderAction,
    {
        "NEW": "A new subscription was ordered.",
        "RENEWAL": "The term was extended (renewSubscription, or an automatic renewal); invoiced.",
        "ADD_LICENSES": "The purchased count of a licence line went up (changeLicenseQuantity); "
        "the added licences are invoiced for the rest of the term.",
        "REMOVE_LICENSES": "The purchased count of a licence line went down "
        "(changeLicenseQuantity); not credited.",
        "ORDER_SETUP": "A PROVISIONING subscription was set up and became ACTIVE "
        "(completeOrderSetup).",
        "AUTO_RENEW_ON": "Automatic renewal was turned on (setAutoRenew).",
        "AUTO_RENEW_OFF": "Automatic renewal was turned off (setAutoRenew).",
        "CANCELLATION_AT_TERM_END": "Cancelled at the end of its term: auto-renew off, in force "
        "until its end date (cancelSubscription with atTermEnd).",
        "CANCELLATION": "Cancelled now (cancelSubscription with atTermEnd: false).",
        "CONVERSION": "A trial was converted into this paid subscription (convertTrial).",
        "TRIAL_START": "A trial was started (startTrial).",
        "TRIAL_EXTENSION": "A trial was extended (extendTrial).",
    },
)
describe(
    enums.OrderStatus,
    {
        "IN_PROGRESS": "Placed, waiting for its set-up (the subscription is PROVISIONING).",
        "COMPLETED": "Carried out.",
        "CANCELLED": "Withdrawn before its set-up (the subscription was cancelled while "
        "PROVISIONING).",
    },
)
describe(
    enums.InvoiceStatus,
    {
        "OPEN": "Issued and not yet due (every invoice starts OPEN, due 30 days after issue).",
        "PAID": "Paid in full.",
        "OVERDUE": "Past its due date and not paid.",
    },
)
describe(
    enums.CustomerStatus,
    {
        "TRIAL": f"A TRIAL subscription is {IN_FORCE}.",
        "ACTIVE": f"A PAID subscription is {IN_FORCE}.",
        "EXPIRING_SOON": "A trial, or a paid subscription that does not auto-renew, is in force "
        "and ends within the expiring-soon window (default 7 days).",
        "LICENSE_OVERAGE": "An in-force subscription has a license line with more licenses "
        "assigned than purchased.",
        "NO_RECENT_ACTIVITY": "The customer's own admins never signed in to their admin console, "
        "or last did more than the inactivity window (default 30 days) ago.",
        "READY_FOR_ORDER_SETUP": "A subscription is PROVISIONING: ordered, not fully set up yet.",
        "SUSPENDED": "A subscription is SUSPENDED for non-payment.",
        "EXPIRED": "The customer has subscriptions and every one is expired, cancelled or ended.",
    },
)
describe(
    enums.SetupState,
    {
        "NOT_STARTED": "The first-time setup wizard has not been completed; launching shows it.",
        "TERMS_ACCEPTED": "The plan was reviewed and the terms and conditions accepted.",
        "READY": "Setup finished: users can be added and services managed.",
    },
)
describe(
    CustomerOrder,
    {
        "NAME_ASC": "By name, A to Z (the default).",
        "NAME_DESC": "By name, Z to A.",
        "CREATED_AT_ASC": "Oldest customers first.",
        "CREATED_AT_DESC": "Newest customers first.",
        "END_DATE_ASC": "The customer whose in-force subscription ends soonest first; customers "
        "with none in force last.",
    },
)

# --- helpdesk and resources ------------------------------------------------------------------

describe(
    enums.HelpdeskSeverity,
    {
        "LOW": "A question; no impact on service.",
        "MEDIUM": "Service degraded, a workaround exists.",
        "HIGH": "A service is impaired for users.",
        "CRITICAL": "A service is down.",
    },
)
describe(
    enums.HelpdeskState,
    {
        "OPEN": "Being worked on; comments can be added.",
        "CLOSED": "Resolved, with a resolution; no more comments.",
    },
)
describe(
    ResourceType,
    {
        "ARTICLE": "A help article to read.",
        "VIDEO": "A recorded video.",
        "GUIDE": "A step-by-step guide.",
        "TRAINING": "A course or webinar.",
        "API_DOC": "Developer documentation of an API.",
    },
)
describe(
    ResourceAudience,
    {
        "FULL_ADMIN": "Written for full administrators (everything of the partner).",
        "PARTNER_ADMIN": "Written for partner administrators (their assigned customers).",
        "READ_ONLY_ADMIN": "Written for read-only administrators.",
        "SALES_ADMIN": "Written for sales administrators (trials for new or their customers).",
    },
)

# --- calling ---------------------------------------------------------------------------------

describe(
    enums.EndpointType,
    {
        "DESK_PHONE": "A desk phone.",
        "DESKTOP_APP": "The desktop app.",
        "MOBILE_APP": "The mobile app.",
        "BROWSER": "A web browser.",
        "OTHER": "Any other device or client (an analogue adapter, a meeting room device, ...).",
    },
)
describe(
    enums.CallFeature,
    {
        "TRANSFER": "The call was transferred to another user or number.",
        "HOLD": "The call was put on hold.",
        "FORWARD": "The call was forwarded.",
        "CONFERENCE": "The call became a conference with a third party.",
        "CALL_QUEUE": "The call went through a call queue (see callQueue).",
        "HUNT_GROUP": "The call rang a hunt group.",
        "AUTO_ATTENDANT": "The call was answered by an auto attendant menu.",
        "VOICEMAIL": "The call reached voicemail.",
        "CALL_PARK": "The call was parked for pickup elsewhere.",
        "CALL_PICKUP": "The call was picked up by another user of a pickup group.",
    },
)
describe(
    CallDirection,
    {
        "INBOUND": "Into the customer organization from outside.",
        "OUTBOUND": "From the customer organization to outside.",
        "INTERNAL": "Between two users of the customer organization.",
    },
)
describe(
    calls_q.CustomerUsageOrder,
    {
        "CALLS_DESC": "Most calls first (the default).",
        "CALLS_ASC": "Fewest calls first.",
        "MINUTES_DESC": "Most minutes first.",
        "MINUTES_ASC": "Fewest minutes first.",
        "ACTIVE_USERS_DESC": "Most active users (at least one call) first.",
        "ACTIVE_USERS_ASC": "Fewest active users first.",
        "CALLS_CHANGE_DESC": "Largest rise in calls over the previous week first.",
        "CALLS_CHANGE_ASC": "Largest drop in calls over the previous week first: who to call.",
        "NAME_ASC": "By customer name, A to Z.",
        "NAME_DESC": "By customer name, Z to A.",
    },
)
describe(
    calls_q.CustomerQualityOrder,
    {
        "POOR_PERCENT_DESC": "Highest share of poor-quality calls first (the default).",
        "POOR_PERCENT_ASC": "Lowest share of poor-quality calls first.",
        "POOR_CALLS_DESC": "Most poor-quality calls first.",
        "TOTAL_CALLS_DESC": "Most calls first.",
        "NAME_ASC": "By customer name, A to Z.",
        "NAME_DESC": "By customer name, Z to A.",
    },
)
describe(
    calls_q.QueueCustomerOrder,
    {
        "ABANDONED_RATE_DESC": "Highest abandoned-call rate first (the default).",
        "ABANDONED_RATE_ASC": "Lowest abandoned-call rate first.",
        "QUEUE_CALLS_DESC": "Most queue calls first.",
        "AVERAGE_TIME_TO_ANSWER_DESC": "Longest average wait before an agent answered first.",
        "AVERAGE_WAIT_BEFORE_ABANDON_DESC": "Longest average wait before callers hung up first.",
        "NAME_ASC": "By customer name, A to Z.",
        "NAME_DESC": "By customer name, Z to A.",
    },
)

# --- license analytics -----------------------------------------------------------------------

describe(
    AnalyticsProduct,
    {
        "MEETINGS": "Webex Meetings license lines.",
        "CALLING": "Webex Calling license lines.",
    },
)
describe(
    SortDirection,
    {
        "ASC": "Smallest value first (A to Z, earliest).",
        "DESC": "Largest value first (Z to A, latest).",
    },
)

# One meaning per column name, shared by the tables that have it.
COLUMNS = {
    "CUSTOMER_NAME": "The customer's name (customerName).",
    "SUBSCRIPTION_ID": "The subscription or trial identifier (subscriptionId).",
    "DAYS_SINCE_ADDED": "Days since the subscription started (by the start date itself).",
    "DAYS_UNTIL_EXPIRY": "Days until the subscription ends (by the end date itself).",
    "DAYS_UNTIL_RENEWAL": "Days until the subscription renews (by the renewal date itself).",
    "MONTHS_SINCE_ADDED": "Months since the subscription started (by the start date itself).",
    "MONTHS_REMAINING": "Months until the subscription ends (by the end date itself).",
    "TOTAL_LICENSES": "Licenses purchased on the product lines (totalLicenses).",
    "ASSIGNED": "Licenses assigned to users (assigned).",
    "USED": "Licenses used in the last 7 days (used).",
    "AVAILABLE": "Purchased licenses not assigned, 0 when over the limit (available).",
    "ALLOCATION_PERCENT": "Assigned as a percentage of purchased (allocationPercent).",
    "USAGE_PERCENT": "Used as a percentage of purchased (usagePercent).",
    "USAGE_WHEN_ASSIGNED_PERCENT": "Used as a percentage of assigned (usageWhenAssignedPercent).",
    "USAGE_LAST_3_MONTHS": "Highest weekly used count of the last 13 weeks (usageLast3Months).",
    "WEEKLY_ALLOCATION_CHANGE": "Change in assigned licenses over the last closed week.",
    "WEEKLY_USAGE_CHANGE": "Change in used licenses over the last closed week.",
    "SIZE_BAND": "Size band by purchased licenses (1-10 up to 1001+), smallest band first.",
    "LICENSE_TYPE": "License type of the overage line (licenseType).",
    "OVERAGE": "Licenses assigned beyond those purchased (overage).",
    "AUTO_RENEW": "Whether the subscription renews automatically (false before true).",
}
for column_enum in (
    RecentlyAddedColumn,
    ExpiringColumn,
    RenewingColumn,
    LowAllocationColumn,
    OverageColumn,
):
    describe(column_enum, {m.name: COLUMNS[m.name] for m in column_enum})

describe(
    WebhookEventName,
    {
        "CUSTOMER_STATUS_CHANGED": "customer.status_changed: a customer's statuses changed, by "
        "a write or because time passed; data has customerId, statuses, added and removed.",
        "SUBSCRIPTION_CHANGED": "subscription.changed: a subscription was created or changed "
        "(state, dates); data has subscriptionId, customerId, state, dates and change.",
        "TRIAL_STARTED": "trial.started: a trial was started; data has its products.",
        "TRIAL_EXTENDED": "trial.extended: a trial's end moved; data has previousEndDate.",
        "TRIAL_CONVERTED": "trial.converted: a trial became a paid subscription; data has "
        "paidSubscriptionId.",
        "ORDER_CREATED": "order.created: an order was placed (trial start, extension, "
        "conversion, and the orders of subscription management).",
        "CUSTOMER_TAGS_CHANGED": "customer.tags_changed: tags were attached to or detached "
        "from a customer; data has tagIds, added and removed.",
        "HELPDESK_CASE_UPDATED": "helpdesk_case.updated: a case was opened, commented on or "
        "closed (change: OPENED, COMMENTED, CLOSED).",
    },
)
describe(
    WebhookDeliveryStatus,
    {
        "PENDING": "To be sent, or to be retried at nextAttemptAt.",
        "SUCCEEDED": "The endpoint answered 2xx.",
        "FAILED": "Retries gave up after the retry window (24 hours by default).",
    },
)
