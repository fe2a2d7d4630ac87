"""WebRetriever against real HTML pages and a real SearXNG endpoint served on 127.0.0.1."""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.models import SearchFilters, WebRetrievalRequest, WebRetrievalResponse
from apex_mcp.engine.ranking import best_passage, split_passages
from apex_mcp.engine.retrieval import WebRetriever, normalize_url
from apex_mcp.engine.search import (
    DuckDuckGoSearch,
    SearchError,
    SearchHit,
    SearchProvider,
    SearxngSearch,
    build_providers,
    failure_cause,
    retry_after,
)
from apex_mcp.netguard import is_public as _is_public
from tests.fakes.web import (
    BEES,
    BOILERPLATE,
    ERROR_PAGE,
    JS_SHELL,
    SOURDOUGH,
    TIDES,
    VOLCANOES,
    FakeSearch,
    FakeSearxng,
    FakeWeb,
    Page,
    article_html,
    article_pages,
    hit,
    serve_searxng,
    serve_web,
)
from tests.servers import free_port, run_process

pytestmark = pytest.mark.anyio

BEES_QUESTION = "How do honeybees tell other bees the direction and distance of food?"
MAX_PAGE_BYTES = 50_000
BIG_PAGE = article_html(SOURDOUGH, padding=3000)  # about 370 KB


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    pages = article_pages() | {
        "/gone": Page(ERROR_PAGE, status=404),
        "/broken": Page(ERROR_PAGE, status=500),
        "/doc.pdf": Page(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n", "application/pdf"),
        "/pic.png": Page(b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png"),
        "/big": Page(BIG_PAGE),
        "/big-chunked": Page(BIG_PAGE, chunked=True),
        "/shell": Page(JS_SHELL),
        "/old": Page.redirect("/bees"),
        "/older": Page.redirect("/old", status=302),
        "/loop1": Page.redirect("/loop2"),
        "/loop2": Page.redirect("/loop1"),
        "/to-file": Page.redirect("file:///etc/passwd"),
        "/slow": Page.article(VOLCANOES, delay=60),
    }
    fake = FakeWeb(pages)
    with serve_web(fake):
        yield fake


def url(web: FakeWeb, path: str) -> str:
    return path if "://" in path else web.url(path)


def search_for(web: FakeWeb, *paths: str, **settings: Any) -> FakeSearch:
    return FakeSearch(hits=[SearchHit(url=url(web, p)) for p in paths], **settings)


IN_SEARCH_ORDER = {"ranking": "provider"}  # for the tests of what search order decides


def retriever(*providers: SearchProvider, **settings: Any) -> WebRetriever:
    settings.setdefault("allow_private_addresses", True)  # the fakes live on 127.0.0.1
    settings.setdefault("max_page_bytes", MAX_PAGE_BYTES)
    return WebRetriever(providers, **settings)


async def retrieve(
    providers: list[SearchProvider] | SearchProvider, query: str = "bees", **fields: Any
) -> WebRetrievalResponse:
    settings = fields.pop("settings", {})
    fields.setdefault("n_miners", 1)
    chosen = providers if isinstance(providers, list) else [providers]
    async with retriever(*chosen, **settings) as r:
        return await r.retrieve(WebRetrievalRequest(search_query=query, **fields))


def urls(response: WebRetrievalResponse) -> list[str]:
    return [result.url for result in response.results]


# --- extraction and the passage ---------------------------------------------------------------


async def test_content_is_the_title_then_the_article_without_the_clutter(web: FakeWeb) -> None:
    response = await retrieve(search_for(web, "/bees"))

    [result] = response.results
    assert result.url == url(web, "/bees")
    lines = result.content.split("\n")
    assert lines[0] == BEES.title
    for paragraph in BEES.paragraphs:
        assert paragraph in lines
    for clutter in BOILERPLATE:
        assert clutter not in result.content


async def test_relevant_is_the_passage_that_answers_the_query(web: FakeWeb) -> None:
    response = await retrieve(search_for(web, "/bees"), BEES_QUESTION)

    relevant = response.results[0].relevant
    assert BEES.paragraphs[1] in relevant  # the waggle dance: direction and distance
    assert relevant.startswith("The waggle dance\n")  # with its heading
    others = [p for i, p in enumerate(BEES.paragraphs) if i != 1]
    assert not any(p in relevant for p in others)
    assert len(relevant) <= 500


async def test_each_page_gets_its_own_relevant_passage(web: FakeWeb) -> None:
    response = await retrieve(
        search_for(web, "/tides", "/bees"),
        "what causes the tides, the moon's gravity?",
        n_results=2,
    )

    tides, bees = response.results
    assert tides.relevant.startswith(TIDES.paragraphs[1][:60])
    assert bees.relevant in split_passages(bees.content, 500)  # no word of the query in it


# --- pages that cannot be used ----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "/gone",  # 404
        "/broken",  # 500
        "/doc.pdf",
        "/pic.png",
        "/big",  # over the cap, says so in content-length
        "/big-chunked",  # over the cap, found out while reading
        "/shell",  # no main text
        "/loop1",  # too many redirects
        "/to-file",  # a redirect out of http(s)
        "/nowhere",  # the fake's own 404 page
        "ftp://127.0.0.1/file.txt",
        "file:///etc/passwd",
        "javascript:alert(1)",
    ],
)
async def test_a_page_that_cannot_be_used_is_dropped(web: FakeWeb, bad: str) -> None:
    response = await retrieve(search_for(web, bad, "/tides"), n_results=2)

    assert urls(response) == [url(web, "/tides")]
    assert all(r.content and r.relevant for r in response.results)


