"""Help resources: quick links, featured resources and the searchable, filterable catalogue.

Search is full text, ranked by relevance, behind one function (``search_ranking``) that picks the
engine by dialect: SQLite's FTS5 (``resource_fts``, BM25 with title weighted over summary over
body) or PostgreSQL's text search (``resource.search_vector``, ``ts_rank`` with weights A/B/C);
both are created by migration ``0004_resource_search``.

What the user types is never handed to either query language: ``search_terms`` keeps only the
words (letters and digits), drops English stop words (PostgreSQL's list, so both engines see the
same words), and each remaining word becomes a quoted prefix term; every term must match. Quotes,
``*``, ``:``, ``-``, ``OR``, ``NEAR`` or parentheses are therefore just separators or words.

Relevance is a deterministic function of the catalogue and the terms, quantised to an integer
(billionths) so that it compares exactly in SQL and travels exactly in a cursor: a search pages by
(relevance descending, id ascending). Without search, the catalogue is ordered by popularity
(descending), then title (case-insensitive, code-point order on both engines), then id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Double,
    Integer,
    and_,
    bindparam,
    cast,
    column,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Subquery

from db.models import Resource
from db.queries.customers import DrivenRecords

R = Resource.__table__.c  # type: ignore[attr-defined]

# Title, summary, body: a word in the title counts most (FTS5 ``bm25`` column weights).
BM25_WEIGHTS = (10.0, 4.0, 1.0)
# ts_rank normalisation 1: divide by 1 + log(document length), so long bodies do not dominate.
TS_RANK_NORMALIZATION = 1
RELEVANCE_SCALE = 1_000_000_000
MAX_TERMS = 32

# PostgreSQL's English stop words (tsearch_data/english.stop): PostgreSQL drops them from a
# query, FTS5 has no such list, so they are dropped here for both.
_ENGLISH_STOP_WORDS = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing a an
    the and but if or because as until while of at by for with about against between into through
    during before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now
"""
STOP_WORDS = frozenset(_ENGLISH_STOP_WORDS.split())
_WORD = re.compile(r"[^\W_]+")


class ResourceType(StrEnum):
    ARTICLE = "ARTICLE"
    VIDEO = "VIDEO"
    GUIDE = "GUIDE"
    TRAINING = "TRAINING"
    API_DOC = "API_DOC"


@dataclass(frozen=True, slots=True)
class ResourceQuery:
    """What to list: every field optional; lists match any value, fields combine with AND.

    ``terms`` come from ``search_terms``; an empty tuple (nothing searchable was typed) lists
    like no search at all.
    """

    terms: tuple[str, ...] = ()
    types: tuple[str, ...] | None = None
    products: tuple[str, ...] | None = None
    audiences: tuple[str, ...] | None = None


def search_terms(text: str | None) -> tuple[str, ...]:
    """The words of a search, lower-cased, without stop words or repeats, in typed order."""
    if not text:
        return ()
    words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
    return tuple(dict.fromkeys(words))[:MAX_TERMS]


def fts5_query(terms: tuple[str, ...]) -> str:
    """An FTS5 MATCH expression: every term quoted (so it is never syntax), as a prefix."""
    return " ".join('"' + t.replace('"', '""') + '"*' for t in terms)


def tsquery_text(terms: tuple[str, ...]) -> str:
    """A ``to_tsquery`` expression: every term quoted (so it is never syntax), as a prefix."""
    return " & ".join("'" + t.replace("'", "''").replace("\\", "\\\\") + "':*" for t in terms)


def search_ranking(dialect: str, terms: tuple[str, ...]) -> Subquery:
    """``(id, relevance)`` of the resources matching every term; higher relevance is better.

    The one place that knows both search engines.
    """
    if dialect == "sqlite":
        fts = table("resource_fts", column("rowid", Integer))
        bm25 = func.bm25(literal_column("resource_fts"), *BM25_WEIGHTS)
        # BM25 is lower for better matches; negate it so both engines rank "higher is better".
        relevance = cast(func.round(-bm25 * RELEVANCE_SCALE), BigInteger)
        stmt = select(fts.c.rowid.label("id"), relevance.label("relevance")).where(
            literal_column("resource_fts").op("MATCH")(fts5_query(terms))
        )
        return stmt.subquery("ranking")
    if dialect == "postgresql":
        res = table("resource", column("id", Integer), column("search_vector"))
        query = func.to_tsquery(literal_column("'english'::regconfig"), tsquery_text(terms))
        rank = func.ts_rank(res.c.search_vector, query, TS_RANK_NORMALIZATION)
        # ts_rank is a real: widen it before scaling so the product keeps its digits.
        relevance = cast(func.round(cast(rank, Double) * RELEVANCE_SCALE), BigInteger)
        stmt = select(res.c.id.label("id"), relevance.label("relevance")).where(
            res.c.search_vector.op("@@")(query)
        )
        return stmt.subquery("ranking")
    raise NotImplementedError(f"no resource search for {dialect}")


