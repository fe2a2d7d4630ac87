"""Web search providers: the first step of web retrieval (``retrieval.py`` fetches and reads
what they find).

DuckDuckGo (keyless, through the ``ddgs`` metasearch library), a SearXNG instance, and the keyed
APIs of Brave Search, Tavily and Exa. Each is paced by a ``RateLimit`` (a token bucket, and the
pause a ``Retry-After`` asks for); ``FallbackSearch`` asks them in the configured order and
moves to the next when one fails or is paused. Failures are told for people
(``failure_cause``, ``search_failed``): the cause in a few words and what to check.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import errno
import logging
import re
import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import anyio
import httpx2
from pydantic import BaseModel, SecretStr

from .. import __version__
from .._dburl import redacted_url
from .._http import LazyClient
from ..apex.errors import ApexError, Code
from ..apex.models import Recency, SearchFilters
from ..netguard import refusal

if TYPE_CHECKING:
    from .config import EngineConfig

log = logging.getLogger(__name__)

DOCTOR_SEARCH_SECONDS = 20  # for a provider's answer to apex-mcp doctor's one query

USER_AGENT = f"apex-mcp/{__version__} (web retrieval for an MCP server)"


class SearchHit(BaseModel):
    """One search result: where it points and what the search engine said of it."""

    url: str
    title: str = ""
    snippet: str = ""


class SearchProvider(Protocol):
    """A web search engine. ``search`` raises (anything) when the engine could not answer.

    A provider may also have a ``label`` (its name and where it is, for messages) and a
    ``remedy`` (what to do when it cannot be reached, naming the settings). One that sets
    ``takes_filters`` takes the search's ``SearchFilters`` as ``filters=`` and asks the engine
    for them as it can (its domains as ``site:`` operators or parameters; a hint only: the
    retriever enforces them on what comes back); one that can also bound the age of its
    results sets ``supports_recency``, and the others are not asked when a search has a
    recency bound.
    """

    name: str

    async def search(self, query: str, max_results: int) -> list[SearchHit]: ...


async def search_with(
    provider: SearchProvider, query: str, max_results: int, filters: SearchFilters | None
) -> list[SearchHit]:
    """``provider``'s hits for ``query``, asked with ``filters`` where it takes them."""
    if filters and getattr(provider, "takes_filters", False):
        return await provider.search(query, max_results, filters=filters)  # type: ignore[call-arg]
    return await provider.search(query, max_results)


def with_sites(query: str, filters: SearchFilters | None) -> str:
    """``query`` with the domain filters as the operators web search engines read:
    ``site:`` for the domain asked for (several: joined by ``OR``), ``-site:`` for each left
    out. A wildcard ``*.example.com`` asks for ``example.com``: the retriever keeps only its
    subdomains from what comes back."""
    if not filters:
        return query
    include = " OR ".join(f"site:{host}" for host in _hosts(filters.include_domains))
    exclude = " ".join(f"-site:{host}" for host in _hosts(filters.exclude_domains))
    return " ".join(part for part in (query, include, exclude) if part)


