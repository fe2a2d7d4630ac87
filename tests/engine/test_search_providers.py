"""The keyed search APIs (Brave, Tavily, Exa) against fakes on 127.0.0.1 that speak their
documented shapes, and providers tried in order with fallback, each at its own pace."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import pytest
from pydantic import SecretStr

from apex_mcp.apex.errors import ApexError
from apex_mcp.apex.models import SearchFilters, WebRetrievalRequest
from apex_mcp.config import SEARCH_PROVIDERS, Settings
from apex_mcp.engine.retrieval import WebRetriever
from apex_mcp.engine.search import (
    PROVIDERS,
    BraveSearch,
    DuckDuckGoSearch,
    ExaSearch,
    FallbackSearch,
    SearchError,
    SearxngSearch,
    TavilySearch,
    build_providers,
)
from tests.fakes.web import FakeSearch, FakeSearchApi, FakeWeb, article_pages, hit, serve_web
from tests.servers import serve_asgi

pytestmark = pytest.mark.anyio

KEY = "sk-live-abcdef0123456789"
KINDS = {"brave": BraveSearch, "tavily": TavilySearch, "exa": ExaSearch}


@pytest.fixture(scope="module")
def web() -> Iterator[FakeWeb]:
    fake = FakeWeb(article_pages())
    with serve_web(fake):
        yield fake


def api(web: FakeWeb, kind: str, **fields: object) -> FakeSearchApi:
    hits = [hit(web.url(""), "/bees", "Bees"), hit(web.url(""), "/tides", "Tides")]
    return FakeSearchApi(kind, KEY, hits=hits, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_each_api_is_asked_as_documented(web: FakeWeb, kind: str) -> None:
    fake = api(web, kind)
    with serve_asgi(fake) as base:
        [provider] = build_providers(
            kind, None, api_keys={kind: SecretStr(KEY)}, base_urls={kind: base}
        )
        assert isinstance(provider, KINDS[kind])
        filters = SearchFilters.of(["*.bees.example", "hive.example"], ["wasps.example"], "week")
        found = await provider.search("honeybees", 5, filters=filters)  # type: ignore[call-arg]
        await provider.aclose()  # type: ignore[attr-defined]
    assert [h.url for h in found] == [web.url("/bees"), web.url("/tides")]
    assert found[0].title == "Bees"
    [asked] = fake.requests
    headers, params, body = asked["headers"], asked["params"], asked["json"]
    if kind == "brave":
        assert headers["x-subscription-token"] == KEY and headers["accept"] == "application/json"
        # Brave reads the search operators: the domains go into the query.
        assert params == {
            "q": ["honeybees site:bees.example OR site:hive.example -site:wasps.example"],
            "count": ["5"],
            "freshness": ["pw"],
        }
    elif kind == "tavily":
        assert headers["authorization"] == f"Bearer {KEY}"
        assert body == {
            "query": "honeybees",
            "max_results": 5,
            "time_range": "week",
            "include_domains": ["bees.example", "hive.example"],
            "exclude_domains": ["wasps.example"],
        }
    else:
        assert headers["x-api-key"] == KEY
        assert body["query"] == "honeybees" and body["numResults"] == 5
        assert body["includeDomains"] == ["bees.example", "hive.example"]
        assert body["excludeDomains"] == ["wasps.example"]
        assert body["startPublishedDate"].endswith("Z")  # ISO 8601, a week ago
    assert KEY not in str(params) and KEY not in str(body)  # the key is in a header only


async def test_a_keyed_api_drives_a_retrieval(web: FakeWeb) -> None:
    fake = api(web, "tavily")
    with serve_asgi(fake) as base:
        providers = build_providers(
            "tavily", None, api_keys={"tavily": KEY}, base_urls={"tavily": base}
        )
        async with WebRetriever(providers, allow_private_addresses=True) as retriever:
            response = await retriever.retrieve(
                WebRetrievalRequest(search_query="bees", n_miners=1, n_results=2)
            )
    assert {r.url for r in response.results} == {web.url("/bees"), web.url("/tides")}


async def test_a_refused_key_is_said_and_never_shown() -> None:
    fake = FakeSearchApi("brave", "the-right-key")
    with serve_asgi(fake) as base:
        provider = BraveSearch(KEY, base_url=base)
        async with WebRetriever([provider], allow_private_addresses=True) as retriever:
            with pytest.raises(ApexError) as caught:
                await retriever.retrieve(WebRetrievalRequest(search_query="bees", n_miners=1))
    said = f"{caught.value} {caught.value.hint} {provider!r} {provider.label} {retriever!r}"
    assert "the API key was refused (HTTP 401)" in said
    assert KEY not in said


async def test_a_429_falls_back_to_the_next_provider_and_retry_after_is_honoured(
    web: FakeWeb,
) -> None:
    brave = api(web, "brave", statuses=[429], retry_after="1")
    tavily = api(web, "tavily")
    with serve_asgi(brave) as brave_url, serve_asgi(tavily) as tavily_url:
        [chain] = build_providers(
            "brave,tavily",
            None,
            api_keys={"brave": KEY, "tavily": KEY},
            base_urls={"brave": brave_url, "tavily": tavily_url},
            requests_per_second=100,
        )
        assert isinstance(chain, FallbackSearch)
        assert [h.url for h in await chain.search("bees", 5)] == [
            web.url("/bees"),
            web.url("/tides"),
        ]
        # Brave paused itself for its Retry-After: Tavily answers at once, Brave is not asked.
        await chain.search("bees", 5)
        assert (len(brave.times), len(tavily.times)) == (1, 2)
        await anyio.sleep(1.05 - (time.monotonic() - brave.times[0]))
        await chain.search("bees", 5)  # the pause is over: Brave first again
        await chain.aclose()
    assert (len(brave.times), len(tavily.times)) == (2, 2)
    assert brave.times[1] - brave.times[0] >= 1.0


async def test_when_every_provider_fails_each_cause_is_named() -> None:
    chain = FallbackSearch(
        [
            FakeSearch(name="one", error=SearchError("HTTP 500")),
            FakeSearch(name="two", error=SearchError("HTTP 502")),
        ]
    )
    with pytest.raises(SearchError, match=r"^one: HTTP 500; two: HTTP 502$"):
        await chain.search("bees", 5)
    assert chain.label == "one, then two"


async def test_a_free_tiers_one_request_a_second_is_never_exceeded(web: FakeWeb) -> None:
    fake = api(web, "exa")
    with serve_asgi(fake) as base:
        provider = ExaSearch(KEY, base_url=base)  # the keyed default: one a second
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(provider.search, "bees", 3)
        await provider.aclose()
    assert fake.times[1] - fake.times[0] >= 0.95, fake.times


def test_the_order_and_the_keys_come_from_the_settings() -> None:
    assert PROVIDERS == SEARCH_PROVIDERS
    settings = Settings(search_provider=" Brave, ddg ", brave_api_key=KEY)  # type: ignore[call-arg]
    assert settings.search_provider == "brave,duckduckgo"
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    from apex_mcp.serving import engine_config

    config = engine_config(settings)
    assert KEY not in repr(config)
    [chain] = build_providers(config.search_provider, None, api_keys=config.search_api_keys)
    assert isinstance(chain, FallbackSearch)
    assert [type(p) for p in chain.providers] == [BraveSearch, DuckDuckGoSearch]
    with pytest.raises(ValueError, match="unknown search provider 'bing'"):
        Settings(search_provider="brave,bing")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="needs an API key"):
        build_providers("exa", None)
    with pytest.raises(ValueError, match="named twice"):
        build_providers("exa,exa", None, api_keys={"exa": KEY})


def test_a_password_in_a_search_url_never_shows() -> None:
    """In an error, a label or a repr, a provider's URL shows without its password."""
    with pytest.raises(ValueError) as refused:
        SearxngSearch("htp://me:hunter2@search.example")
    assert "hunter2" not in str(refused.value) and "search.example" in str(refused.value)
    searxng = SearxngSearch("https://me:hunter2@search.example")
    brave = BraveSearch(KEY, base_url="https://me:hunter2@proxy.example")
    for shown in (searxng.label, repr(searxng), brave.label, repr(brave)):
        assert "hunter2" not in shown and KEY not in shown, shown
