"""Retrieval quality: does ``web_search`` return the page that answers, with the passage that
answers, for each ranking method, side by side.

    python -m bench.quality [--methods provider,bm25,embedding,fusion] [--rounds 3] [--verbose]
                            [--set main|heldout|all]

Serves the quality set (``bench/quality/questions.py``: 31 questions, each with its answering
page and four hard distractors, amid boilerplate) and a SearXNG that returns each question's
five pages in a fixed shuffled order, all on 127.0.0.1. ``--set heldout`` serves the 12
questions of ``bench/quality/heldout.py`` instead, which the ranking was not tuned on; ``all``
both (the held-out pages then in another provider order, seeded by position). Then, per
method, runs every question through ``WebRetriever.retrieve`` (one search, 5 results) and
reports:

- recall@1 and recall@3: the answering page is among the first 1 or 3 results;
- MRR: the mean of 1 / the answering page's rank (0 when it is not returned);
- passage hit: the answering page's ``relevant`` holds the answer;
- answer@3: that, and the page is among the first 3 (what a call for 3 results delivers);
- boilerplate: the share of returned pages whose ``content`` holds a piece of the clutter;
- answer size: the mean characters of ``relevant``, and of the first three pages' ``content``;
- time: the median and worst ``total`` of a retrieval, in ms.

The methods run in turn within each round (the order rotating), so the timings share the
machine's load. Quality numbers do not vary between rounds; timings do.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field

import anyio

from apex_mcp.apex.models import WebRetrievalRequest
from apex_mcp.engine.retrieval import WebRetriever
from apex_mcp.engine.search import SearxngSearch
from tests.servers import serve_asgi

from .heldout import HELDOUT
from .questions import QUESTIONS, Question
from .site import BOILERPLATE, QualitySite

METHODS = "provider,bm25,embedding,fusion"
SETS: dict[str, list[Question]] = {
    "main": QUESTIONS,
    "heldout": HELDOUT,
    "all": QUESTIONS + HELDOUT,
}


@dataclass
class Score:
    ranks: list[int | None] = field(default_factory=list)  # the answering page's, 1-based
    hits: list[bool] = field(default_factory=list)
    leaked: list[bool] = field(default_factory=list)  # per returned page
    relevant_chars: list[int] = field(default_factory=list)
    top3_chars: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # seconds, every round

    def recall(self, n: int) -> float:
        return sum(1 for r in self.ranks if r is not None and r <= n) / len(self.ranks)

    def delivered(self, n: int) -> float:
        """The share of questions whose answer is in the ``relevant`` of the first n pages."""
        pairs = zip(self.ranks, self.hits, strict=True)
        return sum(1 for r, hit in pairs if hit and r is not None and r <= n) / len(self.ranks)

    def mrr(self) -> float:
        return sum(1 / r for r in self.ranks if r is not None) / len(self.ranks)


async def run_method(site: QualitySite, searxng: str, method: str, score: Score) -> None:
    first_round = not score.ranks
    async with WebRetriever(
        [SearxngSearch(searxng)], allow_private_addresses=True, ranking=method
    ) as retriever:
        for question in site.questions:
            request = WebRetrievalRequest(
                search_query=question.query, n_miners=1, n_results=5, max_response_time=60
            )
            timings: dict[str, float] = {}
            response = await retriever.retrieve(request, timings=timings)
            score.times.append(timings["total"])
            if not first_round:
                continue
            answer_path = next(c.path for c in site.by_query[question.query] if c.kind == "answer")
            urls = [r.url for r in response.results]
            rank = next((i for i, url in enumerate(urls, 1) if url.endswith(answer_path)), None)
            score.ranks.append(rank)
            answering = response.results[rank - 1] if rank else None
            score.hits.append(answering is not None and question.answer in answering.relevant)
            for result in response.results:
                score.leaked.append(any(b in result.content for b in BOILERPLATE))
                score.relevant_chars.append(len(result.relevant))
            score.top3_chars.append(sum(len(r.content) for r in response.results[:3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=METHODS, help="rankings to compare")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, for the timings")
    parser.add_argument("--verbose", action="store_true", help="each question's ranks")
    parser.add_argument("--set", choices=SETS, default="main", help="which questions to run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    print(f"command: python -m bench.quality {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()}"
    )
    questions = SETS[args.set]
    print(
        f"set: {args.set}, {len(questions)} questions, 5 pages each, one search, 5 results per call"
    )

    site = QualitySite(questions)
    scores = {m: Score() for m in methods}
    with serve_asgi(site) as base:
        site.base = base

        async def rounds() -> None:
            for r in range(args.rounds):
                turn = methods[r % len(methods) :] + methods[: r % len(methods)]
                for method in turn:
                    await run_method(site, base, method, scores[method])

        anyio.run(rounds)

    print()
    header = (
        f"{'method':<10} {'recall@1':>8} {'recall@3':>8} {'MRR':>6} {'passage':>8} {'answer@3':>8} "
        f"{'boilerpl.':>9} {'relevant':>8} {'top-3':>7} {'time p50':>9} {'max':>7}"
    )
    print(header)
    for method, s in scores.items():
        times = [t * 1000 for t in s.times]
        leaked = sum(s.leaked) / len(s.leaked) if s.leaked else 0.0
        print(
            f"{method:<10} {s.recall(1):8.2f} {s.recall(3):8.2f} {s.mrr():6.2f} "
            f"{sum(s.hits) / len(s.hits):8.2f} {s.delivered(3):8.2f} {leaked:9.2f} "
            f"{statistics.mean(s.relevant_chars):8.0f} {statistics.mean(s.top3_chars):7.0f} "
            f"{statistics.median(times):7.0f}ms {max(times):5.0f}ms"
        )
    print(
        "(passage: the answering page's relevant holds the answer; answer@3: that page is among"
        "\n the first 3 too; boilerplate: share of pages whose content holds clutter; relevant,"
        "\n top-3: mean characters; time: per retrieval)"
    )
    if args.verbose:
        print("\nthe answering page's rank (- not returned), * passage hit:")
        print(f"{'question':<60} " + " ".join(f"{m:>10}" for m in methods))
        for i, question in enumerate(questions):
            cells = []
            for m in methods:
                rank, hit = scores[m].ranks[i], scores[m].hits[i]
                cells.append(f"{(str(rank) if rank else '-') + ('*' if hit else ' '):>10}")
            print(f"{question.query[:60]:<60} " + " ".join(cells))


if __name__ == "__main__":
    main()
