"""Domain vocabularies, stored as plain strings so SQLite and PostgreSQL share one schema."""

from __future__ import annotations

from enum import StrEnum


class Product(StrEnum):
    MEETINGS = "MEETINGS"
    CALLING = "CALLING"
    MESSAGING = "MESSAGING"
    REAL_TIME_TRANSLATION = "REAL_TIME_TRANSLATION"
    CONTACT_CENTER = "CONTACT_CENTER"


class ManagedBy(StrEnum):
    EXTERNAL_ADMIN = "EXTERNAL_ADMIN"
    PARTNER_ORG = "PARTNER_ORG"


class SubscriptionKind(StrEnum):
    PAID = "PAID"
    TRIAL = "TRIAL"


class SubscriptionState(StrEnum):
    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class CustomerStatus(StrEnum):
    TRIAL = "TRIAL"
    ACTIVE = "ACTIVE"
    EXPIRING_SOON = "EXPIRING_SOON"
    LICENSE_OVERAGE = "LICENSE_OVERAGE"
    NO_RECENT_ACTIVITY = "NO_RECENT_ACTIVITY"
    READY_FOR_ORDER_SETUP = "READY_FOR_ORDER_SETUP"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"


class Role(StrEnum):
    FULL_ADMIN = "FULL_ADMIN"
    PARTNER_ADMIN = "PARTNER_ADMIN"
    READ_ONLY_ADMIN = "READ_ONLY_ADMIN"
    SALES_ADMIN = "SALES_ADMIN"


class SetupState(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    TERMS_ACCEPTED = "TERMS_ACCEPTED"
    READY = "READY"


class EndpointType(StrEnum):
    DESK_PHONE = "DESK_PHONE"
    DESKTOP_APP = "DESKTOP_APP"
    MOBILE_APP = "MOBILE_APP"
    BROWSER = "BROWSER"
    OTHER = "OTHER"


class CallFeature(StrEnum):
    TRANSFER = "TRANSFER"
    HOLD = "HOLD"
    FORWARD = "FORWARD"
    CONFERENCE = "CONFERENCE"
    CALL_QUEUE = "CALL_QUEUE"
    HUNT_GROUP = "HUNT_GROUP"
    AUTO_ATTENDANT = "AUTO_ATTENDANT"
    VOICEMAIL = "VOICEMAIL"
    CALL_PARK = "CALL_PARK"
    CALL_PICKUP = "CALL_PICKUP"


class HelpdeskSeverity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class HelpdeskState(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class OrderAction(StrEnum):
    """What an order (a row of a subscription's order history) did."""

    NEW = "NEW"
    RENEWAL = "RENEWAL"
    ADD_LICENSES = "ADD_LICENSES"
    REMOVE_LICENSES = "REMOVE_LICENSES"
    ORDER_SETUP = "ORDER_SETUP"
    AUTO_RENEW_ON = "AUTO_RENEW_ON"
    AUTO_RENEW_OFF = "AUTO_RENEW_OFF"
    CANCELLATION_AT_TERM_END = "CANCELLATION_AT_TERM_END"
    CANCELLATION = "CANCELLATION"
    CONVERSION = "CONVERSION"
    TRIAL_START = "TRIAL_START"
    TRIAL_EXTENSION = "TRIAL_EXTENSION"


class OrderStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class InvoiceStatus(StrEnum):
    OPEN = "OPEN"
    PAID = "PAID"
    OVERDUE = "OVERDUE"