async def test_an_unreachable_page_is_dropped(web: FakeWeb) -> None:
    closed = f"http://127.0.0.1:{free_port()}/page"
    response = await retrieve(search_for(web, closed, "/tides"), n_results=2)
    assert urls(response) == [url(web, "/tides")]


async def test_failures_are_replaced_by_the_next_candidates(web: FakeWeb) -> None:
    # n_results 1 reads 4 pages at a time; these 5 failures all come before the good page.
    bad = ["/gone", "/doc.pdf", "/big", "/shell", "/loop1"]
    response = await retrieve(
        search_for(web, *bad, "/tides", "/bees"), n_results=1, settings=IN_SEARCH_ORDER
    )
    assert urls(response) == [url(web, "/tides")]


async def test_no_readable_page_is_an_empty_answer(web: FakeWeb) -> None:
    response = await retrieve(search_for(web, "/gone", "/doc.pdf"), n_results=3)
    assert response.results == []


async def test_no_search_hit_is_an_empty_answer(web: FakeWeb) -> None:
    response = await retrieve(FakeSearch(hits=[]))
    assert response.results == []


async def test_the_size_cap_is_a_setting(web: FakeWeb) -> None:
    response = await retrieve(
        search_for(web, "/big-chunked"), settings={"max_page_bytes": 1_000_000}
    )
    assert response.results[0].content.startswith(SOURDOUGH.title)


# --- redirects --------------------------------------------------------------------------------


async def test_redirects_are_followed_and_the_final_url_reported(web: FakeWeb) -> None:
    response = await retrieve(search_for(web, "/older"))
    assert urls(response) == [url(web, "/bees")]


async def test_redirects_beyond_the_limit_are_dropped(web: FakeWeb) -> None:
    response = await retrieve(search_for(web, "/older"), settings={"max_redirects": 1})
    assert response.results == []


async def test_search_urls_that_lead_to_one_page_give_one_result(web: FakeWeb) -> None:
    response = await retrieve(search_for(web, "/old", "/bees", "/tides"), n_results=3)
    assert urls(response) == [url(web, "/bees"), url(web, "/tides")]


# --- search: fan-out, merging, n_results ------------------------------------------------------


async def test_n_results_caps_the_results_in_search_rank_order(web: FakeWeb) -> None:
    paths = ["/volcanoes", "/bees", "/tides", "/sourdough", "/lighthouses"]
    response = await retrieve(search_for(web, *paths), n_results=3, settings=IN_SEARCH_ORDER)
    assert urls(response) == [url(web, p) for p in paths[:3]]


