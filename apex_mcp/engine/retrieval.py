"""Web retrieval: the engine's answer to ``WebRetrieval``, as the SN1 reference miner did it.

search -> fetch -> extract -> pick the passage:

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
  boundaries, and ``relevant`` is the one that BM25 scores best against the query (a small
  implementation here: a page has a few dozen passages, which needs neither numpy nor an
  index, and bm25s would bring both at start-up).

Time: the whole call returns within ``max_response_time`` with what it has by then. The search
may take up to half of it (and after its first answer, as long again for the others, at
least a second); the pages get the rest. The results are the first ``n_results`` good pages in
search-rank order; once those are known, the pages still loading are abandoned.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import errno
import importlib.util
import logging
import math
import os
import re
import socket
import ssl
import textwrap
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import anyio
import httpcore2
import httpx2
from pydantic import BaseModel, SecretStr

from .. import __version__
from .._http import LazyClient
from ..apex.errors import ApexError, Code
from ..apex.models import (
    Recency,
    SearchFilters,
    WebRetrievalRequest,
    WebRetrievalResponse,
    WebSearchResult,
)
from ..netguard import Resolver, public_transport, refusal

log = logging.getLogger(__name__)

USER_AGENT = f"apex-mcp/{__version__} (web retrieval for an MCP server)"

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

# How the pages are ordered and their passage picked (see ``rank_pages``); bench.quality
# measures each on the project's quality set.
RANKINGS = ("auto", "provider", "bm25", "embedding", "fusion")
DEFAULT_RANKING = "auto"
RRF_K = 60  # reciprocal rank fusion's damping, as in its paper

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


class SearchHit(BaseModel):
    """One search result: where it points and what the search engine said of it."""

    url: str
    title: str = ""
    snippet: str = ""


class SearchProvider(Protocol):
    """A web search engine. ``search`` raises (anything) when the engine could not answer.

    A provider may also have a ``label`` (its name and where it is, for messages) and a
    ``remedy`` (what to do when it cannot be reached, naming the settings). One that can
    bound the age of its results sets ``supports_recency`` and takes ``recency=`` in
    ``search``; the others are not asked when a search has a recency bound.
    """

    name: str

    async def search(self, query: str, max_results: int) -> list[SearchHit]: ...


class PageCache(Protocol):
    """Where pages read before are kept (the store): by normalized URL, with a time to live."""

    async def get_page(self, url: str, max_age: float) -> Any: ...  # a CachedPage or None

    async def put_page(
        self, url: str, final_url: str, content: str, *, max_age: float, keep: int
    ) -> None: ...


class SearchError(Exception):
    """A search provider could not answer; the message says why, for people."""


# --- search providers -------------------------------------------------------------------------


class RateLimit:
    """A provider's pace: a token bucket of ``burst`` requests refilled at ``per_second`` (no
    bucket when ``None``), and the pause the provider asked for with ``Retry-After``.
    ``paced()`` holds a request: it waits for both. The bucket refills only while no request
    is out, from the last answer on, so the pace holds where the provider counts it: a
    request slowed on its way (a new connection) is not caught up by the next. Callers queue
    in order."""

    def __init__(self, per_second: float | None = None, burst: int = 1) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError("requests per second must be more than 0")
        self.per_second, self.burst = per_second, max(1, burst)
        self._tokens = float(self.burst)
        self._updated: float | None = None  # when the bucket last refilled
        self._paused_until = 0.0
        self._lock: anyio.Lock | None = None
        self._out = 0  # requests sent and not answered yet
        self._answered: anyio.Event | None = None

    @contextlib.asynccontextmanager
    async def paced(self) -> AsyncIterator[None]:
        await self.acquire()
        self._out += 1
        try:
            yield
        finally:
            self._out -= 1
            if self.per_second is not None:  # the refill starts again from this answer
                self._updated = anyio.current_time()
            if self._answered is not None:
                self._answered.set()
                self._answered = None

    async def acquire(self) -> None:
        """Wait for the pause and a token (``paced`` also tells when the answer came)."""
        if self._lock is None:  # made in the event loop that uses it
            self._lock = anyio.Lock()
        async with self._lock:
            now = anyio.current_time()
            if now < self._paused_until:
                await anyio.sleep(self._paused_until - now)
            if self.per_second is None:
                return
            while True:
                now = anyio.current_time()
                if not self._out:
                    if self._updated is not None:
                        refill = max(0.0, now - self._updated) * self.per_second
                        self._tokens = min(self.burst, self._tokens + refill)
                    self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                if self._out:  # no refill while requests are out: wait for an answer
                    if self._answered is None:
                        self._answered = anyio.Event()
                    await self._answered.wait()
                else:
                    await anyio.sleep((1 - self._tokens) / self.per_second)

    def paused_for(self) -> float:
        """Seconds left of the pause a ``Retry-After`` asked for (0 when none)."""
        return max(0.0, self._paused_until - anyio.current_time())

    def pause(self, seconds: float) -> None:
        """No request before ``seconds`` from now (at most an hour)."""
        until = anyio.current_time() + min(max(seconds, 0.0), 3600.0)
        self._paused_until = max(self._paused_until, until)


def retry_after(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


class DuckDuckGoSearch:
    """Keyless web search through the ``ddgs`` metasearch library (imported on first search).

    ``backend`` is ddgs's choice of engines: ``"auto"`` (its default) asks DuckDuckGo and the
    other keyless engines it knows and falls back among them; ``"duckduckgo"`` asks only it.
    """

    name = label = "duckduckgo"
    supports_recency = True
    remedy = "check the network, or set APEX_SEARCH_PROVIDER=searxng with APEX_SEARXNG_URL"

    def __init__(
        self,
        *,
        backend: str = "auto",
        region: str = "us-en",
        safesearch: str = "moderate",
        timeout: int = 10,
    ) -> None:
        self.backend = backend
        self.region = region
        self.safesearch = safesearch
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"DuckDuckGoSearch(backend={self.backend!r})"

    async def search(
        self, query: str, max_results: int, *, recency: Recency | None = None
    ) -> list[SearchHit]:
        # ddgs blocks (threads and sync HTTP): keep it off the event loop; a search abandoned
        # at the deadline finishes in its thread and is ignored.
        return await anyio.to_thread.run_sync(
            self._search, query, max_results, recency, abandon_on_cancel=True
        )

    def _search(self, query: str, max_results: int, recency: Recency | None) -> list[SearchHit]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException

        try:
            rows = DDGS(timeout=self.timeout).text(
                query,
                region=self.region,
                safesearch=self.safesearch,
                max_results=max_results,
                backend=self.backend,
                timelimit=recency[0] if recency else None,  # d, w, m, y
            )
        except DDGSException as exc:
            if "no results found" in str(exc).lower():  # ddgs says "nothing" with an error
                return []
            # ddgs names only the last engine's error: a cause, or else its gist.
            raise SearchError(failure_cause(exc)) from None
        return [
            SearchHit(
                url=str(row["href"]),
                title=str(row.get("title") or ""),
                snippet=str(row.get("body") or ""),
            )
            for row in rows
            if row.get("href")
        ]


class SearxngSearch:
    """A SearXNG instance (usually self-hosted): ``GET {url}/search?q=...&format=json``.

    The instance must allow the JSON format (``search.formats`` in its settings.yml).
    """

    name = "searxng"
    supports_recency = True
    remedy = "check that the SearXNG instance is running and that APEX_SEARXNG_URL points at it"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        user_agent: str = USER_AGENT,
        requests_per_second: float | None = None,
    ) -> None:
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a SearXNG URL must start with http:// or https://: {url!r}")
        self.url = url
        self.timeout = timeout
        self.user_agent = user_agent
        self.rate = RateLimit(requests_per_second)
        self._http = LazyClient(self._make_http)

    @property
    def label(self) -> str:
        # Without a user:password the URL may carry: messages must never show it.
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        where = f"{host}:{parts.port}" if parts.port else host
        return f"searxng at {parts.scheme}://{where}{parts.path}"

    def _make_http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers={"user-agent": self.user_agent, "accept": "application/json"},
            timeout=httpx2.Timeout(self.timeout),
        )

    def __repr__(self) -> str:
        return f"SearxngSearch({self.url!r})"

    async def search(
        self, query: str, max_results: int, *, recency: Recency | None = None
    ) -> list[SearchHit]:
        params = {"q": query, "format": "json"}
        if recency:
            params["time_range"] = recency  # SearXNG's day, week, month, year
        try:
            async with self.rate.paced():
                response = await self._http().get(f"{self.url}/search", params=params)
        except httpx2.HTTPError as exc:
            raise SearchError(failure_cause(exc)) from None
        if response.status_code in (429, 503) and "retry-after" in response.headers:
            wait = retry_after(response.headers["retry-after"])
            self.rate.pause(wait)  # honoured: no request to it before then
            raise SearchError(
                f"{RATE_LIMITED} (HTTP {response.status_code}, retry after {wait:g} s)"
            )
        if response.status_code != 200:
            reason = f"HTTP {response.status_code}"
            if response.status_code == 403:
                reason += " (does the instance allow format=json? see search.formats)"
            raise SearchError(reason)
        try:
            rows = response.json()["results"]
            return [
                SearchHit(
                    url=str(row["url"]),
                    title=str(row.get("title") or ""),
                    snippet=str(row.get("content") or ""),
                )
                for row in rows
                if isinstance(row, dict) and row.get("url")
            ][:max_results]
        except (ValueError, KeyError, TypeError):
            raise SearchError("the answer is not SearXNG JSON") from None

    async def aclose(self) -> None:
        await self._http.aclose()


RECENCY_DAYS = {"day": 1, "week": 7, "month": 31, "year": 366}
BRAVE_FRESHNESS = {"day": "pd", "week": "pw", "month": "pm", "year": "py"}
# A keyed API's pace unless set: one request a second, what the free tiers allow (Brave's).
KEYED_REQUESTS_PER_SECOND = 1.0


class _KeyedSearch:
    """A web search API called with a key: JSON over HTTPS, paced by a token bucket.

    The key is sent in a header (never in the URL, which error messages may quote) and is
    never in a repr, a label or an error. A 429 pauses the provider for its ``Retry-After``
    (a second without one); a 401/403 says the key was refused.
    """

    name = "keyed"
    base_url = ""
    supports_recency = True

    def __init__(
        self,
        api_key: SecretStr | str,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
        user_agent: str = USER_AGENT,
        requests_per_second: float | None = KEYED_REQUESTS_PER_SECOND,
    ) -> None:
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not key.get_secret_value().strip():
            raise ValueError(f"the {self.name} search provider needs an API key")
        self._key = key
        url = (base_url or self.base_url).strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a {self.name} URL must start with http:// or https://")
        self.url = url
        self.timeout = timeout
        self.user_agent = user_agent
        self.rate = RateLimit(requests_per_second)
        self._http = LazyClient(self._make_http)

    @property
    def label(self) -> str:
        return self.name if self.url == self.base_url else f"{self.name} at {self.url}"

    @property
    def remedy(self) -> str:
        return f"check APEX_{self.name.upper()}_API_KEY and the network, or add a fallback"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _make_http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers={"user-agent": self.user_agent, "accept": "application/json"},
            timeout=httpx2.Timeout(self.timeout),
        )

    async def _call(self, method: str, path: str, **request: Any) -> Any:
        """The JSON answer of one request, paced, or ``SearchError`` saying why not."""
        try:
            async with self.rate.paced():
                response = await self._http().request(method, f"{self.url}{path}", **request)
        except httpx2.HTTPError as exc:
            raise SearchError(failure_cause(exc)) from None
        if response.status_code == 429:
            wait = retry_after(response.headers.get("retry-after"))
            self.rate.pause(wait)  # honoured: no request to it before then
            raise SearchError(f"{RATE_LIMITED} (HTTP 429, retry after {wait:g} s)")
        if response.status_code in (401, 403):
            raise SearchError(f"the API key was refused (HTTP {response.status_code})")
        if response.status_code != 200:
            raise SearchError(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise SearchError(f"the answer is not {self.name} JSON") from None

    async def search(
        self, query: str, max_results: int, *, recency: Recency | None = None
    ) -> list[SearchHit]:
        raise NotImplementedError

    def _hits(self, rows: Any, snippet: str, max_results: int) -> list[SearchHit]:
        if not isinstance(rows, list):
            raise SearchError(f"the answer is not {self.name} JSON")
        return [
            SearchHit(
                url=str(row["url"]),
                title=str(row.get("title") or ""),
                snippet=str(row.get(snippet) or ""),
            )
            for row in rows
            if isinstance(row, dict) and isinstance(row.get("url"), str)
        ][:max_results]

    async def aclose(self) -> None:
        await self._http.aclose()


class BraveSearch(_KeyedSearch):
    """The Brave Search API: ``GET /res/v1/web/search`` with ``X-Subscription-Token``."""

    name = "brave"
    base_url = "https://api.search.brave.com"

    async def search(
        self, query: str, max_results: int, *, recency: Recency | None = None
    ) -> list[SearchHit]:
        params = {"q": query, "count": str(min(max_results, 20))}  # 20 at most per page
        if recency:
            params["freshness"] = BRAVE_FRESHNESS[recency]
        headers = {"x-subscription-token": self._key.get_secret_value()}
        answer = await self._call("GET", "/res/v1/web/search", params=params, headers=headers)
        web = answer.get("web") if isinstance(answer, dict) else None
        if web is None and isinstance(answer, dict) and "query" in answer:
            return []  # nothing found: Brave leaves "web" out
        return self._hits(
            web.get("results") if isinstance(web, dict) else None, "description", max_results
        )


class TavilySearch(_KeyedSearch):
    """Tavily: ``POST /search`` with a bearer key and a JSON body."""

    name = "tavily"
    base_url = "https://api.tavily.com"

    async def search(
        self, query: str, max_results: int, *, recency: Recency | None = None
    ) -> list[SearchHit]:
        body: dict[str, Any] = {"query": query, "max_results": min(max_results, 20)}
        if recency:
            body["time_range"] = recency  # day, week, month, year
        headers = {"authorization": f"Bearer {self._key.get_secret_value()}"}
        answer = await self._call("POST", "/search", json=body, headers=headers)
        rows = answer.get("results") if isinstance(answer, dict) else None
        return self._hits(rows, "content", max_results)


class ExaSearch(_KeyedSearch):
    """Exa: ``POST /search`` with ``x-api-key`` and a JSON body."""

    name = "exa"
    base_url = "https://api.exa.ai"

    async def search(
        self, query: str, max_results: int, *, recency: Recency | None = None
    ) -> list[SearchHit]:
        body: dict[str, Any] = {"query": query, "numResults": min(max_results, 100), "type": "auto"}
        if recency:
            since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
                days=RECENCY_DAYS[recency]
            )
            body["startPublishedDate"] = since.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        headers = {"x-api-key": self._key.get_secret_value()}
        answer = await self._call("POST", "/search", json=body, headers=headers)
        rows = answer.get("results") if isinstance(answer, dict) else None
        return self._hits(rows, "text", max_results)


class FallbackSearch:
    """Providers tried in order: the first that answers is the answer. One that is paused by
    its ``Retry-After`` is passed over at once (the next is asked instead of waiting), one
    that fails makes way for the next; the error names each one's cause."""

    name = "fallback"

    def __init__(self, providers: Sequence[SearchProvider]) -> None:
        if not providers:
            raise ValueError("a fallback needs at least one search provider")
        self.providers = list(providers)
        self.supports_recency = any(getattr(p, "supports_recency", False) for p in providers)

    @property
    def label(self) -> str:
        return ", then ".join(_label(p) for p in self.providers)

    @property
    def remedy(self) -> str:
        remedies = {getattr(p, "remedy", None) or DEFAULT_REMEDY: None for p in self.providers}
        return "; or ".join(remedies)

    def __repr__(self) -> str:
        return f"FallbackSearch({self.providers!r})"

    async def search(
        self, query: str, max_results: int, *, recency: Recency | None = None
    ) -> list[SearchHit]:
        causes: list[str] = []
        for provider in self.providers:
            if recency and not getattr(provider, "supports_recency", False):
                continue
            rate = getattr(provider, "rate", None)
            if isinstance(rate, RateLimit) and rate.paused_for() > 0:
                causes.append(
                    f"{_label(provider)}: {RATE_LIMITED} (retry after {rate.paused_for():.0f} s)"
                )
                continue
            try:
                if recency:
                    return await provider.search(  # type: ignore[call-arg]
                        query, max_results, recency=recency
                    )
                return await provider.search(query, max_results)
            except Exception as exc:  # a provider may fail in any way; the next may answer
                cause = failure_cause(exc)
                log.info("search %s failed, trying the next: %s", provider.name, cause)
                causes.append(f"{_label(provider)}: {cause}")
        raise SearchError("; ".join(causes) or "no provider can bound the age of results")

    async def aclose(self) -> None:
        for provider in self.providers:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()


