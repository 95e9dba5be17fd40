"""Inputs and payloads of the tag mutations."""

from __future__ import annotations

import strawberry

from graph.mutations import UserError
from graph.types.customers import Customer, Subscription
from graph.types.tags import Tag


@strawberry.input(description="A new tag.")
class CreateTagInput:
    name: str = strawberry.field(description="1-25 characters after trimming; unique (any case).")
    description: str | None = strawberry.field(default=None, description="Up to 500 characters.")


@strawberry.input(description="Changes to a tag; omitted fields stay.")
class UpdateTagInput:
    id: strawberry.ID = strawberry.field(description="The tag.")
    name: str | None = strawberry.field(default=None, description="New name.")
    description: str | None = strawberry.field(default=None, description="New description.")


@strawberry.input(description="The tag to delete; it is detached everywhere.")
class DeleteTagInput:
    id: strawberry.ID = strawberry.field(description="The tag.")


@strawberry.input(description="Tags and customers (up to 100) to link or unlink, all or nothing.")
class CustomerTagsInput:
    customer_ids: list[strawberry.ID] = strawberry.field(description="1-100 customers.")
    tag_ids: list[strawberry.ID] = strawberry.field(description="Tags of the partner.")


@strawberry.input(description="Tags and subscriptions (up to 100) to link or unlink.")
class SubscriptionTagsInput:
    subscription_ids: list[strawberry.ID] = strawberry.field(description="1-100 subscriptions.")
    tag_ids: list[strawberry.ID] = strawberry.field(description="Tags of the partner.")


@strawberry.type(description="Result of createTag / updateTag.")
class TagPayload:
    tag: Tag | None = strawberry.field(description="The tag after the change.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of deleteTag.")
class DeleteTagPayload:
    deleted_tag_id: strawberry.ID | None = strawberry.field(description="ID of the deleted tag.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of adding or removing customer tags.")
class CustomerTagsPayload:
    customers: list[Customer] = strawberry.field(description="The customers after the change.")
    changed: int = strawberry.field(description="Links created or removed.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")


@strawberry.type(description="Result of adding or removing subscription tags.")
class SubscriptionTagsPayload:
    subscriptions: list[Subscription] = strawberry.field(description="After the change.")
    changed: int = strawberry.field(description="Links created or removed.")
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed.")
