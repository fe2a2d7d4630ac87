"""The ``web_search`` tool: Apex web retrieval, trimmed to what an assistant reads."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from ...apex import models as m
from ...apex.client import FiltersSearch
from ...apex.models import Recency
from ..outputs import SearchResult, SearchResults
from ..state import AppState
from ..views import clip
from . import apex, apex_errors, reply, tool

RELEVANT_CHARS = 800  # a passage (SN1 cut pages into ~500-character ones), not a page


@tool("search", "Search the web", read_only=True, idempotent=True, open_world=True)
async def web_search(
    ctx: Context[AppState],
    search_query: Annotated[str, Field(min_length=1, max_length=2000)],
    n_miners: Annotated[int, Field(ge=1, le=10, description="how many searches to fan out")] = 3,
    n_results: Annotated[int, Field(ge=1, le=20, description="how many pages at most")] = 1,
    max_response_time: Annotated[int, Field(ge=1, le=120, description="seconds")] = 20,
    include_content: Annotated[
        bool, Field(description="also return each page's main text")
    ] = False,
    max_content_chars: Annotated[
        int, Field(ge=100, le=100_000, description="cut each page's text to this")
    ] = 4000,
    include_domains: Annotated[
        list[str] | None, Field(max_length=50, description="only these; *.x.com: subdomains")
    ] = None,
    exclude_domains: Annotated[list[str] | None, Field(max_length=50)] = None,
    recency: Annotated[Recency | None, Field(description="published within")] = None,
) -> Annotated[CallToolResult, SearchResults]:
    """Search the web and read the pages found. Returns, per page, its url, title and the
    passage most relevant to the query; the page's main text only with include_content."""
    request = m.WebRetrievalRequest(
        search_query=search_query,
        n_miners=n_miners,
        n_results=n_results,
        max_response_time=max_response_time,
    )
    try:
        filters = m.SearchFilters.of(include_domains, exclude_domains, recency)
    except ValueError as e:
        raise ToolError(str(e)) from None
    with apex_errors():
        client = await apex(ctx)
        if filters and isinstance(client, FiltersSearch):
            response = await client.web_retrieval_filtered(request, filters)
        elif filters.recency:
            raise ToolError(
                "recency needs the embedded engine: an Apex server cannot bound the age of "
                "pages (leave recency out)"
            )
        else:
            response = await client.web_retrieval(request, timeout=max_response_time + 15)
    # Enforced here too: a remote Apex server knows nothing of the domains.
    kept = [r for r in response.results if filters.allows(r.url)] if filters else response.results
    results = merge(kept, include_content, max_content_chars)
    output = SearchResults(search_query=search_query, results=results)
    if not results:
        return reply(output, f"No pages found for {search_query!r}.")
    lines = []
    for i, result in enumerate(results, 1):
        lines.append(f"[{i}] {result.title or result.url}\n{result.url}\n{result.relevant}")
        if result.content:
            lines.append(result.content)
    return reply(output, "\n\n".join(lines))


def merge(
    raw: list[m.WebSearchResult], include_content: bool, max_content_chars: int
) -> list[SearchResult]:
    """Drop results without a url, merge duplicates (same page, other spelling), trim."""
    seen: dict[str, SearchResult] = {}
    for item in raw:
        url = item.url.strip()
        if not url:
            continue
        key = _page_key(url)
        title, body = _split_title(item.content)
        relevant = clip((item.relevant or body).strip(), RELEVANT_CHARS)
        if key in seen:
            known = seen[key]
            if relevant and relevant not in known.relevant:  # a second passage of the same page
                known.relevant = clip(f"{known.relevant}\n…\n{relevant}", RELEVANT_CHARS * 2)
            continue
        seen[key] = SearchResult(
            url=url,
            title=title,
            relevant=relevant,
            content=clip(item.content, max_content_chars) if include_content else None,
        )
    return list(seen.values())


def _page_key(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def _split_title(content: str) -> tuple[str, str]:
    # Apex content starts with the page's title on a line of its own.
    first, _, rest = content.strip().partition("\n")
    if first and len(first) <= 150 and rest:
        return first.strip(), rest
    return "", content