async def test_duplicate_urls_are_merged(web: FakeWeb) -> None:
    base = url(web, "")
    first = FakeSearch(hits=[SearchHit(url=f"{base}/bees"), SearchHit(url=f"{base}/tides")])
    second = FakeSearch(
        hits=[
            SearchHit(url=f"{base}/bees/"),
            SearchHit(url=f"{base}/bees?utm_source=news&utm_medium=email"),
            SearchHit(url=f"{base}/bees#the-waggle-dance"),
            SearchHit(url=f"HTTP{base.removeprefix('http')}/tides/"),
        ]
    )
    response = await retrieve([first, second], n_miners=2, n_results=5)

    assert urls(response) == [f"{base}/bees", f"{base}/tides"]
    assert web.hits_for("/bees") == 1
    assert web.hits_for("/tides") == 1


async def test_hits_are_merged_rank_by_rank(web: FakeWeb) -> None:
    first = search_for(web, "/bees", "/tides")
    second = search_for(web, "/sourdough", "/lighthouses")
    response = await retrieve([first, second], n_miners=2, n_results=4, settings=IN_SEARCH_ORDER)
    assert urls(response) == [
        url(web, p) for p in ("/bees", "/sourdough", "/tides", "/lighthouses")
    ]


async def test_n_miners_fans_out_to_different_queries(web: FakeWeb) -> None:
    search = search_for(web, "/bees")
    await retrieve(search, "honeybee dance", n_miners=5)

    assert len(search.queries) == 5
    assert len(set(search.queries)) == 5
    assert search.queries[0] == "honeybee dance"
    assert search.queries[1] == '"honeybee dance"'
    assert all("honeybee dance" in q for q in search.queries)


async def test_n_miners_goes_round_robin_over_the_providers(web: FakeWeb) -> None:
    first, second = search_for(web, "/bees"), search_for(web, "/tides")
    await retrieve([first, second], "why tides?", n_miners=3)

    assert first.queries == ["why tides?", '"why tides?"']
    assert second.queries == ["why tides?"]


async def test_defaults_are_those_of_the_apex_docs(web: FakeWeb) -> None:
    search = search_for(web, "/bees", "/tides", "/sourdough")
    async with retriever(search) as r:
        response = await r.retrieve(WebRetrievalRequest(search_query="bees"))

    assert len(search.queries) == 3  # n_miners 3
    assert search.limits == [10, 10, 10]  # a page of hits each, as many as 2 * n_results + 2
    assert urls(response) == [url(web, "/bees")]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"search_query": "  "}, "search_query is empty"),
        ({"n_miners": 0}, "n_miners is 0: it must be between 1 and 10"),
        ({"n_miners": 11}, "between 1 and 10"),
        ({"n_results": 0}, "n_results is 0: it must be between 1 and 20"),
        ({"n_results": 21}, "between 1 and 20"),
        ({"max_response_time": 0}, "between 1 and 120 seconds"),
        ({"max_response_time": 121}, "between 1 and 120 seconds"),
    ],
)
async def test_invalid_requests_are_refused(fields: dict[str, Any], says: str) -> None:
    search = FakeSearch()
    request = WebRetrievalRequest.model_validate({"search_query": "bees"} | fields)
    async with retriever(search) as r:
        with pytest.raises(ApexError) as caught:
            await r.retrieve(request)
    assert caught.value.code == Code.INVALID_ARGUMENT
    assert says in caught.value.message
    assert search.queries == []


# --- search failures --------------------------------------------------------------------------


async def test_every_provider_failing_is_unavailable() -> None:
    down = FakeSearch(name="one", error=SearchError("HTTP 503 from the engine"))
    broken = FakeSearch(name="two", error=ConnectionError("connection reset"))
    with pytest.raises(ApexError) as caught:
        await retrieve([down, broken], n_miners=3)

    error = caught.value
    assert error.code == Code.UNAVAILABLE
    assert error.message == (  # each provider once, each cause once
        "no search provider could answer: one (HTTP 503 from the engine); "
        "two (ConnectionError: connection reset)"
    )
    assert error.hint is not None and "search provider" in error.hint


