"""Web retrieval: the engine's answer to ``WebRetrieval``, as the SN1 reference miner did it.

search -> fetch -> extract -> pick the passage (the providers are in ``search.py``, the
passages and the ranking in ``ranking.py``):

- search: ``n_miners`` plays the number of miners asked. The query fans out to that many
  provider queries, round-robin over the providers; when there are fewer providers than
  miners, the later rounds ask variants of the query (in quotes, + "overview"...), so that each
  "miner" asks something different. The hits are merged in rank order (every query's first
  hit, then every second one...) and deduplicated by normalized URL. Only if every query fails
  is the call an error (``UNAVAILABLE``).
- fetch: the best-ranked ``2 * n_results + 2`` pages are fetched concurrently; each failure
  starts the next candidate. A page is dropped when it is not http(s), resolves to a private
  address (the SSRF guard), answers anything but 2xx, is not HTML, is larger than
  ``max_page_bytes`` (dropped, not truncated: half a page extracts badly), or redirects more
  than ``max_redirects`` times. Cookies are never kept and the user agent says who we are.
- extract: trafilatura takes the main text (no navigation, ads, banners or comments) in worker
  threads, a few at a time and in the order the pages came; ``content`` is the page title on
  the first line, then that text. A page with little or no main text is dropped, never
  returned empty.
- pick: ``content`` is cut into passages of about ``passage_chars`` on paragraph and sentence
  boundaries; ``relevant`` is the page's best passage, and the pages are ordered as
  ``ranking.rank_pages`` says (``APEX_SEARCH_RANKING``).

Time: the whole call returns within ``max_response_time`` with what it has by then. The search
may take up to half of it (and after its first answer, as long again for the others, at
least a second); the pages get the rest. The results are the first ``n_results`` good pages in
search-rank order; once those are known, the pages still loading are abandoned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import anyio
import httpcore2
import httpx2

from .._http import LazyClient
from ..apex.errors import ApexError, Code
from ..apex.models import (
    SearchFilters,
    WebRetrievalRequest,
    WebRetrievalResponse,
    WebSearchResult,
)
from ..netguard import Resolver, public_transport
from .ranking import DEFAULT_RANKING, rank_pages, resolve_ranking, split_passages
from .search import (
    TIMED_OUT,
    USER_AGENT,
    SearchHit,
    SearchProvider,
    describe_error,
    failure_cause,
    search_failed,
    search_with,
)

log = logging.getLogger(__name__)

DEFAULT_N_MINERS = 3
DEFAULT_N_RESULTS = 1
DEFAULT_MAX_RESPONSE_TIME = 20
N_MINERS_RANGE = (1, 10)
N_RESULTS_RANGE = (1, 20)
MAX_RESPONSE_TIME_RANGE = (1, 120)

HITS_PER_QUERY = 10  # at least: a page of results costs an engine no more than four hits
SEARCH_SHARE = 0.5  # of max_response_time, at most, for the search
EXTRACT_THREADS = min(4, os.cpu_count() or 1)  # per retriever, for all its calls
MIN_MAIN_TEXT_CHARS = 200  # less is an error page, a login wall or a script shell
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

# Query variants for the later rounds of the fan-out: each "miner" asks something different.
QUERY_VARIANTS = (
    "{q}",
    '"{q}"',
    "{q} overview",
    "{q} explained",
    "{q} guide",
    "{q} introduction",
    "{q} facts",
    "{q} examples",
    "{q} history",
    "{q} analysis",
)

# Query parameters that only say where a click came from.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid"}
    | {"mc_eid", "_ga", "_gl", "ref_src", "spm"}
)


class PageCache(Protocol):
    """Where pages read before are kept (the store): by normalized URL, with a time to live."""

    async def get_page(self, url: str, max_age: float) -> Any: ...  # a CachedPage or None

    async def put_page(
        self, url: str, final_url: str, content: str, *, max_age: float, keep: int
    ) -> None: ...


# --- the retriever ----------------------------------------------------------------------------


class _PageFailure(Exception):
    """A page that cannot be used; the message says why, briefly."""


@dataclass
class _Page:
    url: str
    content: str
    passages: list[str]
    relevant: str = ""


@dataclass
class _Failed:
    reason: str


@dataclass
class _Stats:
    extract: float = 0.0  # CPU seconds, summed over the pages
    rank: float = 0.0  # wall seconds of the ranking (one call, in a worker thread)


class WebRetriever:
    """Answers ``WebRetrievalRequest``: search, fetch, extract, pick the passage.

    Owns one pooled HTTP client: ``aclose()`` it (or use ``async with``); that also closes the
    providers that have an ``aclose``. ``allow_private_addresses`` turns the SSRF guard off
    (for tests and for intranets; never for a server that strangers can call).
    """

    def __init__(
        self,
        providers: Sequence[SearchProvider],
        *,
        user_agent: str = USER_AGENT,
        max_page_bytes: int = 2_000_000,
        max_redirects: int = 5,
        passage_chars: int = 500,
        allow_private_addresses: bool = False,
        ranking: str = DEFAULT_RANKING,
        resolver: Resolver | None = None,
        network: httpcore2.AsyncNetworkBackend | None = None,
        cache: PageCache | None = None,
        cache_seconds: float = 24 * 3600,
        cache_pages: int = 10_000,
    ) -> None:
        if not providers:
            raise ValueError("a WebRetriever needs at least one search provider")
        if passage_chars < 50:
            raise ValueError("passage_chars must be at least 50")
        self.ranking = resolve_ranking(ranking)
        self.providers = list(providers)
        self.max_page_bytes = max_page_bytes
        self.max_redirects = max_redirects
        self.passage_chars = passage_chars
        self.allow_private_addresses = allow_private_addresses
        self._resolver, self._network = resolver, network  # how pages are reached (tests)
        # Pages read and extracted are kept there for ``cache_seconds`` (none when 0), the
        # newest ``cache_pages`` of them.
        self.cache = cache if cache_seconds > 0 else None
        self.cache_seconds, self.cache_pages = cache_seconds, cache_pages
        self.user_agent = user_agent
        self._extract_limiter: anyio.CapacityLimiter | None = None
        self._http = LazyClient(self._make_http)

    def _make_http(self) -> httpx2.AsyncClient:
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=16)
        # The guard is in the connection: each one goes to an address checked as it is made.
        transport = (
            None
            if self.allow_private_addresses
            else public_transport(
                resolver=self._resolver, network=self._network, http2=True, limits=limits
            )
        )
        return httpx2.AsyncClient(
            headers={
                "user-agent": self.user_agent,
                "accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
                "accept-language": "en;q=1.0, *;q=0.5",
            },
            # Redirects are followed by hand, so that every hop passes the guard.
            follow_redirects=False,
            # No cookies: one user's retrieval must not carry state into another's.
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
            http2=True,
            timeout=httpx2.Timeout(30.0, connect=10.0),  # the call's deadline is what binds
            limits=limits,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"WebRetriever(providers={[p.name for p in self.providers]!r})"

    async def __aenter__(self) -> WebRetriever:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        for provider in self.providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()

    async def retrieve(
        self,
        request: WebRetrievalRequest,
        *,
        timings: dict[str, float] | None = None,
        filters: SearchFilters | None = None,
    ) -> WebRetrievalResponse:
        """Search, read and return up to ``n_results`` pages, within ``max_response_time``.

        ``timings``, when given, receives seconds: ``search`` and ``fetch`` (wall time of the
        two phases; fetch includes extracting each page as it arrives), ``extract`` (CPU time,
        summed over the pages, in worker threads), ``rank`` (wall time of ranking the pages
        read) and ``total``.

        ``filters`` are enforced on the pages: a hit outside the domains is never fetched, a
        page that redirects out of them is dropped, and a recency bound is asked of the
        providers that can bound dates (the others are not asked at all).
        """
        started = time.perf_counter()
        query, n_miners, n_results, budget = _settings(request)
        deadline = anyio.current_time() + budget
        timings = timings if timings is not None else {}

        filters = filters or SearchFilters()
        hits = await self._search(query, n_miners, n_results, budget * SEARCH_SHARE, filters)
        hits = [hit for hit in hits if filters.allows(hit.url)]
        timings["search"] = time.perf_counter() - started

        fetch_started = time.perf_counter()
        stats = _Stats()
        pages = await self._read_pages(hits, n_results, deadline, stats, filters)
        timings["fetch"] = time.perf_counter() - fetch_started
        pages = await self._rank(query, pages, n_results, stats)
        timings["extract"] = stats.extract
        timings["rank"] = stats.rank
        timings["total"] = time.perf_counter() - started
        return WebRetrievalResponse(
            results=[
                WebSearchResult(url=p.url, content=p.content, relevant=p.relevant) for p in pages
            ]
        )

    # --- search -----------------------------------------------------------------------------

    async def _search(
        self, query: str, n_miners: int, n_results: int, budget: float, filters: SearchFilters
    ) -> list[SearchHit]:
        providers = self.providers
        if filters.recency:
            providers = [p for p in providers if getattr(p, "supports_recency", False)]
            if not providers:
                raise ApexError(
                    Code.INVALID_ARGUMENT,
                    "no configured search provider can bound the age of results: "
                    "leave recency out, or use duckduckgo, searxng, brave, tavily or exa",
                )
        asks = fan_out(query, providers, n_miners)
        answers: list[list[SearchHit] | str | None] = [None] * len(asks)
        per_query = max(HITS_PER_QUERY, 2 * n_results + 2)
        started = anyio.current_time()

        with anyio.CancelScope(deadline=started + budget) as scope:

            async def ask(i: int, provider: SearchProvider, text: str) -> None:
                try:
                    answers[i] = await search_with(provider, text, per_query, filters)
                except Exception as exc:  # a provider may fail in any way; others may answer
                    answers[i] = failure_cause(exc)
                    log.info("search %s failed for %r: %s", provider.name, text, answers[i])
                    return
                # The first answer is in: the others get as long again (at least a second).
                now = anyio.current_time()
                scope.deadline = min(scope.deadline, now + max(1.0, now - started))

            async with anyio.create_task_group() as tg:
                for i, (provider, text) in enumerate(asks):
                    tg.start_soon(ask, i, provider, text)

        lists = [a for a in answers if isinstance(a, list)]
        if not lists:
            silent = f"{TIMED_OUT} (no answer within {budget:g} s)"
            failures = [
                (provider, answer if isinstance(answer, str) else silent)
                for (provider, _), answer in zip(asks, answers, strict=True)
            ]
            raise search_failed(failures)
        return merge_hits(lists)

    # --- fetch and extract ------------------------------------------------------------------

    async def _read_pages(
        self,
        hits: list[SearchHit],
        n_results: int,
        deadline: float,
        stats: _Stats,
        filters: SearchFilters,
    ) -> list[_Page]:
        """The good pages among the first candidates, in search-rank order.

        In search order (``ranking="provider"``) those are the first ``n_results``. Otherwise
        they are a pool of up to ``2 * n_results + 2`` pages for the ranking to choose from;
        once the first ``n_results`` are in, the others get as long again (at least a second)
        and no longer than the deadline.
        """
        outcomes: list[_Page | _Failed | None] = [None] * len(hits)  # None: not read yet
        pool = 2 * n_results + 2
        want = n_results if self.ranking == "provider" else pool
        started = 0
        began = anyio.current_time()

        with anyio.CancelScope(deadline=deadline) as scope:
            async with anyio.create_task_group() as tg:

                def start_next() -> None:
                    nonlocal started
                    if started < len(hits):
                        tg.start_soon(read, started)
                        started += 1

                async def read(i: int) -> None:
                    outcome = await self._read_page(hits[i].url, stats, filters)
                    outcomes[i] = outcome
                    if isinstance(outcome, _Failed):
                        start_next()  # a failure is replaced by the next candidate
                    _, complete = _choose(outcomes, want)
                    if complete:  # the pages still loading can no longer change the answer
                        tg.cancel_scope.cancel()
                    elif want > n_results and _choose(outcomes, n_results)[1]:
                        now = anyio.current_time()
                        scope.deadline = min(scope.deadline, now + max(1.0, now - began))

                for _ in range(min(len(hits), pool)):
                    start_next()

        chosen, _ = _choose(outcomes, want)
        return chosen

    async def _rank(
        self, query: str, pages: list[_Page], n_results: int, stats: _Stats
    ) -> list[_Page]:
        """The ``n_results`` pages whose best passage answers ``query`` best, each with that
        passage as ``relevant`` (in search order, and each page's best BM25 passage, for
        ``ranking="provider"``)."""
        if not pages:
            return []
        started = time.perf_counter()
        ranked = await anyio.to_thread.run_sync(
            rank_pages, [p.passages for p in pages], query, self.ranking
        )
        stats.rank += time.perf_counter() - started
        chosen = []
        for index, passage in ranked[:n_results]:
            page = pages[index]
            page.relevant = page.passages[passage] if page.passages else ""
            chosen.append(page)
        return chosen

    async def _read_page(self, url: str, stats: _Stats, filters: SearchFilters) -> _Page | _Failed:
        cached = await self._cached(url, filters)
        if cached is not None:
            return cached
        page = await self._fetch_page(url, stats, filters)
        if isinstance(page, _Page) and self.cache is not None:
            # Under the address asked for and, after a redirect, the one read too: a source
            # is known by the latter (see ``kept_page``), and search engines give either.
            for key in dict.fromkeys((normalize_url(url), normalize_url(page.url))):
                try:
                    await self.cache.put_page(
                        key,
                        page.url,
                        page.content,
                        max_age=self.cache_seconds,
                        keep=self.cache_pages,
                    )
                except Exception as exc:  # a cache that cannot write costs reuse, not the answer
                    log.warning("page cache: could not keep %s: %s", page.url, describe_error(exc))
                    break
        return page

    async def kept_page(self, url: str) -> str | None:
        """The content (its title line, then its text) of the page read from ``url`` within
        the cache's time to live, if it is kept; a research job taken up again checks the
        citations of the sources an earlier run read against it."""
        page = await self._cached(url, SearchFilters())
        return None if page is None else page.content

    async def _cached(self, url: str, filters: SearchFilters) -> _Page | None:
        """The page as read within the cache's time to live, where it still passes."""
        if self.cache is None:
            return None
        try:
            kept = await self.cache.get_page(normalize_url(url), self.cache_seconds)
        except Exception as exc:
            log.warning("page cache: could not read %s: %s", url, describe_error(exc))
            return None
        if kept is None or not filters.allows(kept.final_url):  # it redirected out
            return None
        return _Page(kept.final_url, kept.content, split_passages(kept.content, self.passage_chars))

    async def _fetch_page(self, url: str, stats: _Stats, filters: SearchFilters) -> _Page | _Failed:
        try:
            final_url, body, charset = await self._fetch(url, filters)
        except _PageFailure as failure:
            log.debug("web page skipped: %s: %s", url, failure)
            return _Failed(str(failure))
        # Extraction is CPU-bound: a worker thread keeps the event loop free. Few at a time
        # (the GIL runs one anyway): pages are done in the order they came, so the best-ranked
        # finish first and the pages no longer needed are cancelled before they start.
        if self._extract_limiter is None:  # made in the event loop that will use it
            self._extract_limiter = anyio.CapacityLimiter(EXTRACT_THREADS)
        try:
            read = await anyio.to_thread.run_sync(
                _read_html,
                body,
                charset,
                final_url,
                self.passage_chars,
                abandon_on_cancel=True,
                limiter=self._extract_limiter,
            )
        except Exception as exc:  # one odd page must not sink the others
            log.info("web page skipped: %s: extraction failed: %s", final_url, describe_error(exc))
            return _Failed("extraction failed")
        stats.extract += read.extract_seconds
        if read.page is None:
            log.debug("web page skipped: %s: no main text", final_url)
            return _Failed("no main text")
        return read.page

    async def _fetch(self, url: str, filters: SearchFilters) -> tuple[str, bytes, str | None]:
        """The final URL, body and declared charset of an HTML page, or ``_PageFailure``."""
        for _ in range(self.max_redirects + 1):
            await self._guard(url)
            if not filters.allows(url):  # a redirect out of the domains asked for
                raise _PageFailure("outside the domains asked for")
            try:
                async with self._http().stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["location"])
                        continue
                    return url, await self._read_body(response), response.charset_encoding
            except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
                raise _PageFailure(describe_error(exc)) from None
        raise _PageFailure(f"more than {self.max_redirects} redirects")

    async def _read_body(self, response: httpx2.Response) -> bytes:
        if not response.is_success:
            raise _PageFailure(f"HTTP {response.status_code}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type not in HTML_TYPES:
            raise _PageFailure(f"not HTML ({media_type})")
        too_big = _PageFailure(f"larger than {self.max_page_bytes} bytes")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_page_bytes:
            raise too_big
        body = bytearray()
        async for chunk in response.aiter_bytes():  # decoded bytes: a gzip bomb stops here too
            body += chunk
            if len(body) > self.max_page_bytes:
                raise too_big
        return bytes(body)

    async def _guard(self, url: str) -> None:
        """Refuse what is not http(s). (Private addresses are refused as each connection is
        made: a check here, resolving the name apart from the connection, would race it.)"""
        if urlsplit(url).scheme not in ("http", "https"):
            raise _PageFailure("not an http(s) URL")


# --- the pieces, public for reuse -------------------------------------------------------------


def fan_out(
    query: str, providers: Sequence[SearchProvider], n_miners: int
) -> list[tuple[SearchProvider, str]]:
    """The ``n_miners`` provider queries: round-robin over the providers, then variants."""
    base = " ".join(query.split())
    plain = base.replace('"', "")
    bare = base.rstrip("?!.;: ")
    asks: list[tuple[SearchProvider, str]] = []
    for i in range(n_miners):
        variant = QUERY_VARIANTS[(i // len(providers)) % len(QUERY_VARIANTS)]
        text = base if variant == "{q}" else variant.format(q=plain if '"' in variant else bare)
        asks.append((providers[i % len(providers)], text))
    return asks


def merge_hits(lists: Sequence[Sequence[SearchHit]]) -> list[SearchHit]:
    """One list in rank order (each list's first hit, then each one's second...), without
    duplicate URLs or URLs that are not http(s)."""
    merged: list[SearchHit] = []
    seen: set[str] = set()
    for rank in range(max((len(hits) for hits in lists), default=0)):
        for hits in lists:
            if rank >= len(hits):
                continue
            hit = hits[rank]
            if urlsplit(hit.url).scheme.lower() not in ("http", "https"):
                log.debug("search hit skipped: not an http(s) URL: %s", hit.url[:200])
                continue
            key = normalize_url(hit.url)
            if key not in seen:
                seen.add(key)
                merged.append(hit)
    return merged


def normalize_url(url: str) -> str:
    """The URL as a key for "same page": scheme and host lowercased, no default port, no
    fragment, no trailing slash, no tracking parameters, the others sorted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    params = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    )
    return urlunsplit((scheme, host, path, urlencode(params), ""))


def extract_content(html: bytes | str, url: str | None = None) -> str:
    """A page's title on the first line, then its main text; ``""`` when it has little."""
    # Heavy (lxml and friends): loaded on first use, not at start-up.
    import trafilatura
    from trafilatura.metadata import extract_title

    tree = trafilatura.load_html(html)
    if tree is None:
        return ""
    # The title alone: trafilatura's full metadata (dates, authors...) would more than double
    # the time of an extraction, for nothing we return.
    title = " ".join((extract_title(tree) or "").split())
    # favor_precision: bylines, share bars and "related" lists inside an <article> go too
    # (bench.quality: 29% of pages leaked some without it, none with it, no text lost).
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        include_comments=False,
        include_tables=True,
        with_metadata=False,
        favor_precision=True,
    )
    if document is None or isinstance(document, dict):
        return ""
    text = (document.text or "").strip()
    if len(text) < MIN_MAIN_TEXT_CHARS:
        return ""
    first_line = " ".join(text.split("\n", 1)[0].split())
    if title and first_line.lower() != title.lower():  # the text often starts with the h1
        text = f"{title}\n{text}"
    return text


@dataclass
class _Read:
    page: _Page | None
    extract_seconds: float


def _read_html(body: bytes, charset: str | None, url: str, size: int) -> _Read:
    """Extract and cut into passages, in a worker thread."""
    html: bytes | str = body
    if charset:  # the server's word beats guessing; without it trafilatura reads <meta>
        with contextlib.suppress(LookupError):  # a charset Python does not know
            html = body.decode(charset, errors="replace")
    # CPU time of this thread: wall time would count the waits for the GIL too.
    started = time.thread_time()
    content = extract_content(html, url)
    if not content:
        return _Read(None, time.thread_time() - started)
    passages = split_passages(content, size)
    return _Read(_Page(url, content, passages), time.thread_time() - started)


def _choose(outcomes: Sequence[_Page | _Failed | None], n: int) -> tuple[list[_Page], bool]:
    """The first ``n`` good pages in rank order (one per final URL), and whether that choice
    is final: no page still loading could take a place in it."""
    chosen: list[_Page] = []
    seen: set[str] = set()
    pending = False
    for outcome in outcomes:
        if outcome is None:
            pending = True
        elif isinstance(outcome, _Page):
            key = normalize_url(outcome.url)
            if key not in seen:  # two search URLs may redirect to one page
                seen.add(key)
                chosen.append(outcome)
                if len(chosen) == n:
                    return chosen, not pending
    return chosen, not pending


def _settings(request: WebRetrievalRequest) -> tuple[str, int, int, float]:
    query = " ".join(request.search_query.split())
    if not query:
        raise ApexError(
            Code.INVALID_ARGUMENT, "search_query is empty: give the words to search the web for"
        )
    n_miners = _in_range("n_miners", request.n_miners, DEFAULT_N_MINERS, N_MINERS_RANGE)
    n_results = _in_range("n_results", request.n_results, DEFAULT_N_RESULTS, N_RESULTS_RANGE)
    budget = _in_range(
        "max_response_time",
        request.max_response_time,
        DEFAULT_MAX_RESPONSE_TIME,
        MAX_RESPONSE_TIME_RANGE,
    )
    return query, n_miners, n_results, float(budget)


def _in_range(name: str, value: int | None, default: int, bounds: tuple[int, int]) -> int:
    if value is None:
        return default
    low, high = bounds
    if not low <= value <= high:
        unit = " seconds" if name == "max_response_time" else ""
        raise ApexError(
            Code.INVALID_ARGUMENT,
            f"{name} is {value}: it must be between {low} and {high}{unit} (default {default})",
        )
    return value