def _hosts(domains: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(domain.removeprefix("*.") for domain in domains))


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
    takes_filters = True
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
        self, query: str, max_results: int, *, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        # ddgs blocks (threads and sync HTTP): keep it off the event loop; a search abandoned
        # at the deadline finishes in its thread and is ignored.
        recency = filters.recency if filters else None
        return await anyio.to_thread.run_sync(
            self._search, with_sites(query, filters), max_results, recency, abandon_on_cancel=True
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


class _HttpSearch:
    """A search engine asked over HTTP for JSON: paced by its ``rate`` (a ``RateLimit``), its
    client made on first use. An answer that asks to wait (``_paused``) pauses it for the
    ``Retry-After`` it gives."""

    supports_recency = True
    takes_filters = True

    def __init__(
        self, url: str, *, timeout: float, user_agent: str, requests_per_second: float | None
    ) -> None:
        self.url = url  # checked by the subclass, whose message names the provider
        self.timeout = timeout
        self.user_agent = user_agent
        self.rate = RateLimit(requests_per_second)
        self._http = LazyClient(self._make_http)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redacted_url(self.url)!r})"

    def _make_http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers={"user-agent": self.user_agent, "accept": "application/json"},
            timeout=httpx2.Timeout(self.timeout),
        )

    async def _send(self, method: str, url: str, **request: Any) -> httpx2.Response:
        """The answer to one request, paced, or ``SearchError`` saying why none came."""
        try:
            async with self.rate.paced():
                return await self._http().request(method, url, **request)
        except httpx2.HTTPError as exc:
            raise SearchError(failure_cause(exc)) from None

    def _paused(self, response: httpx2.Response) -> SearchError:
        """The error for an answer that asks to wait, the provider paused for its
        ``Retry-After`` (a second without one)."""
        wait = retry_after(response.headers.get("retry-after"))
        self.rate.pause(wait)  # honoured: no request to it before then
        return SearchError(f"{RATE_LIMITED} (HTTP {response.status_code}, retry after {wait:g} s)")

    async def aclose(self) -> None:
        await self._http.aclose()