PROVIDERS = ("duckduckgo", "searxng", "brave", "tavily", "exa")
_KEYED: dict[str, type[_KeyedSearch]] = {
    "brave": BraveSearch,
    "tavily": TavilySearch,
    "exa": ExaSearch,
}


def provider_names(kind: str) -> list[str]:
    """The provider names of a setting (``"brave, duckduckgo"``), in order, checked."""
    aliases = {"ddg": "duckduckgo", "ddgs": "duckduckgo"}
    names = [aliases.get(n, n) for n in (p.strip().lower() for p in (kind or "").split(",")) if n]
    for name in names:
        if name not in PROVIDERS:
            raise ValueError(f"unknown search provider {name!r}: use {', '.join(PROVIDERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a search provider is named twice in {kind!r}")
    return names or ["duckduckgo"]


def build_providers(
    kind: str,
    searxng_url: str | None,
    *,
    requests_per_second: float | None = None,
    api_keys: Mapping[str, SecretStr | str | None] | None = None,
    base_urls: Mapping[str, str] | None = None,
) -> list[SearchProvider]:
    """The search providers for a setting: one name or several in the order to try them
    (``"brave,duckduckgo"``: Brave, and DuckDuckGo when Brave fails). ``requests_per_second``
    paces each provider (keyed APIs default to one a second); ``api_keys`` and ``base_urls``
    are by provider name (the URLs for tests and proxies)."""
    keys, urls = api_keys or {}, base_urls or {}
    chain: list[SearchProvider] = []
    for name in provider_names(kind):
        if name == "duckduckgo":
            chain.append(DuckDuckGoSearch())
        elif name == "searxng":
            if not searxng_url or not searxng_url.strip():
                raise ValueError("the searxng search provider needs the URL of a SearXNG instance")
            chain.append(SearxngSearch(searxng_url, requests_per_second=requests_per_second))
        else:
            key = keys.get(name)
            if (
                key is None
                or not (key.get_secret_value() if isinstance(key, SecretStr) else key).strip()
            ):
                raise ValueError(
                    f"the {name} search provider needs an API key (APEX_{name.upper()}_API_KEY)"
                )
            pace = requests_per_second or KEYED_REQUESTS_PER_SECOND
            chain.append(_KEYED[name](key, base_url=urls.get(name), requests_per_second=pace))
    return chain if len(chain) == 1 else [FallbackSearch(chain)]


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
                    if filters.recency:
                        answers[i] = await provider.search(  # type: ignore[call-arg]
                            text, per_query, recency=filters.recency
                        )
                    else:
                        answers[i] = await provider.search(text, per_query)
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
            try:
                await self.cache.put_page(
                    normalize_url(url),
                    page.url,
                    page.content,
                    max_age=self.cache_seconds,
                    keep=self.cache_pages,
                )
            except Exception as exc:  # a cache that cannot write costs reuse, not the answer
                log.warning("page cache: could not keep %s: %s", page.url, _describe(exc))
        return page

    async def _cached(self, url: str, filters: SearchFilters) -> _Page | None:
        """The page as read within the cache's time to live, where it still passes."""
        if self.cache is None:
            return None
        try:
            kept = await self.cache.get_page(normalize_url(url), self.cache_seconds)
        except Exception as exc:
            log.warning("page cache: could not read %s: %s", url, _describe(exc))
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
            log.info("web page skipped: %s: extraction failed: %s", final_url, _describe(exc))
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
                raise _PageFailure(_describe(exc)) from None
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


