"""Typed settings read from ``PARTNER_HUB_*`` environment variables, each with a working default."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.billing import DEFAULT_MONTHLY_PRICE_CENTS


class Settings(BaseSettings):
    """Every knob of the service. Documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="PARTNER_HUB_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./partner_hub.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    now: datetime | None = Field(
        default=None, description="Pin the clock (ISO 8601), e.g. 2026-11-26T00:00:00Z"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # Customer status thresholds (DESIGN.md section 2).
    expiring_soon_days: int = Field(default=7, ge=1, le=365)
    inactivity_days: int = Field(default=30, ge=1, le=3650)
    max_tags_per_customer: int = Field(default=20, ge=1, le=1000)
    # A call leg is poor quality above any of these (DESIGN.md section 3).
    poor_packet_loss_percent: float = Field(default=5.0, ge=0, le=100)
    poor_jitter_ms: float = Field(default=150.0, ge=0)
    poor_latency_ms: float = Field(default=400.0, ge=0)
    # Query limits.
    max_query_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=4000, ge=100)
    max_page_size: int = Field(default=100, ge=1)
    # Calculated query cost (an upper bound of the objects a query may return, graph/cost_model)
    # and its rate limit: a full directory page of 50 costs about 28,000.
    max_query_cost: int = Field(default=50_000, ge=100)
    cost_per_minute: int = Field(default=2_000_000, ge=100)
    max_search_length: int = Field(default=200, ge=1)
    # Any argument value, before execution (graph/input_limits.py): longer strings and lists
    # are BAD_USER_INPUT whatever field they go to. Above every field's own limit.
    max_string_input: int = Field(default=100_000, ge=1000)
    max_list_input: int = Field(default=5000, ge=100, le=30_000)
    parser_cache_size: int = Field(default=512, ge=1)
    validation_cache_size: int = Field(default=512, ge=1)
    # Hostile input (graph/documents.py, graph/transport.py): a POST body over this many bytes
    # is refused with 413; a document over this many characters is refused unparsed; the parsed
    # and validated documents' caches hold at most this many MB each.
    max_body_bytes: int = Field(default=2_097_152, ge=1024)
    max_document_chars: int = Field(default=65_536, ge=100)
    document_cache_mb: int = Field(default=8, ge=1)
    # Whole-response cache of queries (graph/response_cache.py): an entry lives at most this
    # many seconds (0 turns the cache off) within this many MB per process.
    response_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    response_cache_mb: int = Field(default=16, ge=1)
    response_cache_entries: int = Field(default=10_000, ge=1)
    # Keep the deployment's low-allocation medians between requests while the shared version
    # and the clock's stale-row window hold (db.queries.analytics.medians.MediansMemo); off:
    # every request recomputes them (the bench's cold figures).
    medians_memo: bool = True
    # Move the kept low-allocation spans' reference to the current medians every N seconds
    # while serving (graph.low_rebase; 0: never). Figures are exact either way; the move keeps
    # the dashboards' correction (the totals between the two thresholds) small.
    low_rebase_seconds: float = Field(default=600.0, ge=0, le=7 * 24 * 3600)
    # Persisted queries (graph/persisted.py): "auto" takes Apollo's automatic persisted queries
    # (a client registers a document by its SHA-256 on first use, then sends the hash alone)
    # beside ordinary documents; "registered" runs only documents registered with
    # `partner-hub persisted register`; "off" ignores the extension. GET reads by hash carry an
    # ETag that stays valid at most this many seconds when no write happens (time-driven
    # statuses move without one).
    persisted_queries: Literal["auto", "registered", "off"] = "auto"
    persisted_cache_mb: int = Field(default=8, ge=1)
    etag_window_seconds: int = Field(default=10, ge=1, le=3600)
    # A query on PostgreSQL whose token this process has seen runs as the principal last seen
    # with it, the token's lookup riding along its first statement (db/token_check.py): one
    # round trip fewer a request. Off: every request looks its token up first, alone.
    provisional_queries: bool = True
    # Serving (graph/serving.py): on SIGTERM a server finishes its requests in flight for at
    # most this many seconds, then exits.
    shutdown_grace: float = Field(default=10.0, ge=0, le=3600)
    # The event loop and HTTP parser of ``serve``. The parser: "auto" takes httptools (C,
    # installed with the project), "h11" the pure-Python one. The loop: asyncio's by default;
    # "uvloop" (installed too) lowered the median under load but starved some requests (p99
    # 2-4 s against 0.23-0.28 s at 32 connections on PostgreSQL, same throughput: README).
    serve_loop: Literal["auto", "uvloop", "asyncio"] = "asyncio"
    serve_http: Literal["auto", "httptools", "h11"] = "auto"
    # Seconds ``serve`` keeps an idle keep-alive connection open. Longer than what holds idle
    # connections to it (nginx's upstream ``keepalive_timeout`` and cloud load balancers: 60 s),
    # so that the server is never the side that closes a connection the client may be sending
    # on at that moment: a request sent as uvicorn's default of 5 s (equal to httpx's pool
    # expiry) ran out failed with a read error on an instance that never stopped.
    serve_keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    # Database connections per process (db/engine.py POOL_SIZES): unset, 10 + 20 overflow on
    # PostgreSQL, 4 + 0 on SQLite; and each SQLite connection's page cache.
    database_pool_size: int | None = Field(default=None, ge=1, le=500)
    database_pool_overflow: int | None = Field(default=None, ge=0, le=500)
    # PostgreSQL: connections a process keeps checked out between queries, ready for the next
    # (db/query_lane.py); unset, the pool's size; 0: every query checks one out of the pool.
    database_kept_connections: int | None = Field(default=None, ge=0, le=500)
    sqlite_cache_mb: int = Field(default=16, ge=1, le=4096)
    # GraphQL requests executing at once per process (graph/admission.py); the others wait
    # their turn before taking anything. Unset: 4 on SQLite, no limit on PostgreSQL; 0: no limit.
    serve_max_concurrent: int | None = Field(default=None, ge=0, le=10_000)
    # Where N instances keep the per-token cost budget they share (graph/cost_store.py):
    # redis://host:port/db; unset, PostgreSQL deployments keep it in their database and SQLite
    # ones in each process.
    redis_url: str | None = None
    # "process" keeps the budget in each process even on PostgreSQL (one instance, or a
    # benchmark of the shared budget's price).
    cost_budget_store: Literal["auto", "process"] = "auto"
    # Admin console that launch links open; launch tokens live this many seconds.
    console_url: str = "https://console.partner-hub.example/launch"
    launch_token_seconds: int = Field(default=300, ge=10, le=3600)
    # Subscription changes (graph/resolvers/subscriptions.py): the monthly list price of one
    # licence of each product, in cents of the invoice's currency (db/billing.py), and the
    # currency of a partner's first invoice (later ones keep the currency it already bills in).
    license_prices_cents: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_MONTHLY_PRICE_CENTS),
        description="Monthly price per licence and product, in cents, as JSON.",
    )
    billing_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    # Webhooks (issue 20). `serve` delivers unless webhook_delivery is off; http:// endpoints
    # and private, loopback or link-local addresses are refused unless allowed (development).
    webhook_delivery: bool = True
    webhook_allow_http: bool = False
    webhook_allow_private_networks: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Retries: exponential backoff with jitter from base to max delay, for the window (24 h);
    # an endpoint failing for the whole window is disabled.
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_delay_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=86_400.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_batch: int = Field(default=20, ge=1, le=500)
    webhook_concurrency: int = Field(default=10, ge=1, le=200)
    # Time-driven status events: how often span boundaries are looked for.
    webhook_schedule_seconds: float = Field(default=60.0, gt=0)
    max_webhook_endpoints: int = Field(default=20, ge=1, le=1000)
    # Finished deliveries (and events no delivery needs) are forgotten after this many days.
    webhook_retention_days: int = Field(default=30, ge=1, le=3650)
    # Secret used to sign cursors and launch links; generated per database when unset.
    secret_key: str | None = None

    @field_validator("now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    @field_validator("license_prices_cents")
    @classmethod
    def _every_product_priced(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DEFAULT_MONTHLY_PRICE_CENTS))
        if unknown:
            raise ValueError(f"not products: {unknown}")
        if any(cents < 0 for cents in value.values()):
            raise ValueError("a price is at least 0 cents")
        return {**DEFAULT_MONTHLY_PRICE_CENTS, **value}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