async def test_one_provider_failing_leaves_the_others(web: FakeWeb) -> None:
    down = FakeSearch(name="down", error=SearchError("rate limited"))
    response = await retrieve([down, search_for(web, "/bees")], n_miners=2)
    assert urls(response) == [url(web, "/bees")]


# --- time -------------------------------------------------------------------------------------


async def test_the_call_returns_within_max_response_time_with_what_it_has(web: FakeWeb) -> None:
    started = time.monotonic()
    response = await retrieve(search_for(web, "/slow", "/bees"), n_results=2, max_response_time=2)
    elapsed = time.monotonic() - started

    assert urls(response) == [url(web, "/bees")]
    assert 1.5 < elapsed < 3.0  # it waited for the slow page, and not past its time


async def test_pages_still_loading_are_abandoned_once_the_answer_is_known(web: FakeWeb) -> None:
    started = time.monotonic()
    response = await retrieve(search_for(web, "/bees", "/slow"), n_results=1, max_response_time=20)

    assert urls(response) == [url(web, "/bees")]
    assert time.monotonic() - started < 10


async def test_a_search_that_never_answers_is_unavailable_in_time() -> None:
    started = time.monotonic()
    with pytest.raises(ApexError) as caught:
        await retrieve(FakeSearch(name="stuck", delay=600), max_response_time=2)

    assert time.monotonic() - started < 3.0
    assert caught.value.code == Code.UNAVAILABLE
    assert caught.value.message == (
        "the search provider stuck could not be reached: timed out (no answer within 1 s)"
    )


async def test_a_slow_provider_does_not_hold_back_the_others(web: FakeWeb) -> None:
    started = time.monotonic()
    stuck = FakeSearch(name="stuck", delay=600)
    response = await retrieve([search_for(web, "/bees"), stuck], n_miners=2, max_response_time=60)

    assert urls(response) == [url(web, "/bees")]
    assert time.monotonic() - started < 10  # not the 30 s the search could have had


async def test_timings_are_reported(web: FakeWeb) -> None:
    timings: dict[str, float] = {}
    async with retriever(search_for(web, "/bees", "/tides")) as r:
        await r.retrieve(WebRetrievalRequest(search_query="bees", n_results=2), timings=timings)

    assert set(timings) == {"search", "fetch", "extract", "rank", "total"}
    assert all(value >= 0 for value in timings.values())
    assert timings["extract"] > 0
    assert timings["total"] >= timings["search"] + timings["fetch"] - 0.01


# --- manners and safety -----------------------------------------------------------------------


async def test_the_user_agent_says_who_is_asking(web: FakeWeb) -> None:
    await retrieve(search_for(web, "/bees"), settings={"user_agent": "apex-mcp/test (+info)"})
    assert web.requests[0].headers["user-agent"] == "apex-mcp/test (+info)"


async def test_the_default_user_agent_is_apex_mcp(web: FakeWeb) -> None:
    await retrieve(search_for(web, "/bees"))
    assert web.requests[0].headers["user-agent"].startswith("apex-mcp/")


async def test_private_addresses_are_refused_by_default(web: FakeWeb) -> None:
    port = url(web, "").rsplit(":", 1)[1]
    search = FakeSearch(
        hits=[
            SearchHit(url=f"http://127.0.0.1:{port}/bees"),
            SearchHit(url=f"http://localhost:{port}/tides"),
            SearchHit(url=f"http://[::ffff:127.0.0.1]:{port}/sourdough"),
            SearchHit(url=f"http://[::1]:{port}/lighthouses"),
        ]
    )
    async with WebRetriever([search]) as r:
        response = await r.retrieve(WebRetrievalRequest(search_query="bees", n_results=4))

    assert response.results == []
    assert web.requests == []  # refused before any connection


# Checked without a connection: tests send nothing beyond loopback.
@pytest.mark.parametrize(
    "address",
    [
        *("10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"),
        *("224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::"),
    ],
)
def test_private_and_special_addresses_are_not_public(address: str) -> None:
    assert not _is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_public(address: str) -> None:
    assert _is_public(ipaddress.ip_address(address))


# --- SearXNG over HTTP ------------------------------------------------------------------------