def split_passages(content: str, size: int = 500) -> list[str]:
    """``content`` in passages of at most ``size`` characters, cut between paragraphs where
    they fit, else between sentences, else between words."""
    pieces: list[tuple[str, str]] = []  # (text, what joins it to the piece before)
    for line in content.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        joiner = "\n"
        for sentence in [line] if len(line) <= size else _SENTENCE_END.split(line):
            for part in textwrap.wrap(sentence, size, break_on_hyphens=False) or [sentence]:
                pieces.append((part, joiner))
                joiner = " "
    passages: list[str] = []
    current: list[tuple[str, str]] = []
    for text, joiner in pieces:
        if current and len(_joined(current)) + len(joiner) + len(text) > size:
            # A heading at the end of a full passage belongs with the text it heads.
            carry = []
            if len(current) > 1 and _is_heading(*current[-1]):
                carry = [current.pop()]
            passages.append(_joined(current))
            current = carry
        current.append((text, joiner))
    if current:
        passages.append(_joined(current))
    return passages


def best_passage(passages: Sequence[str], query: str) -> str:
    """The passage that scores best against ``query`` (the first one if none matches)."""
    if not passages:
        return ""
    scores = bm25_scores(passages, query)
    return passages[max(range(len(passages)), key=scores.__getitem__)]


