"""Schema assembly: the root types inherit each domain's queries (and mutations)."""

from __future__ import annotations

from functools import lru_cache

import strawberry
from strawberry.schema.config import StrawberryConfig

from db.settings import Settings, get_settings
from graph.execution import PlainFieldExecutionContext
from graph.extensions import limit_extensions
from graph.operation import Schema
from graph.resolvers.admin_mutations import AdminMutations
from graph.resolvers.admins import AdminQueries
from graph.resolvers.analytics import AnalyticsQueries
from graph.resolvers.assignments import AssignmentMutations
from graph.resolvers.calling import CallingMutations, CallingQueries
from graph.resolvers.customers import CustomerQueries
from graph.resolvers.helpdesk import HelpdeskMutations, HelpdeskQueries
from graph.resolvers.launch import LaunchMutations
from graph.resolvers.nodes import NodeQueries
from graph.resolvers.policies import PolicyMutations, PolicyQueries
from graph.resolvers.resources import ResourceQueries
from graph.resolvers.subscriptions import SubscriptionMutations
from graph.resolvers.tags import TagMutations
from graph.resolvers.trials import TrialMutations
from graph.resolvers.webhook_mutations import WebhookMutations
from graph.resolvers.webhooks import WebhookQueries
from graph.sdl import with_schema_block
from graph.types import enum_values  # noqa: F401  (describes every enum value)
from graph.types.admins import Admin, Partner
from graph.types.customers import Customer, Subscription
from graph.types.scalars import SCALAR_OVERRIDES
from graph.types.tags import Tag
from graph.types.webhooks import WebhookDelivery, WebhookEndpoint


@strawberry.type(description="Everything a partner administrator can read.")
class Query(
    AdminQueries,
    AnalyticsQueries,
    CallingQueries,
    CustomerQueries,
    HelpdeskQueries,
    NodeQueries,
    PolicyQueries,
    ResourceQueries,
    WebhookQueries,
):
    pass


@strawberry.type(description="Everything a partner administrator can change.")
class Mutation(
    AdminMutations,
    AssignmentMutations,
    CallingMutations,
    HelpdeskMutations,
    LaunchMutations,
    PolicyMutations,
    SubscriptionMutations,
    TagMutations,
    TrialMutations,
    WebhookMutations,
):
    pass


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or get_settings()
    return _schema(
        settings.max_query_depth,
        settings.max_aliases,
        settings.max_tokens,
        settings.parser_cache_size,
        settings.validation_cache_size,
        settings.max_document_chars,
        settings.document_cache_mb,
    )


@lru_cache(maxsize=8)
def _schema(
    depth: int, aliases: int, tokens: int, parser: int, validation: int, chars: int, mb: int
) -> strawberry.Schema:
    """One schema per set of limits: building it takes a third of a second."""
    settings = Settings(
        max_query_depth=depth,
        max_aliases=aliases,
        max_tokens=tokens,
        parser_cache_size=parser,
        validation_cache_size=validation,
        max_document_chars=chars,
        document_cache_mb=mb,
    )
    return Schema(
        query=Query,
        mutation=Mutation,
        types=[Customer, Subscription, Tag, Admin, Partner, WebhookEndpoint, WebhookDelivery],
        extensions=limit_extensions(settings),
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=PlainFieldExecutionContext,
        scalar_overrides=SCALAR_OVERRIDES,
    )


def export_sdl(settings: Settings | None = None) -> str:
    """``schema.graphql``: the printed schema, root operation types named (graph/sdl.py)."""
    schema = build_schema(settings)
    return with_schema_block(schema.as_str(), schema._schema) + "\n"