def _listed(column_: Any, values: tuple[str, ...]) -> Any:
    """The comma-separated ``column_`` holds any of ``values``."""
    padded = literal(",") + column_ + literal(",")
    return or_(*[padded.contains(f",{v},", autoescape=True) for v in values])


def _conditions(query: ResourceQuery) -> list[Any]:
    conditions: list[Any] = []
    if any(v is not None and not v for v in (query.types, query.products, query.audiences)):
        conditions.append(false())  # an empty list has no value to match
    if query.types:
        conditions.append(R.type.in_(list(query.types)))
    if query.products:
        conditions.append(_listed(R.products, query.products))
    if query.audiences:
        conditions.append(_listed(R.audiences, query.audiences))
    return conditions


def _title_key(dialect: str) -> Any:
    key = func.lower(R.title)
    # PostgreSQL would sort by the database's locale; "C" sorts by code point, like SQLite.
    return key.collate("C") if dialect == "postgresql" else key


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name  # type: ignore[union-attr]


def key_types(query: ResourceQuery) -> tuple[str, ...]:
    """How each key value travels in a cursor: (relevance, id) or (popularity, title, id)."""
    return ("int", "int") if query.terms else ("int", "str", "int")


@dataclass(frozen=True, slots=True)
class ResourcePage:
    rows: list[Any]
    keys: list[tuple[Any, ...]]
    has_next: bool


async def resources_page(
    session: AsyncSession,
    *,
    query: ResourceQuery,
    first: int,
    after: tuple[Any, ...] | None = None,
    backward: bool = False,
) -> ResourcePage:
    """One keyset page of the catalogue: by relevance when searching, else by popularity;
    ``backward``: the ``first`` rows before ``after``, nearest first."""
    dialect = _dialect(session)
    conditions = _conditions(query)
    if query.terms:
        ranking = search_ranking(dialect, query.terms)
        relevance = ranking.c.relevance
        keys = [(relevance, True), (R.id, False)]
        stmt = select(*R, relevance.label("k0"), R.id.label("k1")).join(
            ranking, ranking.c.id == R.id
        )
    else:
        title = _title_key(dialect)
        keys = [(R.popularity, True), (title, False), (R.id, False)]
        stmt = select(*R, R.popularity.label("k0"), title.label("k1"), R.id.label("k2"))
    keys = [(k, down != backward) for k, down in keys]
    if after is not None:
        conditions.append(_beyond(keys, after))
    stmt = stmt.where(*conditions).order_by(*[k.desc() if down else k.asc() for k, down in keys])
    result = (await session.execute(stmt.limit(first + 1))).all()
    n = len(key_types(query))
    return ResourcePage(
        rows=list(result[:first]),
        keys=[tuple(row[-n:]) for row in result[:first]],
        has_next=len(result) > first,
    )


def _beyond(keys: list[tuple[Any, bool]], values: tuple[Any, ...]) -> Any:
    """Rows past ``values`` in the order of ``keys`` (each ascending or descending)."""
    (key, down), *rest = keys
    past = key < values[0] if down else key > values[0]
    if not rest:
        return past
    return or_(past, and_(key == values[0], _beyond(rest, values[1:])))


async def count_resources(session: AsyncSession, *, query: ResourceQuery) -> int:
    stmt = select(func.count()).select_from(Resource)
    if query.terms:
        ranking = search_ranking(_dialect(session), query.terms)
        stmt = stmt.join(ranking, ranking.c.id == R.id)
    return int((await session.execute(stmt.where(*_conditions(query)))).scalar_one())


async def quick_links(session: AsyncSession, *, limit: int) -> list[Any]:
    """The first ``limit`` resources flagged as quick links, most popular first."""
    return await _flagged(session, "quick_link", limit)


async def featured_resources(session: AsyncSession, *, limit: int) -> list[Any]:
    """The first ``limit`` resources flagged as featured, most popular first."""
    return await _flagged(session, "featured", limit)


# Per (flag, dialect): the help page's first reads, on the request's driver connection carrying
# a provisional request's token lookup (``DrivenRecords``): one statement where they took two
# (the lookup alone, then this one built anew), and the limit in it (they read every flagged
# resource and sliced).
_FLAGGED: dict[tuple[str, str], DrivenRecords] = {}


async def _flagged(session: AsyncSession, flag: str, limit: int) -> list[Any]:
    dialect = _dialect(session)
    reads = _FLAGGED.get((flag, dialect))
    if reads is None:
        stmt = (
            select(*R)
            .where(R[flag].is_(True))
            .order_by(R.popularity.desc(), _title_key(dialect), R.id)
            .limit(bindparam("limit"))
        )
        reads = _FLAGGED[(flag, dialect)] = DrivenRecords(stmt)
    rows: list[Any] = await reads.read(session, {"limit": limit})
    return rows
