"""Webhooks (issue 20): endpoints, the outbox of events, and one delivery per (event, endpoint).

An event row is written in the same transaction as the change that causes it
(``db.webhooks.outbox.emit``); a delivery row per matching endpoint goes with it. Deliveries are
claimed by one server at a time (``claimed_until``: a lease, so a killed server's claims expire)
and carry their own schedule (``next_attempt_at``). Delivery times are wall-clock times, not
the domain clock (which a demo may pin): retries must happen however ``now`` is pinned.

This module does not import ``db.models``; ``db.models`` imports it at its end to register the
tables with the same metadata.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime

URL_MAX = 2000
RESPONSE_KEPT = 1024


def _partner() -> Column[int]:
    return Column(Integer, ForeignKey("partner.id", ondelete="CASCADE"), nullable=False)


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index("ix_webhook_endpoint_partner", "partner_id", "active"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_partner())
    url: str = Field(sa_column=Column(String(URL_MAX), nullable=False))
    description: str = Field(sa_column=Column(String(500), nullable=False))
    # Subscribed events, comma-separated enum names (at most eight: a small fixed set).
    events: str = Field(sa_column=Column(String(400), nullable=False))
    # The signing secret, sealed with the service secret (db.webhooks.secrets).
    secret: str = Field(sa_column=Column(Text, nullable=False))
    active: bool = Field(sa_column=Column(Boolean, nullable=False))
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Wall-clock time of the first failure since the last success (None while healthy).
    failing_since: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class WebhookOutboxEvent(SQLModel, table=True):
    __tablename__ = "webhook_event"
    __table_args__ = (Index("ix_webhook_event_customer", "customer_id", "event", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_partner())
    # The Standard Webhooks message id (``webhook-id``): the same for every attempt.
    message_id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    event: str = Field(sa_column=Column(String(40), nullable=False))
    customer_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # The whole JSON body ``{type, timestamp, data}``, exactly as signed and sent.
    body: str = Field(sa_column=Column(Text, nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_order", "endpoint_id", "customer_id", "status", "id"),
        Index("ix_webhook_delivery_partner", "partner_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(sa_column=_partner())
    endpoint_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), nullable=False
        )
    )
    event_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("webhook_event.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    event: str = Field(sa_column=Column(String(40), nullable=False))
    # Deliveries of one customer to one endpoint go in order (None: no order to keep).
    customer_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    attempts: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    first_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    last_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    claimed_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    claimed_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    response_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