def rank_pages(
    pages: Sequence[Sequence[str]], query: str, ranking: str = DEFAULT_RANKING
) -> list[tuple[int, int]]:
    """The pages (each a list of passages, in search order) from the one whose best passage
    answers ``query`` best, as ``(page index, best passage index)``.

    - ``provider``: search order; each page's best passage by BM25 over that page alone.
    - ``bm25``: BM25 over every passage of every page as one collection (the words rare
      across the pages weigh most).
    - ``embedding``: cosine similarity of query and passage in a static word-embedding model
      (WordLlama, the ``embeddings`` extra).
    - ``fusion``: reciprocal rank fusion of those two.
    - ``auto``: ``embedding`` where WordLlama is installed, else ``provider``: on questions
      it was not tuned on (``bench.quality --set heldout``) BM25's order does worse than the
      search engine's, the embedding's better.

    Except in search order, a passage is scored without the page's title line (a title that
    restates the query is the oldest bait there is), and its score is multiplied by
    ``(1 - d) ** 2``, ``d`` being the share of its words that are the query's: a passage made
    of the question's words restates it, it does not answer it. A page scores its best
    passage; ties keep search order; a page without passages comes last. With the embedding
    (``embedding``, ``fusion``) the passage returned is the one best by the sum of the damped
    embedding and BM25 scores, each scaled to the page's range.
    """
    ranking = resolve_ranking(ranking)
    if ranking == "provider":
        return [(i, _argmax(bm25_scores(p, query)) if p else 0) for i, p in enumerate(pages)]
    owners = [i for i, passages in enumerate(pages) for _ in passages]
    flat = [
        _without_title(passage) if j == 0 else passage
        for passages in pages
        for j, passage in enumerate(passages)
    ]
    terms = set(tokenize(query))
    damping = [(1 - _share_of(terms, passage)) ** 2 for passage in flat]
    lexical = [s * d for s, d in zip(bm25_scores(flat, query), damping, strict=True)]
    if ranking == "bm25":
        scores = within = lexical
    else:
        semantic = [s * d for s, d in zip(embedding_scores(flat, query), damping, strict=True)]
        scores = semantic if ranking == "embedding" else _fused(lexical, semantic)
        # Within a page the passage is the two together: the passage that restates the
        # question holds the query's words, the one that answers often only their meaning
        # (bench.quality: passage hit 0.97 against 0.94 for BM25 alone).
        within = _page_sum(owners, semantic, lexical)
    best: dict[int, int] = {}  # page -> index in flat of its best passage, for the order
    chosen: dict[int, int] = {}  # page -> index in flat of the passage returned
    first: dict[int, int] = {}
    for k, owner in enumerate(owners):
        first.setdefault(owner, k)
        if owner not in best or scores[k] > scores[best[owner]]:
            best[owner] = k
        if owner not in chosen or within[k] > within[chosen[owner]]:
            chosen[owner] = k
    order = sorted(best, key=lambda i: (-scores[best[i]], i))
    order += [i for i in range(len(pages)) if i not in best]
    return [(i, chosen[i] - first[i] if i in chosen else 0) for i in order]