async def test_searxng_search_reads_the_json_api(web: FakeWeb) -> None:
    fake = FakeSearxng(
        hits=[SearchHit(url=url(web, f"/{p}"), title=p, snippet=f"about {p}") for p in "abc"]
    )
    with serve_searxng(fake) as base:
        search = SearxngSearch(f"{base}/")
        try:
            hits = await search.search("honey bees", 2)
        finally:
            await search.aclose()

    assert hits == [
        SearchHit(url=url(web, "/a"), title="a", snippet="about a"),
        SearchHit(url=url(web, "/b"), title="b", snippet="about b"),
    ]
    assert fake.queries == [{"q": ["honey bees"], "format": ["json"]}]
    assert fake.user_agents[0].startswith("apex-mcp/")


async def test_searxng_drives_a_retrieval(web: FakeWeb) -> None:
    fake = FakeSearxng(hits=[SearchHit(url=url(web, "/bees")), SearchHit(url=url(web, "/tides"))])
    with serve_searxng(fake) as base:
        [search] = build_providers("searxng", base)
        response = await retrieve(search, BEES_QUESTION, n_miners=2, n_results=2)

    assert urls(response) == [url(web, "/bees"), url(web, "/tides")]
    assert [q["q"][0] for q in fake.queries] == [BEES_QUESTION, f'"{BEES_QUESTION}"']


async def test_searxng_without_json_says_what_to_enable() -> None:
    with serve_searxng(FakeSearxng(status=403)) as base, pytest.raises(ApexError) as caught:
        await retrieve(SearxngSearch(base))
    assert caught.value.code == Code.UNAVAILABLE
    assert caught.value.message == (
        f"the search provider searxng at {base} failed: HTTP 403 (does the instance allow "
        "format=json? see search.formats)"
    )


async def test_an_unreachable_searxng_is_unavailable() -> None:
    port = free_port()
    with pytest.raises(ApexError) as caught:
        # A user:password in the URL is never shown.
        await retrieve(SearxngSearch(f"http://me:pw-secret@127.0.0.1:{port}/"), n_miners=3)
    assert caught.value.code == Code.UNAVAILABLE
    assert caught.value.explain() == (
        f"the search provider searxng at http://127.0.0.1:{port} could not be reached: "
        "connection refused (check that the SearXNG instance is running and that "
        "APEX_SEARXNG_URL points at it)"
    )


# --- DuckDuckGo, without the network ----------------------------------------------------------


