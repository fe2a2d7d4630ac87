"""Deep research: the orchestrator and the job runner, against real SQLite files and a fake
OpenAI-compatible miner on 127.0.0.1 whose answers follow the prompts (plan, notes, report).

Most tests use an in-process retriever with fixed pages, so that they are about research; the
end-to-end ones use the real WebRetriever on fake search and pages, in-process, through the
gateway, and in a gateway process that is killed mid-job.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from apex_mcp.apex import models as m
from apex_mcp.apex.client import FiltersResearch
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.config import MinerSettings, Settings
from apex_mcp.engine import (
    DEFAULT_USER,
    LocalApex,
    MinerConfig,
    MinerPool,
    ResearchLimits,
    jobs,
    researcher,
)
from apex_mcp.engine.jobs import ResearchRunner
from apex_mcp.engine.researcher import parse_plan
from apex_mcp.engine.store import Job, JobStatus, SqliteStore
from apex_mcp.gateway import create_gateway_app
from apex_mcp.serving import engine_config
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.servers import free_port, gateway_process, serve_asgi, wait_exit

pytestmark = pytest.mark.anyio

T = TypeVar("T")
QUESTION = "How do honeybees decide where to build a new nest?"
STATUSES: list[JobStatus] = ["pending", "running", "completed", "failed", "cancelled"]


# --- helpers ---------------------------------------------------------------------------------


async def wait_for(
    check: Callable[[], Awaitable[T | None]], what: str, *, deadline: float = 30.0
) -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``deadline``."""
    give_up = anyio.current_time() + deadline
    while True:
        value = await check()
        if value:
            return value
        if anyio.current_time() > give_up:
            pytest.fail(f"gave up after {deadline:g} s waiting for {what}")
        await anyio.sleep(0.02)


def texts(job: m.GetDeepResearcherJobResponse) -> list[str]:
    """The content of each chunk, checking the Apex chunk format on the way."""
    contents = []
    for chunk in job.result:
        deltas = json.loads(chunk.chunk)
        assert isinstance(deltas, list) and len(deltas) == 1 and set(deltas[0]) == {"content"}
        contents.append(deltas[0]["content"])
    return contents


def ask(text: str = QUESTION, **fields: Any) -> m.ChatCompletionRequest:
    return m.ChatCompletionRequest(messages=[m.ChatMessage(role="user", content=text)], **fields)


def page(url: str, title: str, text: str) -> m.WebSearchResult:
    return m.WebSearchResult(url=url, content=f"{title}\n{text}", relevant=text[:80])


WEB = {
    "swarm scouts": [
        page("https://bees.example/scouts", "Scout bees", "Scouts inspect cavities and dance."),
        page("https://bees.example/quorum", "Quorum sensing", "A quorum of scouts decides."),
    ],
    "waggle dance": [
        page("https://bees.example/quorum", "Quorum sensing", "A quorum of scouts decides."),
        page("https://bees.example/dance", "The waggle dance", "Dances advertise a site."),
    ],
}


@dataclass
class FakeRetriever:
    """Search results by query; ``calls`` records the requests."""

    web: dict[str, list[m.WebSearchResult]] = field(default_factory=lambda: dict(WEB))
    fail: bool = False
    before: Callable[[], None] | None = None  # called at each search
    calls: list[m.WebRetrievalRequest] = field(default_factory=list)
    filters: list[m.SearchFilters | None] = field(default_factory=list)  # of each call
    kept: dict[str, str] = field(default_factory=dict)  # pages read before, by URL

    async def kept_page(self, url: str) -> str | None:
        return self.kept.get(url)

    async def retrieve(
        self, request: m.WebRetrievalRequest, *, filters: m.SearchFilters | None = None
    ) -> m.WebRetrievalResponse:
        self.calls.append(request)
        self.filters.append(filters)
        if self.before is not None:
            self.before()
        if self.fail:
            raise ApexError(Code.UNAVAILABLE, "the search engine is down")
        results = self.web.get(request.search_query, [])
        return m.WebRetrievalResponse(results=results[: request.n_results or 1])


_SOURCE_LINE = re.compile(r"^\[(\d+)\] (.+) \((\S+)\)$", re.MULTILINE)


@dataclass
class Script:
    """The fake miner's ``reply``: answers plan, notes and report prompts like a good model.

    ``plan`` is the plan's answer. A kind listed in ``hold`` waits until ``release()``;
    ``in_flight`` / ``most_in_flight`` count plan requests being answered.
    """

    plan: str = '["swarm scouts", "waggle dance"]'
    report: str | None = None  # the report's answer, instead of one citing every source
    hold: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    _open: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self._open.set()

    async def __call__(self, body: dict[str, Any]) -> str:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        kind = next(
            k
            for k, prompt in (
                ("plan", researcher.PLAN_PROMPT.format(count=5)),
                ("notes", researcher.NOTES_PROMPT),
                ("report", researcher.REPORT_PROMPT),
                ("report", researcher.NO_SOURCES_PROMPT),
            )
            if system == prompt
        )
        self.seen.append(kind)
        if kind == "plan":
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            while kind in self.hold and not self._open.is_set():
                await asyncio.sleep(0.01)
        finally:
            if kind == "plan":
                self.in_flight -= 1
        if kind == "plan":
            return self.plan
        if kind == "notes":
            url = re.search(r"^URL: (\S+)$", user, re.MULTILINE)
            return f"- noted from {url.group(1) if url else '?'}"
        if self.report is not None:
            return self.report
        # One claim per source, in the source's words (its title): a supported citation.
        cited = [f"{title} [{n}]." for n, title, _ in _SOURCE_LINE.findall(user)]
        # A model that lists its sources anyway: the runner replaces the list with its own.
        return "# Nest choice\n\n" + " ".join(cited) + "\n\n## References\n- made up"


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def fake(script: Script) -> Iterator[tuple[FakeOpenAI, str]]:
    miner = FakeOpenAI(models=["m1", "m2"], reply=script)
    with serve_openai(miner) as url:
        yield miner, url


@asynccontextmanager
async def engine(
    db: Path,
    miner_url: str,
    retriever: researcher.Retriever,
    limits: ResearchLimits | None = None,
    *,
    miner_timeout: float = 30,
) -> AsyncIterator[LocalApex]:
    """A LocalApex with a research runner over ``retriever`` (what LocalApex.open builds)."""
    limits = limits or ResearchLimits(heartbeat_seconds=0.2)
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(SqliteStore(db))
        miners = await stack.enter_async_context(
            MinerPool(
                [MinerConfig(name="fake", base_url=miner_url, timeout=miner_timeout)],
                discover_local=False,
            )
        )
        runner = await stack.enter_async_context(ResearchRunner(store, miners, retriever, limits))
        yield LocalApex(store, miners, user_id="alice", retriever=retriever, research=runner)


async def get(apex: LocalApex, job_id: str) -> m.GetDeepResearcherJobResponse:
    return await apex.get_deep_researcher_job(m.GetDeepResearcherJobRequest(job_id=job_id))


async def status_is(apex: LocalApex, job_id: str, *statuses: str) -> m.GetDeepResearcherJobResponse:
    job = await get(apex, job_id)
    assert job.status in (*statuses, "pending", "running"), (job.status, job.error)
    return await wait_for(
        lambda: _when(get(apex, job_id), lambda j: j.status in statuses),
        f"job {job_id} to be {' or '.join(statuses)}",
    )


