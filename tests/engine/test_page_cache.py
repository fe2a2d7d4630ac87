"""Pages read and extracted are kept in the store (both backends) with a time to live and a
bound, and a retriever with the store reuses them instead of fetching again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apex_mcp.apex.models import SearchFilters, WebRetrievalRequest
from apex_mcp.engine.retrieval import WebRetriever, normalize_url
from apex_mcp.engine.store import Store
from tests.fakes.web import FakeSearch, FakeWeb, Page, article_pages, hit, serve_web

pytestmark = pytest.mark.anyio

HOUR = 3600.0


async def test_a_page_is_kept_replaced_and_forgotten_after_its_ttl(
    store: Store, backend: Any
) -> None:
    assert await store.get_page("https://a.example/x", HOUR) is None
    await store.put_page(
        "https://a.example/x", "https://a.example/y", "Title\ntext", max_age=HOUR, keep=10
    )
    kept = await store.get_page("https://a.example/x", HOUR)
    assert kept is not None and (kept.final_url, kept.content) == (
        "https://a.example/y",
        "Title\ntext",
    )
    await store.put_page(
        "https://a.example/x", "https://a.example/x", "Title\nnew", max_age=HOUR, keep=10
    )
    kept = await store.get_page("https://a.example/x", HOUR)
    assert kept is not None and kept.content == "Title\nnew"
    backend.query("UPDATE pages SET fetched_at = '2020-01-01T00:00:00.000000Z'")
    assert await store.get_page("https://a.example/x", HOUR) is None  # older than its TTL
    await store.put_page("https://a.example/z", "https://a.example/z", "z", max_age=HOUR, keep=10)
    assert [r[0] for r in backend.query("SELECT url FROM pages")] == ["https://a.example/z"]


async def test_the_cache_keeps_only_the_newest_pages(store: Store, backend: Any) -> None:
    for n in range(5):
        await store.put_page(
            f"https://a.example/{n}", f"https://a.example/{n}", "t", max_age=HOUR, keep=3
        )
    urls = sorted(r[0] for r in backend.query("SELECT url FROM pages"))
    assert urls == ["https://a.example/2", "https://a.example/3", "https://a.example/4"]


@pytest.fixture(scope="module")
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb(article_pages() | {"/old": Page.redirect("/bees")})
    with serve_web(fake):
        yield fake


async def retrieve(r: WebRetriever, **filters: Any) -> list[str]:
    response = await r.retrieve(
        WebRetrievalRequest(search_query="bees", n_miners=1, n_results=1),
        filters=SearchFilters.of(**filters),
    )
    return [result.content for result in response.results]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_retriever_reuses_the_pages_it_read(web: FakeWeb, store: Store) -> None:
    search = FakeSearch(hits=[hit(web.url(""), "/old")])
    before = web.hits_for("/bees")
    async with WebRetriever([search], allow_private_addresses=True, cache=store) as r:
        first = await retrieve(r)
        again = await retrieve(r)
        assert first == again and first[0].startswith("How honeybees")
        assert web.hits_for("/bees") == before + 1  # read once, then from the store
    # A page kept from a redirect out of the domains asked for is read again, not reused.
    tides = web.url("/tides")
    await store.put_page(
        normalize_url(tides),
        "https://elsewhere.example/",
        "Kept\n" + "x" * 300,
        max_age=3600,
        keep=9,
    )
    async with WebRetriever(
        [FakeSearch(hits=[hit(web.url(""), "/tides")])], allow_private_addresses=True, cache=store
    ) as r:
        [content] = await retrieve(r, include_domains=["127.0.0.1"])
    assert not content.startswith("Kept")
    async with WebRetriever(
        [search], allow_private_addresses=True, cache=store, cache_seconds=0
    ) as r:
        await retrieve(r)
    assert web.hits_for("/bees") == before + 2  # no cache: read again


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_page_read_is_given_back_by_the_address_asked_and_the_one_read(
    web: FakeWeb, store: Store
) -> None:
    search = FakeSearch(hits=[hit(web.url(""), "/old")])  # it redirects to /bees
    async with WebRetriever([search], allow_private_addresses=True, cache=store) as r:
        [content] = await retrieve(r)
        assert await r.kept_page(web.url("/bees")) == content  # the source's own address
        assert await r.kept_page(web.url("/old")) == content
        assert await r.kept_page(web.url("/tides")) is None  # never read
    async with WebRetriever([search], allow_private_addresses=True) as uncached:
        assert await uncached.kept_page(web.url("/bees")) is None