def test_importing_the_module_loads_neither_ddgs_nor_trafilatura() -> None:
    code = textwrap.dedent(
        """
        import sys
        from apex_mcp.engine.retrieval import WebRetriever
        from apex_mcp.engine.search import DuckDuckGoSearch, build_providers
        WebRetriever(build_providers("duckduckgo", None))
        DuckDuckGoSearch(backend="duckduckgo")
        heavy = [m for m in ("ddgs", "primp", "trafilatura", "lxml") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    done = run_process([sys.executable, "-c", code], what="the import check", timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == ""


@pytest.fixture
def fake_ddgs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A stand-in for the ``ddgs`` package: what it was asked, and what it answers."""
    state: dict[str, Any] = {"calls": [], "rows": [], "error": None}

    class DDGSException(Exception):
        pass

    class DDGS:
        def __init__(self, timeout: int | None = 5) -> None:
            state["timeout"] = timeout

        def text(self, query: str, **options: Any) -> list[dict[str, Any]]:
            state["calls"].append((query, options, threading.current_thread()))
            if state["error"] is not None:
                raise DDGSException(state["error"])
            return list(state["rows"])

    package = types.ModuleType("ddgs")
    package.DDGS = DDGS  # type: ignore[attr-defined]
    exceptions = types.ModuleType("ddgs.exceptions")
    exceptions.DDGSException = DDGSException  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ddgs", package)
    monkeypatch.setitem(sys.modules, "ddgs.exceptions", exceptions)
    return state


async def test_duckduckgo_search_maps_ddgs_results(fake_ddgs: dict[str, Any]) -> None:
    fake_ddgs["rows"] = [
        {"title": "Bees", "href": "https://example.org/bees", "body": "All about bees"},
        {"title": "No link", "href": "", "body": "dropped"},
    ]
    hits = await DuckDuckGoSearch(backend="duckduckgo", timeout=7).search("bees", 4)

    assert hits == [
        SearchHit(url="https://example.org/bees", title="Bees", snippet="All about bees")
    ]
    [(query, options, thread)] = fake_ddgs["calls"]
    assert query == "bees"
    assert options["max_results"] == 4
    assert options["backend"] == "duckduckgo"
    assert fake_ddgs["timeout"] == 7
    assert thread is not threading.main_thread()  # ddgs blocks: never on the event loop


async def test_duckduckgo_no_results_is_not_a_failure(fake_ddgs: dict[str, Any]) -> None:
    fake_ddgs["error"] = "No results found."
    assert await DuckDuckGoSearch().search("zzzz", 4) == []


async def test_duckduckgo_errors_are_search_errors(fake_ddgs: dict[str, Any]) -> None:
    fake_ddgs["error"] = "https://html.duckduckgo.com/html 202 Ratelimit"
    with pytest.raises(ApexError) as caught:
        await retrieve(DuckDuckGoSearch(), n_miners=1)
    assert caught.value.message == "the search provider duckduckgo failed: rate limited"

    fake_ddgs["error"] = "https://html.duckduckgo.com/html?q=bees answered: the engine is on fire"
    with pytest.raises(ApexError) as odd:
        await retrieve(DuckDuckGoSearch(), n_miners=1)
    assert odd.value.message == (
        "the search provider duckduckgo failed: DDGSException: html.duckduckgo.com answered: "
        "the engine is on fire"
    )


# What ddgs 9 (through primp) raises without a network: each query's own URL in it.
DDGS_DNS_ERROR = (
    "DNSError: DNSError('error sending request for url (https://search.example/?q={q}) > "
    "error resolving DNS > no connections available')"
)


async def test_duckduckgo_without_a_network_is_one_short_line(
    fake_ddgs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(query: str, **options: Any) -> list[dict[str, Any]]:
        raise sys.modules["ddgs.exceptions"].DDGSException(DDGS_DNS_ERROR.format(q=query))

    monkeypatch.setattr(sys.modules["ddgs"].DDGS, "text", lambda self, q, **o: fail(q, **o))
    with pytest.raises(ApexError) as caught:
        await retrieve(DuckDuckGoSearch(), "what do bees eat", n_miners=3)
    assert f"{caught.value.code}: {caught.value.explain()}" == (
        "unavailable: the search provider duckduckgo could not be reached: name resolution "
        "failed (check the network, or set APEX_SEARCH_PROVIDER=searxng with APEX_SEARXNG_URL)"
    )


async def test_the_real_ddgs_behind_a_closed_proxy_is_one_short_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ddgs sends every request through DDGS_PROXY: a closed port on 127.0.0.1 refuses them,
    # so nothing leaves this machine.
    monkeypatch.setenv("DDGS_PROXY", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ApexError) as caught:
        await retrieve(DuckDuckGoSearch(), "what do bees eat", n_miners=3)
    assert caught.value.message == (
        "the search provider duckduckgo could not be reached: connection refused"
    )


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (socket.gaierror(-3, "Temporary failure in name resolution"), "name resolution failed"),
        (ConnectionRefusedError(111, "Connect call failed"), "connection refused"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "network unreachable"),
        (TimeoutError(), "timed out"),
        (ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED]"), "the secure connection (TLS) failed"),
        (
            RuntimeError("ConnectError: No connection could be made (os error 10061)"),
            "connection refused",
        ),
        (RuntimeError("https://a.example/search?q=x 429 Too Many Requests"), "rate limited"),
        (RuntimeError("operation timed out"), "timed out"),
        (
            ValueError("bad answer from https://user:pw@a.example/s?q=x"),
            "ValueError: bad answer from a.example",
        ),
    ],
)
def test_a_failure_is_told_by_its_cause(error: Exception, cause: str) -> None:
    wrapped = RuntimeError("All connection attempts failed")
    wrapped.__cause__ = error  # the cause may sit anywhere in the chain
    assert failure_cause(error) == cause
    if not isinstance(error, ValueError | RuntimeError):
        assert failure_cause(wrapped) == cause