async def _when(
    value: Awaitable[m.GetDeepResearcherJobResponse],
    test: Callable[[m.GetDeepResearcherJobResponse], bool],
) -> m.GetDeepResearcherJobResponse | None:
    got = await value
    return got if test(got) else None


async def code_of(call: Awaitable[Any]) -> Code:
    with pytest.raises(ApexError) as info:
        await call
    return info.value.code


# --- the plan -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('["a b", "c"]', ["a b", "c"]),
        ('```json\n["a", "b"]\n```', ["a", "b"]),
        ('Here is my plan: ["a", "b"] — good luck', ["a", "b"]),
        ('{"queries": ["a", "b"]}', ["a", "b"]),
        ('[{"query": "a"}, {"query": "b"}]', ["a", "b"]),
        ("1. first search\n2) second search\n- third", ["first search", "second search", "third"]),
        ('["a", "A", "  a  ", "", 3, null, "b"]', ["a", "b"]),
        ('["1", "2", "3", "4", "5", "6", "7"]', ["1", "2", "3", "4", "5"]),
        ("I cannot help with that.", [QUESTION]),
        ("", [QUESTION]),
        ("[]", [QUESTION]),
        ('{"answer": 42}', [QUESTION]),
        ("[unclosed", [QUESTION]),
    ],
)
def test_a_plan_is_read_from_what_models_answer(answer: str, expected: list[str]) -> None:
    assert parse_plan(answer, QUESTION, 5) == expected


def test_a_search_is_one_line_of_bounded_length() -> None:
    (query,) = parse_plan(json.dumps(["a\n  b " + "x" * 1000]), QUESTION, 5)
    assert query.startswith("a b x") and len(query) == researcher.MAX_QUERY_CHARS


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        ("Text [1].\n\n## References\n- made up", "Text [1]."),
        ("Text [1].\n\n**Sources:**\n1. made up", "Text [1]."),
        ("Text [1].\n\n### Sources", "Text [1]."),
        ("## Sources of nectar\nFlowers [1].\n\n## Summary\nBees.", None),
        ("Bees use many sources [1].", None),
    ],
)
def test_the_models_own_list_of_sources_gives_way_to_ours(body: str, kept: str | None) -> None:
    assert researcher._without_sources_section(body) == (body if kept is None else kept)


# --- a whole job ----------------------------------------------------------------------------


