"""``partner_data_version``: the data version of each partner (``db.versioning``).

One row per partner that has had a write declared for it; a partner without a row is at version
0. No foreign key: a transaction that deletes a partner still bumps its row at commit, and a
foreign key would then refuse that commit (a row left behind is a counter nobody reads).

This module does not import ``db.models``, so ``db.models`` may import it at its end to register
the table with the same metadata.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, Table
from sqlmodel import SQLModel

PARTNER_DATA_VERSION = Table(
    "partner_data_version",
    SQLModel.metadata,
    Column("partner_id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)
