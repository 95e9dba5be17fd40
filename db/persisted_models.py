"""Registered persisted queries: documents a deployment allows by SHA-256 (graph/persisted.py).

Deployment-wide, not partner data: a document is code (a front end's operation), and what it
returns is decided per caller when it runs. Content-addressed: a hash always names the same
text, so a row never changes once written and may be cached for as long as a process lives.

This module does not import ``db.models``; ``db.models`` imports it at its end to register the
table with the same metadata.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class PersistedQuery(SQLModel, table=True):
    __tablename__ = "persisted_query"
    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    document: str = Field(sa_column=Column(Text, nullable=False))
    operation_name: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    registered_at: datetime = Field(sa_column=Column(UTCDateTime(timezone=True), nullable=False))