def _page_sum(owners: Sequence[int], *scores: Sequence[float]) -> list[float]:
    """Per passage, the sum of ``scores``, each scaled to its page's range (0 for the page's
    lowest, 1 for its highest): for comparing the passages of one page."""
    spans: dict[int, tuple[int, int]] = {}
    for k, owner in enumerate(owners):
        start, _ = spans.get(owner, (k, k))
        spans[owner] = (start, k + 1)

    def scaled(values: Sequence[float], k: int) -> float:
        start, end = spans[owners[k]]
        low, high = min(values[start:end]), max(values[start:end])
        return (values[k] - low) / (high - low) if high > low else 0.0

    return [sum(scaled(values, k) for values in scores) for k in range(len(owners))]


def resolve_ranking(ranking: str) -> str:
    """``ranking``, with ``auto`` made ``embedding`` or ``provider`` (whether WordLlama is
    here; see ``rank_pages``)."""
    if ranking not in RANKINGS:
        raise ValueError(f"unknown ranking {ranking!r}: use one of {', '.join(RANKINGS)}")
    if ranking == "auto":
        return "embedding" if importlib.util.find_spec("wordllama") is not None else "provider"
    return ranking


def _without_title(passage: str) -> str:
    # A page's first passage starts with its title line (see extract_content).
    _, newline, rest = passage.partition("\n")
    return rest if newline and rest.strip() else passage


