"""Webhooks in the database: events, the outbox, endpoints, deliveries (no network here)."""