def test_build_providers() -> None:
    [default] = build_providers("duckduckgo", None)
    assert isinstance(default, DuckDuckGoSearch)
    [searx] = build_providers(" SearXNG ", "http://127.0.0.1:8888/")
    assert isinstance(searx, SearxngSearch)
    assert searx.url == "http://127.0.0.1:8888"
    with pytest.raises(ValueError, match="needs the URL of a SearXNG instance"):
        build_providers("searxng", None)
    with pytest.raises(ValueError, match="use duckduckgo, searxng, brave, tavily, exa"):
        build_providers("google", None)


# --- the pieces -------------------------------------------------------------------------------


def test_passages_are_cut_at_paragraphs_then_sentences() -> None:
    sentences = [f"Sentence number {i} says something short about bees." for i in range(30)]
    long_paragraph, other = " ".join(sentences[:20]), " ".join(sentences[20:])
    passages = split_passages(f"Title\n{long_paragraph}\nA short paragraph.\n{other}", 200)

    assert all(len(p) <= 200 for p in passages)
    assert passages[0].startswith("Title\nSentence number 0")
    for sentence in [*sentences, "A short paragraph."]:  # each one whole, in one passage
        assert sum(sentence in p for p in passages) == 1
    assert "".join(passages).count("Sentence number") == 30


def test_a_word_longer_than_a_passage_is_still_cut() -> None:
    passages = split_passages("x" * 450, 200)
    assert [len(p) for p in passages] == [200, 200, 50]


def test_best_passage_prefers_the_rarer_words() -> None:
    passages = [
        "Bees make honey. Bees are insects.",
        "Bees dance to show the direction of flowers.",
        "Bees sting when threatened.",
    ]
    assert best_passage(passages, "which direction do bees dance") == passages[1]
    assert best_passage(passages, "quantum chromodynamics") == passages[0]
    assert best_passage([], "bees") == ""


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTPS://Example.ORG/a/", "https://example.org/a"),
        ("https://example.org:443/a", "https://example.org/a"),
        ("https://example.org/a#part", "https://example.org/a"),
        ("https://example.org/a?utm_source=x&id=3&fbclid=y", "https://example.org/a?id=3"),
        ("https://example.org/a?b=2&a=1", "https://example.org/a?a=1&b=2"),
    ],
)
def test_normalize_url(a: str, b: str) -> None:
    assert normalize_url(a) == normalize_url(b)


def test_normalize_url_keeps_what_differs() -> None:
    assert normalize_url("https://example.org/a") != normalize_url("http://example.org/a")
    assert normalize_url("https://example.org/a?id=3") != normalize_url("https://example.org/a")
    assert normalize_url("https://example.org:8443/a") != normalize_url("https://example.org/a")


# --- search filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domains", "url", "allowed"),
    [
        (["example.com"], "https://example.com/x", True),
        (["example.com"], "https://www.example.com/x", True),
        (["example.com"], "https://EXAMPLE.com./x", True),
        (["example.com"], "https://example.com.evil.net/x", False),
        (["example.com"], "https://notexample.com/x", False),
        (["example.com"], "https://example.co/x", False),
        (["*.example.com"], "https://example.com/x", False),
        (["*.example.com"], "https://a.b.example.com/x", True),
        (["*.example.com"], "https://evil-example.com/x", False),
        (["example.com"], "https://user@evil.net/?example.com", False),
        (["example.com"], "not a url", False),
    ],
)
def test_include_domains_match_hosts_not_strings(
    domains: list[str], url: str, allowed: bool
) -> None:
    assert SearchFilters.of(include_domains=domains).allows(url) is allowed
    # Excluding the same domains allows exactly the other pages (a URL without a host: none).
    assert SearchFilters.of(exclude_domains=domains).allows(url) is (
        not allowed and url != "not a url"
    )


@pytest.mark.parametrize("domain", ["https://example.com", "example.com/path", "*", "a..b", ""])
def test_what_is_not_a_domain_is_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="is not a domain"):
        SearchFilters.of(include_domains=[domain])