def _share_of(terms: set[str], passage: str) -> float:
    words = tokenize(passage)
    return sum(1 for w in words if w in terms) / len(words) if words else 0.0


def embedding_scores(passages: Sequence[str], query: str) -> list[float]:
    """Cosine similarity of each passage to ``query`` in WordLlama's 256-dimension space."""
    if not passages:
        return []
    vectors = _embedder().embed([query, *passages], norm=True)
    return [float(v) for v in vectors[1:] @ vectors[0]]


def _embedder() -> Any:
    """WordLlama, loaded once from the files its wheel ships (never from the network)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        with _EMBEDDER_LOCK:
            if _EMBEDDER is None:
                _EMBEDDER = _load_wordllama()
    return _EMBEDDER


def _load_wordllama() -> Any:
    # Heavy (numpy, tokenizers, 16 MB of weights): loaded on first use. WordLlama.load would
    # look for the tokenizer where its wheel does not put it and then go to the network.
    from pathlib import Path

    try:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference
    except ImportError:
        raise RuntimeError(
            "the embedding ranking needs WordLlama: pip install 'apex-mcp[embeddings]'"
        ) from None
    root = Path(wordllama.__file__).parent
    with safe_open(root / "weights" / "l2_supercat_256.safetensors", "np") as weights:
        table = weights.get_tensor("embedding.weight")
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    return WordLlamaInference(table, tokenizer)


_EMBEDDER: Any = None
_EMBEDDER_LOCK = threading.Lock()


def _fused(*rankings: Sequence[float]) -> list[float]:
    """Reciprocal rank fusion: each item's sum of 1 / (RRF_K + its rank) over the rankings."""
    fused = [0.0] * len(rankings[0])
    for scores in rankings:
        order = sorted(range(len(scores)), key=lambda k: -scores[k])
        for rank, k in enumerate(order):
            fused[k] += 1.0 / (RRF_K + rank + 1)
    return fused


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def bm25_scores(
    documents: Sequence[str], query: str, *, k1: float = 1.5, b: float = 0.75
) -> list[float]:
    """Okapi BM25 of each document for ``query``, the documents being the whole collection."""
    docs = [tokenize(d) for d in documents]
    terms = set(tokenize(query))
    if not docs or not terms:
        return [0.0] * len(docs)
    average = sum(len(d) for d in docs) / len(docs) or 1.0
    frequency = Counter(t for d in docs for t in set(d) if t in terms)
    idf = {t: math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}
    scores = []
    for doc in docs:
        counts = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / average)
        scores.append(sum(w * counts[t] * (k1 + 1) / (counts[t] + norm) for t, w in idf.items()))
    return scores


