"""Help resources: quick links, featured resources, and the searched, filtered catalogue."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from db.models import Resource
from db.seed import seed_resources
from db.seed.resources import catalogue
from tests.conftest import NOW, Api, api_over
from tests.helpers import Factory, data_of, error_codes, post_graphql

FULL = "full@acme.example"

RESOURCES = """
query Resources($search: String, $filter: ResourceFilter, $first: Int!, $after: String) {
  resources(search: $search, filter: $filter, first: $first, after: $after) {
    totalCount
    nodes { slug title type products audiences popularity }
    edges { cursor node { slug } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

LISTS = """
query Lists {
  quickLinks { slug title quickLink featured popularity url }
  featuredResources { slug title quickLink featured popularity }
}
"""


@pytest.fixture
async def catalogue_api(api: Api) -> Api:
    """The seeded catalogue, and a full admin of one partner to read it."""
    factory = Factory(api.engine)
    partner = await factory.partner("Acme Partners", "acme.example")
    await factory.admin(partner, FULL, "FULL_ADMIN")
    await factory.admin(partner, "sales@acme.example", "SALES_ADMIN")
    await factory.admin(partner, "readonly@acme.example", "READ_ONLY_ADMIN")
    assert await seed_resources(api.engine, now=NOW) == len(catalogue())
    return api


async def resources(
    api: Api,
    *,
    search: str | None = None,
    filter: dict[str, Any] | None = None,
    first: int = 100,
    after: str | None = None,
    as_: str = FULL,
) -> dict[str, Any]:
    body = await post_graphql(
        api,
        RESOURCES,
        {"search": search, "filter": filter, "first": first, "after": after},
        as_=as_,
    )
    connection: dict[str, Any] = data_of(body)["resources"]
    return connection


async def walk(api: Api, *, first: int, **arguments: Any) -> list[str]:
    """Every slug, page after page, following endCursor."""
    slugs: list[str] = []
    after = None
    while True:
        page = await resources(api, first=first, after=after, **arguments)
        slugs += [n["slug"] for n in page["nodes"]]
        assert len(page["nodes"]) <= first
        if not page["pageInfo"]["hasNextPage"]:
            return slugs
        after = page["pageInfo"]["endCursor"]


def popularity_order(entries: list[dict[str, Any]]) -> list[str]:
    return [
        e["slug"] for e in sorted(entries, key=lambda e: (-e["popularity"], e["title"].lower()))
    ]


async def test_seeded_catalogue_has_at_least_40_resources(catalogue_api: Api) -> None:
    # when
    page = await resources(catalogue_api, first=1)

    # then
    assert page["totalCount"] == len(catalogue()) >= 40


async def test_without_search_resources_are_ordered_by_popularity_then_title(
    catalogue_api: Api,
) -> None:
    # when
    page = await resources(catalogue_api, first=100)

    # then
    assert [n["slug"] for n in page["nodes"]] == popularity_order(list(catalogue()))
    assert page["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("search", "expected_first"),
    [
        ("Contact the Partner Helpdesk", "contact-partner-helpdesk"),
        ("troubleshoot poor call quality", "call-quality-troubleshooting"),
        ("how do I start a trial", "start-webex-trial"),
        ("Roles, custom roles and access policies", "roles-and-policies"),
    ],
)
async def test_search_ranks_the_most_relevant_resource_first(
    catalogue_api: Api, search: str, expected_first: str
) -> None:
    # when
    page = await resources(catalogue_api, search=search)

    # then
    assert page["nodes"], page
    assert page["nodes"][0]["slug"] == expected_first
    assert page["totalCount"] == len(page["nodes"])


async def test_a_title_match_outranks_a_body_only_match(api: Api) -> None:
    # given: the word is in one title, and only in the body of two other (more popular) resources
    factory = Factory(api.engine)
    partner = await factory.partner()
    await factory.admin(partner, FULL, "FULL_ADMIN")
    await insert_resources(
        api,
        resource("body-1", "Billing overview", body="How invoices relate to a zebra.", pop=900),
        resource("title", "Zebra provisioning", body="Provisioning in steps.", pop=10),
        resource("body-2", "Order setup", body="Zebra orders are set up later.", pop=800),
        resource("none", "Unrelated", body="Nothing to see.", pop=999),
    )

    # when
    page = await resources(api, search="zebra")

    # then
    assert page["nodes"][0]["slug"] == "title"
    assert sorted(n["slug"] for n in page["nodes"]) == ["body-1", "body-2", "title"]


async def test_search_stems_and_matches_word_prefixes(catalogue_api: Api) -> None:
    # when
    plural = await resources(catalogue_api, search="trials")
    singular = await resources(catalogue_api, search="trial")
    prefix = await resources(catalogue_api, search="helpd")

    # then: stemming finds the same resources for both forms; a prefix finds the whole word
    assert {n["slug"] for n in plural["nodes"]} == {n["slug"] for n in singular["nodes"]}
    assert "start-webex-trial" in {n["slug"] for n in plural["nodes"]}
    assert "contact-partner-helpdesk" in {n["slug"] for n in prefix["nodes"]}


async def test_every_word_of_a_search_must_match(catalogue_api: Api) -> None:
    # when
    both = await resources(catalogue_api, search="contact center trial")
    nonsense = await resources(catalogue_api, search="contact xylophonequartz")

    # then
    assert "contact-center-trials" in [n["slug"] for n in both["nodes"]]
    assert nonsense["nodes"] == []
    assert nonsense["totalCount"] == 0


@pytest.mark.parametrize(
    "search",
    [
        '"',
        '"calling',
        'calling"',
        '"call quality" "',
        "*",
        "call*",
        "*calling",
        "calling:",
        "title:calling",
        "title : calling",
        "-calling",
        "calling -meetings",
        "calling OR meetings",
        "OR",
        "AND NOT",
        "NEAR(calling meetings)",
        "(calling",
        "calling)",
        "()",
        "'",
        "calling's",
        "\\",
        "^calling",
        "{title}: calling",
        "calling & | ! <-> meetings",
        "%_",
        "\u00fcber caf\u00e9",
        "   ",
        "",
    ],
)
async def test_search_syntax_characters_are_treated_as_text(
    catalogue_api: Api, search: str
) -> None:
    # when
    body = await post_graphql(catalogue_api, RESOURCES, {"search": search, "first": 100}, as_=FULL)

    # then
    page = data_of(body)["resources"]
    assert page["totalCount"] == len(page["nodes"])


async def test_operators_in_a_search_are_words_not_syntax(catalogue_api: Api) -> None:
    # when
    with_operators = await resources(catalogue_api, search='calling OR "meetings" (-)')
    plain = await resources(catalogue_api, search="calling meetings")

    # then: OR is a common word (ignored), quotes, parentheses and '-' are separators
    assert with_operators["nodes"] == plain["nodes"]
    assert plain["totalCount"] > 0


async def test_a_search_with_nothing_searchable_lists_by_popularity(catalogue_api: Api) -> None:
    # when
    page = await resources(catalogue_api, search='the "*" (or)')

    # then
    assert [n["slug"] for n in page["nodes"]] == popularity_order(list(catalogue()))


@pytest.mark.parametrize(
    ("filter", "holds"),
    [
        ({"types": ["VIDEO"]}, lambda e: e["type"] == "VIDEO"),
        ({"types": ["GUIDE", "API_DOC"]}, lambda e: e["type"] in ("GUIDE", "API_DOC")),
        ({"products": ["CONTACT_CENTER"]}, lambda e: "CONTACT_CENTER" in e["products"]),
        (
            {"products": ["REAL_TIME_TRANSLATION", "MESSAGING"]},
            lambda e: {"REAL_TIME_TRANSLATION", "MESSAGING"} & set(e["products"]),
        ),
        ({"audiences": ["SALES_ADMIN"]}, lambda e: "SALES_ADMIN" in e["audiences"]),
        (
            {"types": ["ARTICLE"], "products": ["CALLING"], "audiences": ["READ_ONLY_ADMIN"]},
            lambda e: (
                e["type"] == "ARTICLE"
                and "CALLING" in e["products"]
                and "READ_ONLY_ADMIN" in e["audiences"]
            ),
        ),
        ({"types": []}, lambda e: False),
    ],
)
async def test_filters_narrow_the_catalogue(
    catalogue_api: Api, filter: dict[str, Any], holds: Any
) -> None:
    # given
    expected = popularity_order([e for e in catalogue() if holds(e)])

    # when
    page = await resources(catalogue_api, filter=filter)

    # then
    assert [n["slug"] for n in page["nodes"]] == expected
    assert page["totalCount"] == len(expected)


async def test_filters_combine_with_search(catalogue_api: Api) -> None:
    # when
    page = await resources(catalogue_api, search="trial", filter={"products": ["CONTACT_CENTER"]})
    unfiltered = await resources(catalogue_api, search="trial")

    # then: the filter removes resources without reordering the ranked ones
    slugs = [n["slug"] for n in page["nodes"]]
    expected = [n["slug"] for n in unfiltered["nodes"] if "CONTACT_CENTER" in n["products"]]
    assert slugs == expected
    assert 0 < len(slugs) < unfiltered["totalCount"]
    assert "contact-center-trials" in slugs
    assert page["totalCount"] == len(slugs)


@pytest.mark.parametrize("first", [1, 3, 7])
async def test_paging_without_search_walks_every_resource_exactly_once(
    catalogue_api: Api, first: int
) -> None:
    # when
    slugs = await walk(catalogue_api, first=first)

    # then
    assert slugs == popularity_order(list(catalogue()))


@pytest.mark.parametrize("first", [1, 2, 5])
async def test_paging_a_search_walks_every_match_exactly_once_in_rank_order(
    catalogue_api: Api, first: int
) -> None:
    # given
    everything = await resources(catalogue_api, search="customer", first=100)
    assert everything["totalCount"] > 5

    # when
    slugs = await walk(catalogue_api, first=first, search="customer")

    # then
    assert slugs == [n["slug"] for n in everything["nodes"]]
    assert len(set(slugs)) == len(slugs) == everything["totalCount"]


async def test_paging_walks_resources_with_equal_popularity_and_equal_rank(api: Api) -> None:
    # given: ties everywhere, so the id (and title) decide
    factory = Factory(api.engine)
    partner = await factory.partner()
    await factory.admin(partner, FULL, "FULL_ADMIN")
    await insert_resources(
        api,
        *[
            resource(f"same-{i:02d}", "Same title", body="identical words here", pop=5)
            for i in range(7)
        ],
    )

    # when
    by_popularity = await walk(api, first=2)
    by_rank = await walk(api, first=3, search="identical words")

    # then
    expected = [f"same-{i:02d}" for i in range(7)]
    assert by_popularity == expected
    assert by_rank == expected


async def test_a_cursor_of_another_search_is_refused(catalogue_api: Api) -> None:
    # given
    page = await resources(catalogue_api, search="customer", first=1)
    cursor = page["pageInfo"]["endCursor"]

    # when
    other = await post_graphql(
        catalogue_api, RESOURCES, {"search": "calling", "first": 1, "after": cursor}, as_=FULL
    )
    unsearched = await post_graphql(
        catalogue_api, RESOURCES, {"first": 1, "after": cursor}, as_=FULL
    )
    tampered = await post_graphql(
        catalogue_api, RESOURCES, {"search": "customer", "first": 1, "after": cursor[:-2]}, as_=FULL
    )

    # then
    assert error_codes(other) == ["INVALID_CURSOR"]
    assert error_codes(unsearched) == ["INVALID_CURSOR"]
    assert error_codes(tampered) == ["INVALID_CURSOR"]


async def test_quick_links_and_featured_resources_are_the_flagged_ones(
    catalogue_api: Api,
) -> None:
    # when
    data = data_of(await post_graphql(catalogue_api, LISTS, as_=FULL))

    # then
    quick = [e for e in catalogue() if e["quick_link"]]
    featured = [e for e in catalogue() if e["featured"]]
    assert quick and featured
    assert [r["slug"] for r in data["quickLinks"]] == popularity_order(quick)
    assert [r["slug"] for r in data["featuredResources"]] == popularity_order(featured)
    assert all(r["quickLink"] for r in data["quickLinks"])
    assert all(r["featured"] for r in data["featuredResources"])
    assert all(r["url"].startswith("https://") for r in data["quickLinks"])


async def test_the_lists_hold_the_most_popular_up_to_the_page_size(catalogue_api: Api) -> None:
    # given: an instance whose pages hold at most three
    async with api_over(catalogue_api.db, max_page_size=3) as small:
        # when
        data = data_of(await post_graphql(small, LISTS, as_=FULL))

    # then: the first three of each list, in order (the limit is the statement's)
    quick = [e for e in catalogue() if e["quick_link"]]
    featured = [e for e in catalogue() if e["featured"]]
    assert len(quick) > 3 and len(featured) > 3
    assert [r["slug"] for r in data["quickLinks"]] == popularity_order(quick)[:3]
    assert [r["slug"] for r in data["featuredResources"]] == popularity_order(featured)[:3]


@pytest.mark.parametrize("email", ["sales@acme.example", "readonly@acme.example"])
async def test_every_admin_reads_resources(catalogue_api: Api, email: str) -> None:
    # when
    data = data_of(await post_graphql(catalogue_api, LISTS, as_=email))
    page = await resources(catalogue_api, search="calling", as_=email)

    # then
    assert data["quickLinks"] and data["featuredResources"]
    assert page["totalCount"] > 0


async def test_resources_need_authentication(catalogue_api: Api) -> None:
    # when
    response = await catalogue_api.client.post("/graphql", json={"query": LISTS})

    # then
    assert response.status_code == 401


async def test_a_search_longer_than_200_characters_is_refused(catalogue_api: Api) -> None:
    # when
    too_long = await post_graphql(
        catalogue_api, RESOURCES, {"search": "a" * 201, "first": 10}, as_=FULL
    )
    longest = await post_graphql(
        catalogue_api, RESOURCES, {"search": "calling " * 25, "first": 10}, as_=FULL
    )

    # then
    assert error_codes(too_long) == ["SEARCH_TOO_LONG"]
    assert too_long["data"] is None
    assert len("calling " * 25) == 200
    assert data_of(longest)["resources"]["totalCount"] > 0


@pytest.mark.parametrize("first", [0, 101])
async def test_page_size_is_limited(catalogue_api: Api, first: int) -> None:
    # when
    body = await post_graphql(catalogue_api, RESOURCES, {"first": first}, as_=FULL)

    # then
    assert error_codes(body) == ["INVALID_PAGE_SIZE"]


async def test_the_search_index_follows_inserts_updates_and_deletes(catalogue_api: Api) -> None:
    # given
    assert (await resources(catalogue_api, search="quokka"))["totalCount"] == 0

    # when: a resource is renamed, then another is deleted
    async with catalogue_api.engine.begin() as conn:
        await conn.execute(
            update(Resource)
            .where(Resource.slug == "audit-log")  # type: ignore[arg-type]
            .values(title="Review the quokka log")
        )
    renamed = await resources(catalogue_api, search="quokka")
    old_title_gone = await resources(catalogue_api, search="review audit log")
    async with catalogue_api.engine.begin() as conn:
        await conn.execute(delete(Resource).where(Resource.slug == "audit-log"))  # type: ignore[arg-type]
        remaining = (await conn.execute(select(func.count()).select_from(Resource))).scalar_one()
    deleted = await resources(catalogue_api, search="quokka")

    # then
    assert [n["slug"] for n in renamed["nodes"]] == ["audit-log"]
    assert "audit-log" not in [n["slug"] for n in old_title_gone["nodes"]]
    assert deleted["totalCount"] == 0
    assert (await resources(catalogue_api, first=1))["totalCount"] == remaining


# --- helpers ------------------------------------------------------------------------------------


def resource(slug: str, title: str, *, body: str, pop: int) -> dict[str, Any]:
    return {
        "slug": slug,
        "title": title,
        "summary": "A resource for tests.",
        "body": body,
        "url": f"https://help.example/{slug}",
        "type": "ARTICLE",
        "products": "CALLING",
        "audiences": "FULL_ADMIN",
        "quick_link": False,
        "featured": False,
        "popularity": pop,
        "updated_at": NOW,
    }


async def insert_resources(api: Api, *rows: dict[str, Any]) -> None:
    async with api.engine.begin() as conn:
        for row in rows:  # one by one, so ids follow the given order
            await conn.execute(Resource.__table__.insert().values(**row))  # type: ignore[attr-defined]