async def test_a_job_plans_searches_reads_and_writes_a_cited_report(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    miner, url = fake
    retriever = FakeRetriever()
    script.hold = {"plan"}
    async with engine(tmp_path / "apex.db", url, retriever) as apex:
        submitted = await apex.submit_deep_researcher_job(
            ask(model="m2", seed=42, sampling_parameters=m.SamplingParameters(top_p=0.5))
        )
        assert submitted.status == "pending"
        assert submitted.created_at == submitted.updated_at and submitted.created_at.endswith("Z")
        await wait_for(lambda: _true(script.in_flight == 1), "the job to plan")
        running = await get(apex, submitted.job_id)
        assert running.status == "running"
        assert texts(running) == ["## Generating Research Plan\n"]
        script.release()
        done = await status_is(apex, submitted.job_id, "completed")

    assert [c.seq_id for c in done.result] == list(range(1, len(done.result) + 1))
    assert done.error is None and done.created_at == submitted.created_at
    chunks = texts(done)
    report = chunks[-1]
    assert chunks[:-1] == [
        "## Generating Research Plan\n",
        "1. swarm scouts\n2. waggle dance\n",
        "## Searching: swarm scouts\n",
        "### Reading: Scout bees (https://bees.example/scouts)\n",
        "- noted from https://bees.example/scouts\n",
        "### Reading: Quorum sensing (https://bees.example/quorum)\n",
        "- noted from https://bees.example/quorum\n",
        "## Searching: waggle dance\n",
        # The quorum page was read already: one source, one number.
        "### Reading: The waggle dance (https://bees.example/dance)\n",
        "- noted from https://bees.example/dance\n",
        "## Drafting report\n",
    ]
    assert report == (
        "# Nest choice\n\nScout bees [1]. Quorum sensing [2]. The waggle dance [3].\n\n"
        "## Sources\n\n"
        "- [1] [Scout bees](https://bees.example/scouts)\n"
        "  > Scout bees Scouts inspect cavities and dance.\n"
        "- [2] [Quorum sensing](https://bees.example/quorum)\n"
        "  > Quorum sensing A quorum of scouts decides.\n"
        "- [3] [The waggle dance](https://bees.example/dance)\n"
        "  > The waggle dance Dances advertise a site.\n"
    )
    assert [r.search_query for r in retriever.calls] == ["swarm scouts", "waggle dance"]

    # Every miner call carries the request's model, seed and sampling.
    assert script.seen == ["plan", "notes", "notes", "notes", "report"]
    for body in miner.requests:
        assert (body["model"], body["seed"], body["top_p"]) == ("m2", 42, 0.5)
        assert body["temperature"] == 0.0  # do_sample false is greedy


async def test_deep_research_samples_as_the_sdk_does_by_default(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    miner, url = fake
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        await status_is(apex, job.job_id, "completed")
    for body in miner.requests:
        assert (body["max_tokens"], body["temperature"], body["top_p"]) == (8192, 0.0, 0.95)
        assert "seed" not in body and "model" not in body  # the miner's defaults


async def test_sources_are_bounded_per_job(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    retriever = FakeRetriever()
    limits = ResearchLimits(max_sources=2, heartbeat_seconds=0.2)
    async with engine(tmp_path / "apex.db", url, retriever, limits) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        done = await status_is(apex, job.job_id, "completed")
    chunks = texts(done)
    assert sum(c.startswith("### Reading:") for c in chunks) == 2
    assert "## Searching: waggle dance\n" not in chunks  # no room left for it
    assert "- [2] [Quorum sensing](https://bees.example/quorum)\n  > " in chunks[-1]
    assert "[3]" not in chunks[-1]
    assert [r.n_results for r in retriever.calls] == [2]


async def test_a_model_that_cannot_plan_leaves_the_question_as_the_search(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.plan = "Sure! I would search the web for bees."
    retriever = FakeRetriever(
        web={QUESTION: [page("https://bees.example/q", "Quorum", "Quorum answer.")]}
    )
    async with engine(tmp_path / "apex.db", url, retriever) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        done = await status_is(apex, job.job_id, "completed")
    assert texts(done)[1:3] == [f"1. {QUESTION}\n", f"## Searching: {QUESTION}\n"]
    assert "[1] [Quorum](https://bees.example/q)" in texts(done)[-1]


FIVE_SOURCES = {
    "swarm scouts": [
        page("https://bees.example/scouts", "Scout bees", "Scouts inspect cavities and dance."),
        page("https://bees.example/quorum", "Quorum sensing", "A quorum of scouts decides."),
        page("https://bees.example/dance", "The waggle dance", "Dances advertise a site."),
    ],
    "waggle dance": [
        page("https://bees.example/wax", "Wax", "Young workers make wax from eight glands."),
        page("https://bees.example/honey", "Honey", "Honey is nectar dried below 18% water."),
    ],
}

MADE_UP = (
    "# Nest choice\n\n"
    "Scouts inspect cavities and dance [1]. "
    "A quorum of scouts decides [1]. "  # the wrong source: it is the second's claim
    "Queens live for five years [7]. "  # a number of no source, and a claim of none
    "The colony flies off together, as [a study](https://made.up/study) found [3]. "
    "More at https://made.up/raw and <https://made.up/other>. "
    "Dances advertise a site [3][2]. "  # one right, one wrong
    "See [the scouts page](https://bees.example/scouts).\n"
)


async def test_the_stored_report_keeps_only_citations_its_sources_support(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.report = MADE_UP
    async with engine(tmp_path / "apex.db", url, FakeRetriever(web=FIVE_SOURCES)) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        done = await status_is(apex, job.job_id, "completed")
        stored = await get(apex, job.job_id)  # as a later reader gets it from the store
    report = texts(stored)[-1]
    assert report == texts(done)[-1]
    body, sources = report.split("\n## Sources\n")

    assert "Scouts inspect cavities and dance [1]." in body
    assert "A quorum of scouts decides [2]." in body  # moved to the source that says it
    assert "Queens live for five years." in body  # kept, uncited: no source says it
    assert "[7]" not in report
    assert "The colony flies off together, as a study found." in body  # [3] does not say it
    assert "Dances advertise a site [3]." in body
    assert "made.up" not in report  # no page the job did not read
    assert "[the scouts page](https://bees.example/scouts)" in body  # a page it did read
    read = {r.url for results in FIVE_SOURCES.values() for r in results}
    assert set(re.findall(r"https?://[^\s)>]+", report)) <= read
    assert {int(n) for n in re.findall(r"\[(\d+)\]", report)} == {1, 2, 3}

    # Each source cited, with the passage that supports what cites it; the others not.
    assert sources == (
        "\n- [1] [Scout bees](https://bees.example/scouts)\n"
        "  > Scout bees Scouts inspect cavities and dance.\n"
        "- [2] [Quorum sensing](https://bees.example/quorum)\n"
        "  > Quorum sensing A quorum of scouts decides.\n"
        "- [3] [The waggle dance](https://bees.example/dance)\n"
        "  > The waggle dance Dances advertise a site.\n"
    )


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Scouts inspect cavities [1].", "Scouts inspect cavities [1]."),
        ("Scouts inspect cavities. [1]", "Scouts inspect cavities. [1]"),
        ("Scouts inspect cavities [1, 2].", "Scouts inspect cavities [1]."),
        ("Scouts inspect cavities [2].", "Scouts inspect cavities [1]."),
        ("Something else entirely [1].", "Something else entirely."),
        ("Scouts [1] inspect cavities [9].", "Scouts [1] inspect cavities."),
        ("No citation here.", "No citation here."),
    ],
)
def test_a_citation_is_verified_against_the_cited_text(sentence: str, expected: str) -> None:
    sources = [
        researcher.Source(
            1, "https://a.example/", "Scouts", "", "Scouts\nScouts inspect cavities."
        ),
        researcher.Source(2, "https://b.example/", "Wax", "", "Wax\nWax comes from glands."),
    ]
    assert researcher.verify_citations(sentence, sources)[0] == expected


async def test_with_no_sources_the_report_says_so(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    async with engine(tmp_path / "apex.db", url, FakeRetriever(web={})) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        done = await status_is(apex, job.job_id, "completed")
    assert script.seen == ["plan", "report"]
    assert "## Sources" not in texts(done)[-1]


async def test_a_job_fails_with_a_reason_when_every_search_fails(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    async with engine(tmp_path / "apex.db", url, FakeRetriever(fail=True)) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        failed = await status_is(apex, job.job_id, "failed")
    # The hint names the part that failed, search, and its settings (the retriever's own
    # advice when it gives some): never the remote Apex server's APEX_BASE_URL.
    assert failed.error == (
        "every web search failed: the search engine is down (check the web search: the "
        "network, APEX_SEARCH_PROVIDER and APEX_SEARXNG_URL)"
    )
    assert "The search failed: the search engine is down\n" in texts(failed)


async def test_a_job_fails_with_a_reason_when_no_miner_answers(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    miner, url = fake
    miner.fail(500)
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        failed = await status_is(apex, job.job_id, "failed")
    assert failed.error == (
        "no miner could answer: fake: HTTP 500 (fake failure 500) (check the miners and their "
        "keys (APEX_MINER, APEX_MINER_API_KEY and APEX_MINER_MODEL, or [[miners]] in the "
        "config file): `apex-mcp doctor` tries each)"
    )
    assert texts(failed) == ["## Generating Research Plan\n"]


async def test_failed_notes_fall_back_to_the_best_passage(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    miner, url = fake
    retriever = FakeRetriever(
        web={"swarm scouts": WEB["swarm scouts"][:1]},
        before=lambda: miner.fail(500, times=1),  # the next request: the notes
    )
    script.plan = '["swarm scouts"]'
    async with engine(tmp_path / "apex.db", url, retriever) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        done = await status_is(apex, job.job_id, "completed")
    assert "Scouts inspect cavities and dance.\n" in texts(done)


async def _true(value: bool) -> bool:
    return value


# --- the runner -----------------------------------------------------------------------------


async def test_requests_are_checked_at_submit_and_jobs_are_per_user(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        for bad in (
            m.ChatCompletionRequest(),
            m.ChatCompletionRequest(messages=[m.ChatMessage(role="system", content="be brief")]),
            ask("   "),
        ):
            assert await code_of(apex.submit_deep_researcher_job(bad)) is Code.INVALID_ARGUMENT
        job = await apex.submit_deep_researcher_job(ask())
        bob = apex.for_user("bob")
        assert await code_of(get(bob, job.job_id)) is Code.NOT_FOUND
        assert await code_of(bob.cancel_deep_researcher_job(job.job_id)) is Code.NOT_FOUND
        assert await code_of(get(apex, "not-a-uuid")) is Code.INVALID_ARGUMENT
        unknown = "6eb69148-0000-4000-8000-b6dd81120377"
        assert await code_of(get(apex, unknown)) is Code.NOT_FOUND
        await status_is(apex, job.job_id, "completed")


async def test_a_cancelled_job_stops_at_once_and_takes_no_more_chunks(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.hold = {"notes"}
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        assert apex.research is not None
        job = await apex.submit_deep_researcher_job(ask())
        await wait_for(lambda: _true("notes" in script.seen), "the job to read a source")
        cancelled = await apex.cancel_deep_researcher_job(job.job_id)
        assert cancelled.status == "cancelled" and cancelled.error is None
        runner = apex.research
        await wait_for(lambda: _true(job.job_id not in runner.running_here), "its task to end")

        # Another job runs to the end meanwhile; the cancelled one gets nothing more.
        script.release()
        other = await apex.submit_deep_researcher_job(ask())
        await status_is(apex, other.job_id, "completed")
        after = await get(apex, job.job_id)
        assert after.status == "cancelled" and after.result == cancelled.result
        assert texts(after)[-1].startswith("### Reading: Scout bees")

        assert await apex.cancel_deep_researcher_job(job.job_id) == after  # idempotent
        assert (
            await code_of(apex.cancel_deep_researcher_job(other.job_id)) is Code.FAILED_PRECONDITION
        )


async def test_a_pending_job_can_be_cancelled_and_never_runs(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.hold = {"plan"}
    limits = ResearchLimits(max_concurrent_jobs=1, heartbeat_seconds=0.2)
    async with engine(tmp_path / "apex.db", url, FakeRetriever(), limits) as apex:
        first = await apex.submit_deep_researcher_job(ask())
        waiting = await apex.submit_deep_researcher_job(ask())
        await status_is(apex, first.job_id, "running")
        assert (await apex.cancel_deep_researcher_job(waiting.job_id)).status == "cancelled"
        script.release()
        await status_is(apex, first.job_id, "completed")
        assert (await get(apex, waiting.job_id)).result == []
    assert script.seen.count("plan") == 1


async def test_no_more_jobs_run_at_once_than_the_limit(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.hold = {"plan"}
    limits = ResearchLimits(max_concurrent_jobs=2, heartbeat_seconds=0.2)
    async with engine(tmp_path / "apex.db", url, FakeRetriever(), limits) as apex:
        ids = [(await apex.submit_deep_researcher_job(ask())).job_id for _ in range(5)]

        async def statuses() -> list[str]:
            # One read of the store: a consistent picture of every job at one moment.
            jobs = {j.id: j.status for j in await apex.store.list_jobs_by_status(STATUSES)}
            found = [jobs[job_id] for job_id in ids]
            assert found.count("running") <= 2, found
            return found

        await wait_for(lambda: _true(script.in_flight == 2), "two jobs to be planning")
        assert sorted(await statuses()) == ["pending"] * 3 + ["running"] * 2
        script.release()
        await wait_for(
            lambda: _when_all(statuses(), "completed"), "every job to complete", deadline=60
        )
    assert script.most_in_flight == 2


async def _when_all(found: Awaitable[list[str]], status: str) -> bool:
    return all(s == status for s in await found)


async def test_a_job_over_its_time_limit_fails_with_a_reason(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    miner, url = fake
    miner.stall_after = 0  # the miner never answers
    limits = ResearchLimits(max_seconds=0.3, heartbeat_seconds=0.2)
    async with engine(tmp_path / "apex.db", url, FakeRetriever(), limits) as apex:
        job = await apex.submit_deep_researcher_job(ask())
        failed = await status_is(apex, job.job_id, "failed")
    assert failed.error == "the job ran over its time limit of 0.3 s"
    assert texts(failed) == ["## Generating Research Plan\n"]


async def test_linked_completions_follow_the_job(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.hold = {"plan"}
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        created = await apex.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(user_prompt=QUESTION, completion_type="reasoning")
        )
        assert created.parsed_completion is not None
        completion_id = created.parsed_completion.id
        job = await apex.submit_deep_researcher_job(ask())
        await status_is(apex, job.job_id, "running")

        # As the MCP tool does: link the completion once the job exists (it runs already).
        entry = {"createdAt": job.created_at, "jobId": job.job_id, "status": "pending"}
        await apex.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=completion_id, metadata={"deep-researcher": entry, "tool": "x"}
            )
        )

        async def linked() -> m.StoredChatCompletion:
            return await apex.get_chat_completion(
                m.GetChatCompletionRequest(completion_id=completion_id)
            )

        await get(apex, job.job_id)  # a poll brings a late link up to date
        assert (await linked()).metadata == {
            "deep-researcher": entry | {"status": "running"},
            "tool": "x",
        }
        script.release()
        done = await status_is(apex, job.job_id, "completed")
        stored = await linked()
        assert stored.metadata == {"deep-researcher": entry | {"status": "completed"}, "tool": "x"}
        assert stored.completion_text == texts(done)[-1]
        listed = await apex.get_completions_with_deep_researcher_entry(m.Empty())
        assert [c.id for c in listed.completions] == [completion_id]


async def test_a_runner_that_stops_hands_its_jobs_back_and_the_next_one_starts_them_over(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    script.hold = {"plan"}
    limits = ResearchLimits(max_concurrent_jobs=1, heartbeat_seconds=0.2)
    async with engine(db, url, FakeRetriever(), limits) as apex:
        linked = await apex.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(user_prompt=QUESTION)
        )
        assert linked.parsed_completion is not None
        running = await apex.submit_deep_researcher_job(ask())
        entry = {"createdAt": running.created_at, "jobId": running.job_id, "status": "pending"}
        await apex.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=linked.parsed_completion.id, metadata={"deep-researcher": entry}
            )
        )
        pending = await apex.submit_deep_researcher_job(ask())
        await wait_for(lambda: _true(script.in_flight == 1), "the first job to plan")
    async with SqliteStore(db) as store:
        stopped = await store.get_job("alice", running.job_id)
        assert (stopped.status, stopped.error) == ("pending", None)
        completion = await store.get_completion("alice", linked.parsed_completion.id)
        assert completion.metadata == {"deep-researcher": entry}

    script.release()
    async with engine(db, url, FakeRetriever(), limits) as apex:
        again = await status_is(apex, running.job_id, "completed")
        await status_is(apex, pending.job_id, "completed")
    assert [c.seq_id for c in again.result] == list(range(1, len(again.result) + 1))
    chunks = texts(again)
    assert chunks[:3] == [
        "## Generating Research Plan\n",
        jobs.RESTART_CHUNK,
        "## Generating Research Plan\n",
    ]
    assert chunks[-1].startswith("# Nest choice")


async def test_a_jobs_search_filters_go_with_it_to_the_runner_that_takes_it_up(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    script.hold = {"plan"}
    filters = m.SearchFilters.of(["bees.example", "*.hive.org"], ["evil.example"], "month")
    limits = ResearchLimits(max_concurrent_jobs=1, heartbeat_seconds=0.2)
    async with engine(db, url, FakeRetriever(), limits) as apex:
        assert isinstance(apex, FiltersResearch)  # what deep_research_start asks of it
        job = await apex.submit_deep_researcher_job_filtered(ask(), filters)
        await wait_for(lambda: _true(script.in_flight == 1), "the job to plan")
    async with SqliteStore(db) as store:  # handed back, with its filters
        assert (await store.get_job("alice", job.job_id)).search_filters == filters.to_json()
    script.release()
    other = FakeRetriever()  # another runner (a replica) takes the job up
    async with engine(db, url, other, limits) as apex:
        await status_is(apex, job.job_id, "completed")
    assert other.calls and other.filters == [filters] * len(other.calls)


async def test_a_job_left_running_by_a_dead_process_is_taken_over_and_completes(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    async with SqliteStore(db) as store:  # what a process killed mid-job leaves behind
        orphan = await store.create_job("alice", request=ask().to_wire())
        await store.claim_next_job()
        await store.append_chunk(orphan.id, jobs.chunk("## Generating Research Plan\n"))
        left = await store.create_job("alice", request=ask().to_wire())
    async with engine(db, url, FakeRetriever()) as apex:
        done = await status_is(apex, orphan.id, "completed")
        assert texts(done)[:3] == [
            "## Generating Research Plan\n",
            jobs.TAKEOVER_CHUNK,
            "## Generating Research Plan\n",
        ]
        await status_is(apex, left.id, "completed")  # it never started: it runs now


async def test_a_job_that_keeps_losing_its_runner_fails_after_its_takeovers(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    async with SqliteStore(db) as store:  # taken over MAX_TAKEOVERS times, and lost again
        orphan = await store.create_job("alice", request=ask().to_wire())
        for _ in range(jobs.MAX_TAKEOVERS):
            claimed = await store.claim_next_job()
            assert claimed is not None
            await store.take_over_stale_jobs(
                claimed.updated_at + timedelta(microseconds=1),
                chunk=jobs.chunk(jobs.TAKEOVER_CHUNK),
                max_takeovers=jobs.MAX_TAKEOVERS,
                error="",
            )
        await store.claim_next_job()
    async with engine(db, url, FakeRetriever()) as apex:
        failed = await status_is(apex, orphan.id, "failed")
        assert failed.error is not None and failed.error.startswith("interrupted")
        assert f"lost {jobs.MAX_TAKEOVERS + 1} times" in failed.error


async def test_two_runners_on_one_database_share_the_jobs_and_run_each_once(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    script.plan = '["swarm scouts"]'
    async with (
        engine(db, url, FakeRetriever()) as one,
        engine(db, url, FakeRetriever()) as two,
    ):
        ids = [(await one.submit_deep_researcher_job(ask())).job_id for _ in range(6)]
        for job_id in ids:
            done = await status_is(two, job_id, "completed")
            assert texts(done)[0] == "## Generating Research Plan\n"
            assert texts(done).count("## Generating Research Plan\n") == 1
    assert script.seen.count("plan") == 6


async def test_a_job_whose_runner_dies_is_taken_over_by_another_within_its_lease(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    script.hold = {"notes"}
    started: list[str] = []
    die, gone = anyio.Event(), anyio.Event()

    async def no_handoff(_: object) -> None:  # a killed process hands nothing back
        return None

    async def doomed_replica() -> None:
        async with engine(db, url, FakeRetriever()) as one:
            assert one.research is not None
            monkeypatch.setattr(one.research, "_requeue", no_handoff)
            started.append((await one.submit_deep_researcher_job(ask())).job_id)
            await wait_for(lambda: _true("notes" in script.seen), "the job to read a source")
            assert started[0] in one.research.running_here
            await die.wait()  # then it stops: its job is left running, its lease not renewed
        gone.set()

    async with anyio.create_task_group() as replicas:
        replicas.start_soon(doomed_replica)
        await wait_for(lambda: _true("notes" in script.seen), "the job to read a source")
        async with engine(db, url, FakeRetriever()) as two:
            die.set()
            await gone.wait()
            assert (await get(two, started[0])).status == "running"  # held by nobody now
            script.release()
            done = await status_is(two, started[0], "completed")
    assert texts(done).count(jobs.TAKEOVER_CHUNK) == 1
    assert [c.seq_id for c in done.result] == list(range(1, len(done.result) + 1))
    # It resumed: the plan was kept, the search under way done again.
    assert script.seen.count("plan") == 1
    after = texts(done)[texts(done).index(jobs.TAKEOVER_CHUNK) + 1 :]
    assert after[0] == "## Searching: swarm scouts\n"


@pytest.mark.parametrize("taker", ["another runner", "the same runner"])
async def test_a_runner_that_stalls_past_its_lease_stops_and_the_job_completes_once(
    tmp_path: Path,
    fake: tuple[FakeOpenAI, str],
    script: Script,
    monkeypatch: pytest.MonkeyPatch,
    taker: str,
) -> None:
    """Fencing: a runner whose heartbeat stopped while its job ran on (a long pause, a
    network split) is taken over, by another runner or by its own next sweep; when the
    stalled run wakes, its writes are refused and it stops, so the job is written by one run
    at a time and finished once."""
    _, url = fake
    db = tmp_path / "apex.db"
    script.hold = {"notes"}

    async def no_heartbeat(leases: object) -> set[str]:
        return set()

    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(engine(db, url, FakeRetriever()))
        assert one.research is not None
        monkeypatch.setattr(one.research.store, "touch_jobs", no_heartbeat)
        job_id = (await one.submit_deep_researcher_job(ask())).job_id
        await wait_for(lambda: _true("notes" in script.seen), "the job to read a source")
        if taker == "another runner":
            two = await stack.enter_async_context(engine(db, url, FakeRetriever()))
        else:
            two = one
        taken = await wait_for(
            lambda: _when(get(two, job_id), lambda j: jobs.TAKEOVER_CHUNK in texts(j)),
            "the job to be taken over",
        )
        assert job_id in one.research.running_here  # stalled: it does not know yet
        script.release()
        done = await status_is(two, job_id, "completed")
        await wait_for(lambda: _true(not one.research.running_here), "the stalled run to stop")
    chunks = texts(done)
    resumed = chunks[texts(taken).index(jobs.TAKEOVER_CHUNK) + 1 :]
    assert chunks.count("## Drafting report\n") == 1 and script.seen.count("report") == 1
    assert resumed[0] == "## Searching: swarm scouts\n"
    assert [c.seq_id for c in done.result] == list(range(1, len(done.result) + 1))


async def left_by_a_dead_runner(db: Path, chunks: list[str]) -> str:
    """The id of a job claimed by a runner that wrote ``chunks`` and died (its lease held):
    what a process killed mid-job leaves behind."""
    async with SqliteStore(db) as store:
        orphan = await store.create_job("alice", request=ask().to_wire())
        claimed = await store.claim_next_job()
        assert claimed is not None
        for text in chunks:
            await store.append_chunk(orphan.id, jobs.chunk(text), attempt=claimed.attempt)
    return orphan.id


async def test_a_job_taken_over_resumes_from_its_last_recorded_step(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    """What a job wrote is its checkpoint: the plan and the sources read with their notes are
    kept; the source being read when its runner died is read again; the rest goes on."""
    miner, url = fake
    db = tmp_path / "apex.db"
    before = [
        "## Generating Research Plan\n",
        "1. swarm scouts\n2. waggle dance\n",
        "## Searching: swarm scouts\n",
        "### Reading: Scout bees (https://bees.example/scouts)\n",
        "- scouts dance (noted by the runner that died)\n",
        "### Reading: Quorum sensing (https://bees.example/quorum)\n",  # it died here
    ]
    orphan = await left_by_a_dead_runner(db, before)
    retriever = FakeRetriever()
    async with engine(db, url, retriever) as apex:
        done = await status_is(apex, orphan, "completed")
    chunks = texts(done)
    assert chunks[: len(before) + 1] == [*before, jobs.TAKEOVER_CHUNK]
    assert chunks[len(before) + 1 : -1] == [
        "## Searching: swarm scouts\n",
        "### Reading: Quorum sensing (https://bees.example/quorum)\n",
        "- noted from https://bees.example/quorum\n",
        "## Searching: waggle dance\n",
        "### Reading: The waggle dance (https://bees.example/dance)\n",
        "- noted from https://bees.example/dance\n",
        "## Drafting report\n",
    ]
    assert script.seen == ["notes", "notes", "report"]  # no plan, no notes on the scouts
    assert [r.search_query for r in retriever.calls] == ["swarm scouts", "waggle dance"]
    assert (
        "- scouts dance (noted by the runner that died)"
        in miner.requests[-1]["messages"][-1]["content"]
    )
    sources = chunks[-1].split("## Sources")[1]
    for listed in (
        "- [1] [Scout bees](https://bees.example/scouts)",
        "- [2] [Quorum sensing](https://bees.example/quorum)",
        "- [3] [The waggle dance](https://bees.example/dance)",
    ):
        assert listed in sources


@pytest.mark.parametrize("page_kept", [True, False])
async def test_a_resumed_jobs_earlier_sources_are_checked_against_their_kept_pages(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script, page_kept: bool
) -> None:
    """A source read by the run that died comes back with its notes; the page it read, where
    the retriever keeps it, is what that source's citations are checked against."""
    _, url = fake
    db = tmp_path / "apex.db"
    script.plan = '["swarm scouts"]'
    script.report = "# Nest choice\n\nScouts inspect cavities [1]."  # on the page, not the notes
    before = [
        "## Generating Research Plan\n",
        "1. swarm scouts\n",
        "## Searching: swarm scouts\n",
        "### Reading: Scout bees (https://bees.example/scouts)\n",
        "- they dance (noted by the runner that died)\n",
    ]
    orphan = await left_by_a_dead_runner(db, before)
    retriever = FakeRetriever()
    if page_kept:
        retriever.kept["https://bees.example/scouts"] = WEB["swarm scouts"][0].content
    async with engine(db, url, retriever) as apex:
        done = await status_is(apex, orphan, "completed")
    report = texts(done)[-1]
    if page_kept:
        assert "Scouts inspect cavities [1]." in report
        assert "Scouts inspect cavities and dance." in report.split("## Sources")[1]
    else:  # checked against the notes alone, which do not say it: the citation goes
        assert "Scouts inspect cavities [1]" not in report
        assert "Scouts inspect cavities" in report


async def test_a_job_whose_report_was_being_drafted_resumes_at_the_report(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    script.plan = '["swarm scouts"]'
    script.hold = {"report"}
    async with engine(db, url, FakeRetriever()) as apex:  # stopped while drafting
        job_id = (await apex.submit_deep_researcher_job(ask())).job_id
        await wait_for(lambda: _true("report" in script.seen), "the job to draft its report")
    script.release()
    retriever = FakeRetriever()
    async with engine(db, url, retriever) as apex:
        done = await status_is(apex, job_id, "completed")
    chunks = texts(done)
    assert chunks[chunks.index(jobs.RESTART_CHUNK) + 1 :][0] == "## Drafting report\n"
    assert script.seen == ["plan", "notes", "notes", "report", "report"]
    assert retriever.calls == []  # nothing searched again
    assert "[2] [Quorum sensing]" in chunks[-1]


async def test_a_job_cancelled_through_another_runner_stops_where_it_runs(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    db = tmp_path / "apex.db"
    script.hold = {"notes"}
    async with engine(db, url, FakeRetriever()) as one:
        assert one.research is not None
        holder = one.research
        job = await one.submit_deep_researcher_job(ask())
        await wait_for(lambda: _true("notes" in script.seen), "the job to read a source")
        assert job.job_id in holder.running_here
        async with engine(db, url, FakeRetriever()) as two:
            cancelled = await two.cancel_deep_researcher_job(job.job_id)
            assert cancelled.status == "cancelled"
            await wait_for(lambda: _true(job.job_id not in holder.running_here), "it to stop")
        script.release()
        after = await get(one, job.job_id)
        assert after.status == "cancelled" and after.result == cancelled.result


# --- end to end: the real WebRetriever, the gateway, a killed process --------------------------


@pytest.fixture
def web() -> Iterator[tuple[FakeWeb, FakeSearxng, str]]:
    site = FakeWeb()
    search = FakeSearxng()
    with serve_web(site) as base, serve_searxng(search) as searxng:
        search.hits = [hit(base, "/bees"), hit(base, "/tides"), hit(base, "/bees")]
        yield site, search, searxng


def engine_settings(db: Path, miner_url: str, searxng: str, **fields: Any) -> Settings:
    return Settings(
        db=db,
        miners=[MinerSettings(name="fake", base_url=miner_url, timeout=30)],
        discover_local_miners=False,
        search_provider="searxng",
        searxng_url=searxng,
        allow_private_addresses=True,
        research_heartbeat_seconds=0.2,
        **fields,
    )


async def test_a_job_reads_real_pages_found_by_search(
    tmp_path: Path,
    fake: tuple[FakeOpenAI, str],
    web: tuple[FakeWeb, FakeSearxng, str],
) -> None:
    _, url = fake
    site, search, searxng = web
    settings = engine_settings(tmp_path / "apex.db", url, searxng)
    async with LocalApex.open(engine_config(settings)) as apex:
        direct = await apex.web_retrieval(m.WebRetrievalRequest(search_query="bees", n_results=2))
        assert [r.url for r in direct.results] == [site.url("/bees"), site.url("/tides")]

        job = await apex.submit_deep_researcher_job(ask())
        done = await status_is(apex, job.job_id, "completed")

    chunks = texts(done)
    # Both searches find the same pages: each is read once, under one number.
    assert [c for c in chunks if c.startswith("## Searching")] == [
        "## Searching: swarm scouts\n",
        "## Searching: waggle dance\n",
    ]
    reading = [c for c in chunks if c.startswith("### Reading")]
    assert len(reading) == 2
    assert "honeybees" in reading[0].lower() and f"({site.url('/bees')})" in reading[0]
    assert f"({site.url('/tides')})" in reading[1]
    report = chunks[-1]
    assert re.search(r"^# Nest choice\n\n.+ \[1\]\. .+ \[2\]\.\n", report)
    assert f"- [1] [{reading[0][13:].split(' (')[0]}]({site.url('/bees')})" in report
    assert f"({site.url('/tides')})" in report.split("## Sources")[1]
    assert {"swarm scouts", "waggle dance"} <= {q["q"][0] for q in search.queries}


async def test_deep_research_through_the_gateway_is_as_in_process(
    tmp_path: Path,
    fake: tuple[FakeOpenAI, str],
    web: tuple[FakeWeb, FakeSearxng, str],
) -> None:
    _, url = fake
    site, _, searxng = web
    settings = engine_settings(tmp_path / "apex.db", url, searxng)
    with serve_asgi(create_gateway_app(settings)) as gateway:
        async with RemoteApex(gateway, timeout=20) as remote:
            submitted = await remote.submit_deep_researcher_job(ask(seed=7))
            assert submitted.status == "pending" and submitted.created_at.endswith("Z")

            async def completed() -> m.GetDeepResearcherJobResponse | None:
                got = await remote.get_deep_researcher_job(
                    m.GetDeepResearcherJobRequest(job_id=submitted.job_id)
                )
                return got if got.status == "completed" else None

            over_the_wire = await wait_for(completed, "the job to complete through the gateway")
            found = await remote.web_retrieval(m.WebRetrievalRequest(search_query="tides"))
            # The page on tides, though the search lists the bees first: pages are ranked.
            assert [r.url for r in found.results] == [site.url("/tides")]
            missing = m.GetDeepResearcherJobRequest(job_id=str(uuid.uuid4()))
            assert await code_of(remote.get_deep_researcher_job(missing)) is Code.NOT_FOUND
            bad = m.GetDeepResearcherJobRequest(job_id="42")
            assert await code_of(remote.get_deep_researcher_job(bad)) is Code.INVALID_ARGUMENT

    async with LocalApex.open(engine_config(settings)) as apex:
        in_process = await get(apex, submitted.job_id)
    assert over_the_wire == in_process
    assert over_the_wire.created_at == submitted.created_at
    assert texts(over_the_wire)[-1].startswith("# Nest choice")


async def test_a_job_running_when_its_process_is_killed_is_taken_over_and_pending_ones_run(
    tmp_path: Path,
    fake: tuple[FakeOpenAI, str],
    script: Script,
    web: tuple[FakeWeb, FakeSearxng, str],
) -> None:
    _, url = fake
    _, _, searxng = web
    db, port = tmp_path / "apex.db", free_port()
    env = {
        "APEX_MINER": url,
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_SEARCH_PROVIDER": "searxng",
        "APEX_SEARXNG_URL": searxng,
        "APEX_ALLOW_PRIVATE_ADDRESSES": "true",
        "APEX_RESEARCH_MAX_CONCURRENT_JOBS": "1",
        "APEX_RESEARCH_HEARTBEAT_SECONDS": "0.2",
    }
    script.hold = {"plan"}  # the miner stalls until released
    base = f"http://127.0.0.1:{port}"

    async def job(client: RemoteApex, job_id: str) -> m.GetDeepResearcherJobResponse:
        return await client.get_deep_researcher_job(m.GetDeepResearcherJobRequest(job_id=job_id))

    with gateway_process(db, port, env) as process:
        async with RemoteApex(base, timeout=20, max_retries=0) as client:
            running = (await client.submit_deep_researcher_job(ask())).job_id
            waiting = (await client.submit_deep_researcher_job(ask())).job_id
            await wait_for(lambda: _true(script.in_flight == 1), "the first job to plan")
            assert (await job(client, running)).status == "running"
            assert (await job(client, waiting)).status == "pending"
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL

    script.release()
    with gateway_process(db, port, env):
        async with RemoteApex(base, timeout=20) as client:

            async def finished(job_id: str) -> m.GetDeepResearcherJobResponse | None:
                got = await job(client, job_id)
                assert got.status in ("running", "pending", "failed", "completed"), got
                return got if got.status in ("failed", "completed") else None

            retaken = await wait_for(lambda: finished(running), "the killed job to run on")
            completed = await wait_for(lambda: finished(waiting), "the pending job to run")
    assert retaken.status == "completed", retaken.error
    assert texts(retaken)[:3] == [  # what it wrote is kept; the takeover says so
        "## Generating Research Plan\n",
        jobs.TAKEOVER_CHUNK,
        "## Generating Research Plan\n",
    ]
    for done in (retaken, completed):
        assert done.status == "completed"
        assert [c.seq_id for c in done.result] == list(range(1, len(done.result) + 1))
    assert script.seen.count("plan") == 3  # the killed job ran again, once


# --- jobs on a session's miners -----------------------------------------------------------------

ALICE_KEY = "sk-alice-SECRET-7731"


@pytest.fixture
def alice_script() -> Script:
    return Script()


@pytest.fixture
def alice_fake(alice_script: Script) -> Iterator[tuple[FakeOpenAI, str]]:
    """Alice's own miner, which answers only her key."""
    miner = FakeOpenAI(models=["a1"], reply=alice_script, api_key=ALICE_KEY)
    with serve_openai(miner) as url:
        yield miner, url


def alice_miners(apex: LocalApex, url: str) -> MinerPool:
    """A pool of Alice's miner on the engine's HTTP client, as a session gets."""
    config = MinerConfig.model_validate(
        {"name": "alice-miner", "base_url": url, "api_key": ALICE_KEY, "timeout": 30}
    )
    return apex.miners.sibling([config])


async def test_a_job_on_a_sessions_miners_runs_on_them_and_not_on_the_engines(
    tmp_path: Path,
    fake: tuple[FakeOpenAI, str],
    alice_fake: tuple[FakeOpenAI, str],
    alice_script: Script,
) -> None:
    engine_miner, url = fake
    her_miner, her_url = alice_fake
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        runner = apex.research
        assert runner is not None
        runner.use_miners("alice", alice_miners(apex, her_url))
        job = await runner.submit("alice", ask(), miners="alice")
        assert (job.status, job.miners) == ("pending", "alice")
        done = await status_is(apex, job.id, "completed")
    assert texts(done)[-1].startswith("# Nest choice\n\nScout bees [1].")
    assert alice_script.seen == ["plan", "notes", "notes", "notes", "report"]
    assert len(her_miner.requests) == 5
    assert {c.headers.get("authorization") for c in her_miner.calls} == {f"Bearer {ALICE_KEY}"}
    assert engine_miner.requests == []


async def test_a_job_whose_session_miner_fails_names_the_sessions_settings(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], alice_fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    her_miner, her_url = alice_fake
    her_miner.fail(401)
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        runner = apex.research
        assert runner is not None
        runner.use_miners("alice", alice_miners(apex, her_url))
        job = await runner.submit("alice", ask(), miners="alice")
        failed = await status_is(apex, job.id, "failed")
    # Her miner is hers, set in her session: the engine's APEX_MINER has nothing to do with it.
    assert failed.error is not None and "APEX_" not in failed.error
    assert failed.error.endswith(
        "(check the miner, its API key and its model in this session's settings)"
    )
    assert ALICE_KEY not in failed.error


async def test_a_job_whose_miners_no_runner_holds_waits_until_they_are_handed_over(
    tmp_path: Path,
    fake: tuple[FakeOpenAI, str],
    script: Script,
    alice_fake: tuple[FakeOpenAI, str],
    alice_script: Script,
) -> None:
    _, url = fake
    her_miner, her_url = alice_fake
    db = tmp_path / "apex.db"
    # What a restart leaves: the job names its session's miners, which are gone with it.
    async with SqliteStore(db) as store:
        waiting = await store.create_job("alice", request=ask().to_wire(), miners="alice")
    async with engine(db, url, FakeRetriever()) as apex:
        runner = apex.research
        assert runner is not None
        # Jobs submitted after it run on the engine's miners: each claim passed it over.
        for _ in range(2):
            ordinary = await apex.submit_deep_researcher_job(ask())
            await status_is(apex, ordinary.job_id, "completed")
        still = await get(apex, waiting.id)
        assert (still.status, still.result) == ("pending", [])
        assert her_miner.calls == [] and alice_script.seen == []

        runner.use_miners("alice", alice_miners(apex, her_url))  # her session is back
        done = await status_is(apex, waiting.id, "completed")
    assert texts(done)[-1].startswith("# Nest choice")
    assert alice_script.seen.count("plan") == 1
    assert script.seen.count("plan") == 2  # the engine's miner ran only the ordinary jobs


async def test_a_job_cannot_name_miners_that_were_never_handed_over(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        runner = apex.research
        assert runner is not None
        with pytest.raises(ApexError) as caught:
            await runner.submit("alice", ask(), miners="unknown")
        assert "unknown" in caught.value.message
        assert await apex.store.list_jobs_by_status(STATUSES) == []  # no job was made


async def test_a_sessions_miner_key_never_reaches_the_database(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], alice_fake: tuple[FakeOpenAI, str]
) -> None:
    engine_miner, url = fake
    her_miner, her_url = alice_fake
    db = tmp_path / "apex.db"

    def stored() -> bytes:
        files = [db, db.with_name(db.name + "-wal")]
        return b"".join(path.read_bytes() for path in files if path.exists())

    async with engine(db, url, FakeRetriever()) as apex:
        session = apex.for_user("key:alice").with_miners(
            "session:alice", alice_miners(apex, her_url)
        )
        job = await session.submit_deep_researcher_job(ask())
        done = await status_is(session, job.job_id, "completed")
        await session.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(user_prompt=QUESTION, completion_type="reasoning")
        )
        while_open = stored()
    after = stored()
    assert texts(done)[-1].startswith("# Nest choice")
    assert her_miner.requests and not engine_miner.requests  # her key was used, on her miner
    assert b"session:alice" in while_open + after  # the files read do hold the job's row
    assert ALICE_KEY.encode() not in while_open
    assert ALICE_KEY.encode() not in after


async def test_closing_a_sessions_pool_leaves_the_engines_miners_working(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], alice_fake: tuple[FakeOpenAI, str]
) -> None:
    engine_miner, url = fake
    _, her_url = alice_fake
    async with engine(tmp_path / "apex.db", url, FakeRetriever()) as apex:
        first = await apex.submit_deep_researcher_job(ask())
        await status_is(apex, first.job_id, "completed")  # the engine's client is in use
        session = apex.with_miners("session:alice", alice_miners(apex, her_url))
        job = await session.submit_deep_researcher_job(ask())
        await status_is(apex, job.job_id, "completed")
        await session.miners.aclose()  # the session ends: its pool closes

        served = len(engine_miner.requests)
        plan = m.ChatMessage(role="system", content=researcher.PLAN_PROMPT.format(count=5))
        answer = await apex.chat_completion(
            m.ChatCompletionRequest(messages=[plan, m.ChatMessage(role="user", content=QUESTION)])
        )
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == '["swarm scouts", "waggle dance"]'
    assert len(engine_miner.requests) == served + 1


async def test_a_session_job_nobody_holds_fails_saying_why_after_the_wait(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], alice_fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    _, her_url = alice_fake
    db = tmp_path / "apex.db"
    async with SqliteStore(db) as store:  # what a restart leaves: her session is gone
        gone = await store.create_job("alice", request=ask().to_wire(), miners="alice-old")
    limits = ResearchLimits(heartbeat_seconds=0.2, session_job_wait_seconds=0.5)
    async with engine(db, url, FakeRetriever(), limits) as apex:
        runner = apex.research
        assert runner is not None
        miners = alice_miners(apex, her_url)
        runner.use_miners("alice", miners)
        held = await runner.submit("alice", ask(), miners="alice")
        failed = await status_is(apex, gone.id, "failed")
        assert (await status_is(apex, held.id, "completed")).status == "completed"
    assert failed.error is not None
    assert failed.error.startswith("its session's miners were not back within 0.5 s")
    assert failed.result == []


async def test_a_session_job_left_by_a_restart_fails_in_the_next_process(
    tmp_path: Path, fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    db, port = tmp_path / "apex.db", free_port()
    async with SqliteStore(db) as store:  # what the last process left, its session gone
        job_id = (await store.create_job("alice", request=ask().to_wire(), miners="s:1")).id
    env = {
        "APEX_MINER": url,
        "APEX_RESEARCH_HEARTBEAT_SECONDS": "0.2",
        "APEX_RESEARCH_SESSION_JOB_WAIT_SECONDS": "1",
    }

    async def failed(store: SqliteStore) -> Job | None:
        job = await store.get_job("alice", job_id)
        assert job.status in ("pending", "failed"), job
        return job if job.status == "failed" else None

    with gateway_process(db, port, env):
        async with SqliteStore(db) as store:
            job = await wait_for(lambda: failed(store), "the session job to fail")
    assert job.error is not None
    assert job.error.startswith("its session's miners were not back within 1 s")


# --- a stdio server stopped by a signal ---------------------------------------------------------


@contextmanager
def stdio_server_process(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``apex-mcp`` over stdio as a host spawns it (stdin held open), killed at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "apex_mcp"],
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        assert process.stdin is not None
        process.stdin.close()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_a_stdio_server_stopped_by_a_signal_hands_its_job_back_to_the_next_one(
    tmp_path: Path,
    fake: tuple[FakeOpenAI, str],
    script: Script,
    web: tuple[FakeWeb, FakeSearxng, str],
    stop: signal.Signals,
) -> None:
    _, url = fake
    _, _, searxng = web
    db = tmp_path / "apex.db"
    env = {
        "APEX_DB": str(db),
        "APEX_BACKEND": "local",
        "APEX_MINER": url,
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_SEARCH_PROVIDER": "searxng",
        "APEX_SEARXNG_URL": searxng,
        "APEX_ALLOW_PRIVATE_ADDRESSES": "true",
        "APEX_RESEARCH_HEARTBEAT_SECONDS": "0.2",
    }
    async with SqliteStore(db) as store:
        job_id = (await store.create_job(DEFAULT_USER, request=ask().to_wire())).id

    async def status(store: SqliteStore, *wanted: str) -> Job | None:
        job = await store.get_job(DEFAULT_USER, job_id)
        return job if job.status in wanted else None

    script.hold = {"plan"}  # the miner stalls: the job is running when the signal comes
    with stdio_server_process(env) as process:
        async with SqliteStore(db) as store:
            await wait_for(lambda: status(store, "running"), "the stdio server to run the job")
        await wait_for(lambda: _true(script.in_flight == 1), "the job to plan")
        process.send_signal(stop)
        code = wait_exit(process, what="the stdio server to stop on the signal", timeout=30)
    assert code == (130 if stop is signal.SIGINT else 0)  # Ctrl+C's usual code; SIGTERM clean
    async with SqliteStore(db) as store:
        handed_back = await store.get_job(DEFAULT_USER, job_id)
    assert (handed_back.status, handed_back.error) == ("pending", None)

    script.release()
    with stdio_server_process(env):
        async with SqliteStore(db) as store:
            done = await wait_for(
                lambda: status(store, "completed", "failed"), "the next server to finish the job"
            )
    assert (done.status, done.error) == ("completed", None)
    assert jobs.RESTART_CHUNK in [json.loads(c.chunk)[0]["content"] for c in done.chunks]


async def test_one_users_queue_of_30_jobs_does_not_hold_back_anothers_one(
    tmp_path: Path, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.hold = {"plan"}  # every job stalls at its plan until released
    limits = ResearchLimits(max_concurrent_jobs=1, heartbeat_seconds=0.2)
    async with engine(tmp_path / "apex.db", url, FakeRetriever(), limits) as apex:
        runner = apex.research
        assert runner is not None
        alices = [(await runner.submit("alice", ask())).id for _ in range(30)]
        await wait_for(lambda: _true(script.in_flight == 1), "alice's first job to plan")
        bobs = (await runner.submit("bob", ask())).id
        script.release()  # from here on every job runs through, one at a time
        await status_is(apex.for_user("bob"), bobs, "completed")
        done = [j.id for j in await apex.store.list_jobs_by_status(["completed"])]
    # Bob's job ran next after alice's running one (one more of hers may finish meanwhile),
    # not after her 29 others.
    assert alices[0] in done
    assert len([job_id for job_id in done if job_id in alices]) <= 2, done