class SearxngSearch(_HttpSearch):
    """A SearXNG instance (usually self-hosted): ``GET {url}/search?q=...&format=json``.

    The instance must allow the JSON format (``search.formats`` in its settings.yml).
    """

    name = "searxng"
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
            raise ValueError(
                f"a SearXNG URL must start with http:// or https://: {redacted_url(url)!r}"
            )
        super().__init__(
            url, timeout=timeout, user_agent=user_agent, requests_per_second=requests_per_second
        )

    @property
    def label(self) -> str:
        # Without a user:password the URL may carry: messages must never show it.
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        where = f"{host}:{parts.port}" if parts.port else host
        return f"searxng at {parts.scheme}://{where}{parts.path}"

    async def search(
        self, query: str, max_results: int, *, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        params = {"q": with_sites(query, filters), "format": "json"}
        if filters and filters.recency:
            params["time_range"] = filters.recency  # SearXNG's day, week, month, year
        response = await self._send("GET", f"{self.url}/search", params=params)
        if response.status_code in (429, 503) and "retry-after" in response.headers:
            raise self._paused(response)
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


RECENCY_DAYS = {"day": 1, "week": 7, "month": 31, "year": 366}
BRAVE_FRESHNESS = {"day": "pd", "week": "pw", "month": "pm", "year": "py"}
# A keyed API's pace unless set: one request a second, what the free tiers allow (Brave's).
KEYED_REQUESTS_PER_SECOND = 1.0


class _KeyedSearch(_HttpSearch):
    """A web search API called with a key: JSON over HTTPS, paced by a token bucket.

    The key is sent in a header (never in the URL, which error messages may quote) and is
    never in a repr, a label or an error. A 429 pauses the provider for its ``Retry-After``
    (a second without one); a 401/403 says the key was refused.
    """

    name = "keyed"
    base_url = ""

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
        super().__init__(
            url, timeout=timeout, user_agent=user_agent, requests_per_second=requests_per_second
        )

    @property
    def label(self) -> str:
        return (
            self.name if self.url == self.base_url else f"{self.name} at {redacted_url(self.url)}"
        )

    @property
    def remedy(self) -> str:
        return f"check APEX_{self.name.upper()}_API_KEY and the network, or add a fallback"

    async def _call(self, method: str, path: str, **request: Any) -> Any:
        """The JSON answer of one request, paced, or ``SearchError`` saying why not."""
        response = await self._send(method, f"{self.url}{path}", **request)
        if response.status_code == 429:
            raise self._paused(response)
        if response.status_code in (401, 403):
            raise SearchError(f"the API key was refused (HTTP {response.status_code})")
        if response.status_code != 200:
            raise SearchError(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise SearchError(f"the answer is not {self.name} JSON") from None

    async def search(
        self, query: str, max_results: int, *, filters: SearchFilters | None = None
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


class BraveSearch(_KeyedSearch):
    """The Brave Search API: ``GET /res/v1/web/search`` with ``X-Subscription-Token``."""

    name = "brave"
    base_url = "https://api.search.brave.com"

    async def search(
        self, query: str, max_results: int, *, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        count = str(min(max_results, 20))  # 20 at most per page
        params = {"q": with_sites(query, filters), "count": count}
        if filters and filters.recency:
            params["freshness"] = BRAVE_FRESHNESS[filters.recency]
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
        self, query: str, max_results: int, *, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        body: dict[str, Any] = {"query": query, "max_results": min(max_results, 20)}
        if filters and filters.recency:
            body["time_range"] = filters.recency  # day, week, month, year
        if filters and filters.include_domains:
            body["include_domains"] = _hosts(filters.include_domains)
        if filters and filters.exclude_domains:
            body["exclude_domains"] = _hosts(filters.exclude_domains)
        headers = {"authorization": f"Bearer {self._key.get_secret_value()}"}
        answer = await self._call("POST", "/search", json=body, headers=headers)
        rows = answer.get("results") if isinstance(answer, dict) else None
        return self._hits(rows, "content", max_results)


class ExaSearch(_KeyedSearch):
    """Exa: ``POST /search`` with ``x-api-key`` and a JSON body."""

    name = "exa"
    base_url = "https://api.exa.ai"

    async def search(
        self, query: str, max_results: int, *, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        body: dict[str, Any] = {"query": query, "numResults": min(max_results, 100), "type": "auto"}
        if filters and filters.recency:
            since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
                days=RECENCY_DAYS[filters.recency]
            )
            body["startPublishedDate"] = since.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if filters and filters.include_domains:
            body["includeDomains"] = _hosts(filters.include_domains)
        if filters and filters.exclude_domains:
            body["excludeDomains"] = _hosts(filters.exclude_domains)
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
        self.takes_filters = True

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
        self, query: str, max_results: int, *, filters: SearchFilters | None = None
    ) -> list[SearchHit]:
        causes: list[str] = []
        for provider in self.providers:
            if filters and filters.recency and not getattr(provider, "supports_recency", False):
                continue
            rate = getattr(provider, "rate", None)
            if isinstance(rate, RateLimit) and rate.paused_for() > 0:
                causes.append(
                    f"{_label(provider)}: {RATE_LIMITED} (retry after {rate.paused_for():.0f} s)"
                )
                continue
            try:
                return await search_with(provider, query, max_results, filters)
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


@dataclass(frozen=True)
class SearchStatus:
    """What asking a configured search provider once found (``apex-mcp doctor``): ``ok`` is
    None for one not asked, ``detail`` says what it answered, or why not and what to check."""

    name: str
    label: str
    ok: bool | None
    detail: str


async def check_search(config: EngineConfig) -> list[SearchStatus]:
    """Each search provider of ``config`` asked one query, in the order they are tried.
    DuckDuckGo is not asked: it has no key or address to get wrong, only the network."""
    try:
        chain = build_providers(
            config.search_provider,
            config.searxng_url,
            requests_per_second=config.search_requests_per_second,
            api_keys=config.search_api_keys,
        )
    except ValueError as error:
        return [SearchStatus(config.search_provider, config.search_provider, False, str(error))]
    providers = chain[0].providers if isinstance(chain[0], FallbackSearch) else chain
    statuses = []
    for provider in providers:
        label = _label(provider)
        if isinstance(provider, DuckDuckGoSearch):
            statuses.append(SearchStatus(provider.name, label, None, "keyless: not asked here"))
            continue
        try:
            with anyio.fail_after(DOCTOR_SEARCH_SECONDS):
                hits = await provider.search("apex-mcp", 1)
            statuses.append(SearchStatus(provider.name, label, True, f"{len(hits)} hit(s)"))
        except Exception as error:  # any failure is the answer
            cause = failure_cause(error)  # a TimeoutError of fail_after: "timed out"
            remedy = getattr(provider, "remedy", None) or DEFAULT_REMEDY
            statuses.append(SearchStatus(provider.name, label, False, f"{cause}: {remedy}"))
        finally:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
    return statuses


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


def describe_error(exc: BaseException) -> str:
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
