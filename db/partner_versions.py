"""``partner_data_version``: the data version of each partner (``db.versioning``).

One row per partner that has had a write declared for it; a partner without a row is at version
0. ``shared_version`` counts the partner's commits that wrote inputs of deployment-wide figures
(``SHARED_WRITE``); their sum over all partners is the deployment's shared version. No foreign
key: a transaction that deletes a partner still bumps its row at commit, and a foreign key would
then refuse that commit (a row left behind is a counter nobody reads).

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
    # Moved by the partner's writes of what deployment-wide figures read (``db.versioning``).
    Column("shared_version", BigInteger, nullable=False, server_default="0"),
)