async def test_pages_outside_the_domains_are_never_fetched(web: FakeWeb) -> None:
    # localhost and 127.0.0.1 are one fake web under two domains.
    other = url(web, "/bees").replace("127.0.0.1", "localhost")
    web.pages["/hop"] = Page.redirect(url(web, "/tides").replace("127.0.0.1", "localhost"))
    search = FakeSearch(
        hits=[
            SearchHit(url=other),
            SearchHit(url=url(web, "/sourdough")),
            SearchHit(url=url(web, "/hop")),  # redirects out of the domain
        ]
    )
    async with retriever(search) as r:
        response = await r.retrieve(
            WebRetrievalRequest(search_query="bees", n_miners=1, n_results=3),
            filters=SearchFilters.of(exclude_domains=["localhost"]),
        )
    assert urls(response) == [url(web, "/sourdough")]
    assert web.hits_for("/bees") == 0 and web.hits_for("/tides") == 0


async def test_recency_is_asked_of_the_providers_that_can_bound_it(web: FakeWeb) -> None:
    searxng = FakeSearxng(hits=[hit(url(web, ""), "/bees")])
    with serve_searxng(searxng) as base:
        async with retriever(SearxngSearch(base)) as r:
            await r.retrieve(
                WebRetrievalRequest(search_query="bees", n_miners=1),
                filters=SearchFilters.of(recency="month"),
            )
        assert searxng.queries[0]["time_range"] == ["month"]
        async with retriever(FakeSearch(hits=[])) as r:  # a provider that cannot bound dates
            with pytest.raises(ApexError, match="can bound the age"):
                await r.retrieve(
                    WebRetrievalRequest(search_query="bees"),
                    filters=SearchFilters.of(recency="day"),
                )


async def test_domains_are_asked_of_the_search_engine_too(web: FakeWeb) -> None:
    """Not only enforced on the results: the engine is asked for the domains (``site:``),
    so that a search within a domain finds its pages rather than filtering others away."""
    searxng = FakeSearxng(hits=[hit(url(web, ""), "/bees")])
    with serve_searxng(searxng) as base:
        async with retriever(SearxngSearch(base)) as r:
            await r.retrieve(
                WebRetrievalRequest(search_query="bees", n_miners=1),
                filters=SearchFilters.of(["*.bees.example"], ["wasps.example", "ads.example"]),
            )
    [asked] = searxng.queries
    assert asked["q"] == ["bees site:bees.example -site:wasps.example -site:ads.example"]


# --- rate limits --------------------------------------------------------------------------------


async def test_a_429_with_retry_after_pauses_the_provider(web: FakeWeb) -> None:
    searxng = FakeSearxng(hits=[hit(url(web, ""), "/bees")], statuses=[429], retry_after="1")
    with serve_searxng(searxng) as base:
        async with retriever(SearxngSearch(base)) as r:
            with pytest.raises(ApexError, match=r"rate limited \(HTTP 429, retry after 1 s\)"):
                await r.retrieve(WebRetrievalRequest(search_query="bees", n_miners=1))
            response = await r.retrieve(WebRetrievalRequest(search_query="bees", n_miners=1))
    assert urls(response) == [url(web, "/bees")]
    assert searxng.times[1] - searxng.times[0] >= 0.95  # not asked again before Retry-After


async def test_a_token_bucket_spaces_a_providers_requests(web: FakeWeb) -> None:
    searxng = FakeSearxng(hits=[])
    with serve_searxng(searxng) as base:
        async with retriever(SearxngSearch(base, requests_per_second=10)) as r:
            # Five "miners" ask at once; a bucket of one lets one through every 0.1 s.
            await r.retrieve(WebRetrievalRequest(search_query="bees", n_miners=5))
    # (Measured where the fake receives them: the first request also opens the connection.)
    assert len(searxng.times) == 5
    assert searxng.times[-1] - searxng.times[0] >= 0.35, searxng.times


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (None, 1.0), ("soon", 1.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_is_seconds_or_a_date(header: str | None, seconds: float) -> None:
    assert retry_after(header) == seconds
