"""Web retrieval benchmark: where the time of a retrieval goes, and how fast extraction is.

    python -m bench.retrieval [--runs 10] [--rounds 5]

Serves ten article pages (30-250 KB of HTML each, the article amid menus, ads and banners)
and a SearXNG JSON endpoint on 127.0.0.1, then runs retrievals for 5 results (3 miners) and
prints the median and worst of each phase from ``WebRetriever.retrieve``'s ``timings``:
search and fetch are wall time (fetch includes extracting each page as it arrives); extract
and rank are CPU time spent in them, summed over the pages of a call. Before that it extracts
the ten pages in a loop, in this thread, for the extraction throughput. Nothing leaves the
machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import anyio

from apex_mcp.apex.models import WebRetrievalRequest
from apex_mcp.engine.ranking import best_passage, split_passages
from apex_mcp.engine.retrieval import WebRetriever, extract_content
from apex_mcp.engine.search import SearchHit, SearxngSearch
from tests.fakes.web import (
    ARTICLES,
    FakeSearxng,
    FakeWeb,
    Page,
    article_html,
    serve_searxng,
    serve_web,
)

PAGES = 10
QUERY = "how do honeybees tell other bees the direction of food"
PHASES = ("search", "fetch", "extract", "rank", "total")


def pages() -> dict[str, str]:
    """Ten pages, each article twice with more or less clutter around it."""
    articles = list(ARTICLES.values())
    return {
        f"/page/{i}": article_html(articles[i % len(articles)], padding=100 + 100 * i)
        for i in range(PAGES)
    }


async def run_retrievals(searxng: str, runs: int) -> list[dict[str, float]]:
    results: list[dict[str, float]] = []
    request = WebRetrievalRequest(search_query=QUERY, n_miners=3, n_results=5)
    async with WebRetriever([SearxngSearch(searxng)], allow_private_addresses=True) as retriever:
        for _ in range(runs):
            timings: dict[str, float] = {}
            response = await retriever.retrieve(request, timings=timings)
            if len(response.results) != 5:
                raise SystemExit(f"expected 5 results, got {len(response.results)}")
            results.append(timings)
    return results


def extraction_throughput(html: list[str], rounds: int) -> tuple[float, float, float, float]:
    """The first call (it loads trafilatura) in seconds, then pages per second and MB per
    second of extract_content, and pages per second of extract + split + rank."""
    started = time.perf_counter()
    extract_content(html[0])
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        for page in html:
            extract_content(page)
    extract_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        for page in html:
            best_passage(split_passages(extract_content(page)), QUERY)
    full_seconds = time.perf_counter() - started
    count = rounds * len(html)
    megabytes = rounds * sum(len(p.encode()) for p in html) / 1e6
    return first, count / extract_seconds, megabytes / extract_seconds, count / full_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="retrievals to time (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="extraction rounds (default 5)")
    args = parser.parse_args()

    html = pages()
    web = FakeWeb({path: Page(body) for path, body in html.items()})
    print(f"command: python -m bench.retrieval {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()}"
    )
    sizes = [len(b.encode()) // 1000 for b in html.values()]
    print(f"pages: {PAGES}, {min(sizes)}-{max(sizes)} KB of HTML, served on 127.0.0.1")

    # Extraction first, alone: the retrievals leave abandoned extractions running a moment.
    first, per_second, mb_per_second, full_per_second = extraction_throughput(
        list(html.values()), args.rounds
    )
    with serve_web(web) as base:
        search = FakeSearxng(hits=[SearchHit(url=f"{base}{path}") for path in html])
        with serve_searxng(search) as searxng:
            timings = anyio.run(run_retrievals, searxng, args.runs)

    print(f"\nretrieval, n_results 5, n_miners 3, {len(timings)} runs (ms):")
    print(f"  {'phase':<8} {'median':>8} {'max':>8}")
    for phase in PHASES:
        values = [t[phase] * 1000 for t in timings]
        print(f"  {phase:<8} {statistics.median(values):8.1f} {max(values):8.1f}")
    print("  (search, fetch, total: wall time; extract, rank: CPU time summed over the pages)")

    print(f"\nextraction, one thread, {args.rounds * PAGES} pages:")
    print(f"  first call (loads trafilatura)  {first * 1000:7.1f} ms")
    print(f"  extract_content                 {per_second:7.1f} pages/s ({mb_per_second:.1f} MB/s)")
    print(f"  + split and rank                {full_per_second:7.1f} pages/s")


if __name__ == "__main__":
    main()