def tokenize(text: str) -> list[str]:
    """Lowercased words without stop words, plural endings cut (bees -> bee)."""
    words = _WORD.findall(text.lower())
    # One letter is noise ("moon's" -> moon, s), except a digit.
    return [_stem(w) for w in words if w not in _STOP_WORDS and (len(w) > 1 or w.isdigit())]


# --- helpers ----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_STOP_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
"""
_STOP_WORDS = frozenset(_STOP_TEXT.split())


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _joined(pieces: Sequence[tuple[str, str]]) -> str:
    return pieces[0][0] + "".join(joiner + text for text, joiner in pieces[1:])


def _is_heading(text: str, joiner: str) -> bool:
    # A short line of its own that does not end like a sentence.
    return joiner == "\n" and len(text) <= 100 and not text.endswith((".", "!", "?", ":", ";"))


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


# --- search failures, for people ---------------------------------------------------------------

NAME_RESOLUTION = "name resolution failed"
REFUSED = "connection refused"
NETWORK_UNREACHABLE = "network unreachable"
TIMED_OUT = "timed out"
TLS_FAILED = "the secure connection (TLS) failed"
RATE_LIMITED = "rate limited"
DEFAULT_REMEDY = "check the network, or configure another search provider (APEX_SEARCH_PROVIDER)"

# What the text of an error says of its cause: ddgs (through primp) and the OS describe
# causes only in words. Checked in order: a name lookup that timed out failed to resolve.
_CAUSE_WORDS = [
    (cause, re.compile(words, re.IGNORECASE))
    for cause, words in (
        (
            NAME_RESOLUTION,
            r"\bdns\b|name resolution|name or service not known|nodename nor servname"
            r"|getaddrinfo|no address associated|failed to lookup address",
        ),
        (REFUSED, r"connection refused|actively refused|(os error|errno) (111|10061)\b"),
        (NETWORK_UNREACHABLE, r"network is unreachable|no route to host|os error (101|113)\b"),
        (TIMED_OUT, r"timed out|timeout"),
        (TLS_FAILED, r"certificate|\bssl\b|\btls\b|handshake"),
        (RATE_LIMITED, r"rate ?limit|too many requests|\b429\b"),
    )
]
_URL = re.compile(r"\w+://(?:[^/\s)'\"@]*@)?([^/\s)'\"]+)[^\s)'\"]*")  # group 1: the host
_REACH_CAUSES = (NAME_RESOLUTION, REFUSED, NETWORK_UNREACHABLE, TIMED_OUT, TLS_FAILED)


def failure_cause(exc: BaseException) -> str:
    """Why a search (or any request) failed, in a few words: the network cause when there is
    one ("name resolution failed", "connection refused"...), else the error's gist with each
    URL cut to its host (a URL holds the query, which makes every failure look different)."""
    if isinstance(exc, SearchError):
        return str(exc)
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the chain of causes
        seen.add(id(current))
        cause = _cause_of_type(current)
        if cause:
            return cause
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    text = _URL.sub(r"\1", " ".join(texts))
    for cause, words in _CAUSE_WORDS:
        if words.search(text):
            return cause
    gist = _short(_URL.sub(r"\1", str(exc)))
    return f"{type(exc).__name__}: {gist}" if gist else type(exc).__name__


def _cause_of_type(exc: BaseException) -> str | None:
    if isinstance(exc, socket.gaierror):
        return NAME_RESOLUTION
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, ssl.SSLError):
        return TLS_FAILED
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return TIMED_OUT
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return NETWORK_UNREACHABLE
    return None


def search_failed(failures: Sequence[tuple[SearchProvider, str]]) -> ApexError:
    """The one error for a search that every query failed: each provider once, each distinct
    cause once, and what to do about it."""
    causes: dict[str, dict[str, None]] = {}  # provider label -> its causes, in order
    remedies: dict[str, None] = {}
    for provider, cause in failures:
        causes.setdefault(_label(provider), {})[cause] = None
        remedies[getattr(provider, "remedy", None) or DEFAULT_REMEDY] = None
    if len(causes) == 1:
        ((label, said),) = causes.items()
        unreached = all(c.startswith(_REACH_CAUSES) for c in said)
        verb = "could not be reached" if unreached else "failed"
        message = f"the search provider {label} {verb}: {'; '.join(said)}"
    else:
        listed = "; ".join(f"{label} ({', '.join(said)})" for label, said in causes.items())
        message = f"no search provider could answer: {listed}"
    return ApexError(Code.UNAVAILABLE, message, hint="; or ".join(remedies))


def _label(provider: SearchProvider) -> str:
    label = getattr(provider, "label", None)
    return label if isinstance(label, str) and label else provider.name


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SearchError):
        return str(exc)
    if isinstance(exc, httpx2.ConnectError):
        return refusal(exc) or "unreachable"
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    text = _short(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
