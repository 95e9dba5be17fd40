"""Order.action, Order.status and Invoice.status are enums (issue 19): what the demo stores is
within them, and the API reads every order and invoice of the demo without an error."""

from __future__ import annotations

from sqlalchemy import select

from db.enums import InvoiceStatus, OrderAction, OrderStatus
from db.models import Invoice, Order
from tests.conftest import Api
from tests.helpers import data_of, post_graphql

HISTORY = """
query H($after: String) {
  customers(first: 50, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { subscriptions { orders { orderNumber action status } invoices { status } } }
  }
}
"""


async def test_the_demo_stores_only_enum_values(demo_api: Api) -> None:
    async with demo_api.engine.connect() as conn:
        actions = set((await conn.execute(select(Order.action).distinct())).scalars())
        statuses = set((await conn.execute(select(Order.status).distinct())).scalars())
        invoices = set((await conn.execute(select(Invoice.status).distinct())).scalars())
    assert actions <= set(OrderAction) and actions
    assert statuses <= set(OrderStatus) and statuses
    assert invoices <= set(InvoiceStatus) and invoices


async def test_every_order_and_invoice_of_a_partner_reads_as_enums(demo_api: Api) -> None:
    after, seen = None, 0
    while True:
        body = await post_graphql(demo_api, HISTORY, {"after": after}, as_="full@acme.example")
        page = data_of(body)["customers"]
        for customer in page["nodes"]:
            for sub in customer["subscriptions"]:
                seen += len(sub["orders"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen > 0
