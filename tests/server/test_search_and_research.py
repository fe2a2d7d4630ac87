"""web_search and the deep research tools on the remote backend: the MCP server -> RemoteApex
-> the wire server on 127.0.0.1 -> a scripted ApexClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp_types import ResourceUpdatedNotification

from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.server import create_app, serve_client
from tests.doubles import ScriptedApex
from tests.server.harness import connect, text_of
from tests.servers import serve_asgi, waiting_for

pytestmark = pytest.mark.anyio

JOB = "6eb69148-0000-4000-8000-b6dd81120377"
PAGE = "Bittensor Documentation\nBittensor is an open source platform. " + "More text. " * 2000


@pytest.fixture
def double() -> ScriptedApex:
    return ScriptedApex()


@pytest.fixture
def env(double: ScriptedApex) -> Iterator[dict[str, str]]:
    with serve_asgi(create_app(serve_client(double))) as url:
        yield {"APEX_BACKEND": "remote", "APEX_BASE_URL": url, "APEX_RESEARCH_POLL_SECONDS": "0.1"}


def chunk(seq: int, text: str) -> m.DeepResearcherResultChunk:
    return m.DeepResearcherResultChunk(seq_id=seq, chunk=json.dumps([{"content": text}]))


class Job:
    """A research job whose chunks appear over time, as the hosted service's did."""

    def __init__(self, texts: list[str], every: float, final_status: str = "completed") -> None:
        self.texts, self.every, self.final_status = texts, every, final_status
        self.started = anyio.current_time()

    def __call__(self, request: m.Message) -> m.GetDeepResearcherJobResponse:
        due = int((anyio.current_time() - self.started) / self.every)
        shown = self.texts[: min(due, len(self.texts))]
        done = len(shown) == len(self.texts)
        return m.GetDeepResearcherJobResponse(
            job_id=JOB,
            status=self.final_status if done else ("running" if shown else "pending"),
            created_at="2025-05-30T14:32:05.758727Z",
            updated_at="2025-05-30T14:35:33.985242Z",
            result=[chunk(i + 1, t) for i, t in enumerate(shown)],
            error="the miner gave up" if done and self.final_status == "failed" else None,
        )


class Updates(list[str]):
    """A client's message handler that keeps the URIs of the resource updates it hears."""

    async def __call__(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.append(str(message.params.uri))


async def test_web_search_trims_merges_and_drops_empty_urls(
    env: dict[str, str], double: ScriptedApex
) -> None:
    double.answers["web_retrieval"] = m.WebRetrievalResponse(
        results=[
            m.WebSearchResult(
                url="https://docs.bittensor.com/",
                content=PAGE,
                relevant="Bittensor is an open source platform.",
            ),
            m.WebSearchResult(url="", content="", relevant=""),
            m.WebSearchResult(
                url="https://DOCS.bittensor.com", content=PAGE, relevant="Subnets are communities."
            ),
            m.WebSearchResult(
                url="https://www.bittensor.ai/what-is-bittensor",
                content="What is Bittensor?\nA network.",
                relevant="A network.",
            ),
        ]
    )
    async with connect("http", env) as client:
        result = await client.call_tool(
            "web_search", {"search_query": "What is Bittensor?", "n_results": 3}
        )
        full = await client.call_tool(
            "web_search", {"search_query": "q", "include_content": True, "max_content_chars": 500}
        )
    request = double.calls[0][1]
    assert isinstance(request, m.WebRetrievalRequest)
    assert (request.n_miners, request.n_results, request.max_response_time) == (3, 3, 20)
    out = result.structured_content
    assert out is not None
    assert [r["url"] for r in out["results"]] == [
        "https://docs.bittensor.com/",
        "https://www.bittensor.ai/what-is-bittensor",
    ]
    first = out["results"][0]
    assert first["title"] == "Bittensor Documentation"
    assert (
        "open source platform" in first["relevant"]
        and "Subnets are communities" in first["relevant"]
    )
    assert "content" not in first
    assert "[1] Bittensor Documentation" in text_of(result)
    assert full.structured_content is not None
    assert len(full.structured_content["results"][0]["content"]) == 500


async def test_web_search_errors_become_tool_errors(
    env: dict[str, str], double: ScriptedApex
) -> None:
    double.answers["web_retrieval"] = ApexError(Code.UNAVAILABLE, "every search provider failed")
    async with connect("http", env) as client:
        result = await client.call_tool("web_search", {"search_query": "anything", "n_miners": 1})
        bad = await client.call_tool("web_search", {"search_query": "", "n_results": 99})
        assert (await client.list_tools()).tools  # still serving
    assert result.is_error
    assert "unavailable" in text_of(result) and "every search provider failed" in text_of(result)
    assert bad.is_error and "search_query" in text_of(bad) and "n_results" in text_of(bad)


async def test_deep_research_start_then_status_waits_for_news(
    env: dict[str, str], double: ScriptedApex
) -> None:
    double.answers["submit_deep_researcher_job"] = m.SubmitDeepResearcherJobResponse(
        job_id=JOB,
        status="pending",
        created_at="2025-05-30T14:32:05.758727Z",
        updated_at="2025-05-30T14:32:05.758727Z",
    )
    texts = [
        "## Generating Research Plan\n",
        "## Searching\n",
        "# Report\nSee [1].\n\n## Sources\n1. https://a.example/x\n",
    ]
    double.answers["get_deep_researcher_job"] = job = Job(texts, every=0.6)
    async with connect("stdio", env) as client:
        started = await client.call_tool(
            "deep_research_start",
            {"user_prompt": "How do solar sails work?", "seed": 42, "save": False},
        )
        assert (
            started.structured_content is not None and started.structured_content["job_id"] == JOB
        )
        submitted = double.calls[0][1]
        assert isinstance(submitted, m.ChatCompletionRequest)
        assert submitted.inference_mode == "Chain-of-Thought" and submitted.task == "InferenceTask"
        assert submitted.sampling_parameters is not None
        assert (
            submitted.sampling_parameters.max_new_tokens == 8192
            and not submitted.sampling_parameters.do_sample
        )
        assert submitted.seed == 42

        job.started = anyio.current_time()
        progress: list[Any] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        seen, next_seq, statuses = [], 0, []
        for _ in range(10):
            began = anyio.current_time()
            status = await client.call_tool(
                "deep_research_status",
                {"job_id": JOB, "last_seq_id": next_seq, "wait_seconds": 30},
                progress_callback=on_progress,
            )
            waited = anyio.current_time() - began
            out = status.structured_content
            assert out is not None
            assert waited < 10  # it came back as soon as there was news, not after 30 s
            statuses.append(out["status"])
            seen += out["chunks"]
            next_seq = out["next_seq_id"]
            if out["status"] == "completed":
                break
    assert seen == texts  # each chunk once, in order
    assert statuses[-1] == "completed" and "running" in statuses
    assert out["report"] == texts[-1]
    assert out["sources"] == ["https://a.example/x"]
    assert progress  # the host heard from the server while it waited


async def test_failed_job_reports_its_error(env: dict[str, str], double: ScriptedApex) -> None:
    double.answers["get_deep_researcher_job"] = Job(
        ["## Plan\n"], every=0.01, final_status="failed"
    )
    async with connect("http", env) as client:
        await anyio.sleep(0.05)
        status = await client.call_tool("deep_research_status", {"job_id": JOB})
    out = status.structured_content
    assert out is not None and out["status"] == "failed" and out["error"] == "the miner gave up"
    assert "failed: the miner gave up" in text_of(status)


async def test_a_subscribed_research_resource_notifies_as_it_changes(
    env: dict[str, str], double: ScriptedApex
) -> None:
    double.answers["get_deep_researcher_job"] = job = Job(
        ["## Plan\n", "## Searching\n", "# Report\n"], every=0.3
    )
    updates = Updates()
    async with connect("stdio", env, message_handler=updates) as client:
        job.started = anyio.current_time()
        with pytest.warns(Warning):  # the SDK marks the handshake-era subscribe as deprecated
            await client.subscribe_resource(f"apex://research/{JOB}")
        with waiting_for("3 updates of the subscribed job's resource", 20):
            while len(updates) < 3:
                await anyio.sleep(0.05)
        report = await client.read_resource(f"apex://research/{JOB}")
    assert set(updates) == {f"apex://research/{JOB}"}
    assert "# Report" in report.contents[0].text  # type: ignore[union-attr]


async def test_an_unsubscribed_client_hears_no_more(
    env: dict[str, str], double: ScriptedApex
) -> None:
    double.answers["get_deep_researcher_job"] = job = Job(
        ["## Plan\n", "## Searching\n", "## Reading\n", "# Report\n"], every=0.3
    )
    uri = f"apex://research/{JOB}"
    updates = Updates()
    async with connect("stdio", env, message_handler=updates) as client:
        job.started = anyio.current_time()
        with pytest.warns(Warning):  # deprecated in the SDK, as above
            await client.subscribe_resource(uri)
        with waiting_for("the first update of the subscribed resource", 20):
            while not updates:
                await anyio.sleep(0.05)
        with pytest.warns(Warning):
            await client.unsubscribe_resource(uri)
        heard = len(updates)
        report = ""
        with waiting_for("the job's report in its resource", 30):
            while "# Report" not in report:  # the job goes on to its end...
                await anyio.sleep(0.1)
                read = await client.read_resource(uri)
                report = read.contents[0].text  # type: ignore[union-attr]
        await anyio.sleep(0.5)  # ...and past the watcher's next look
    assert heard == 1 and len(updates) == heard  # nothing after the unsubscribe


async def test_a_2026_client_hears_of_a_job_it_did_not_start(
    env: dict[str, str], double: ScriptedApex
) -> None:
    """Listening to a job's resource follows it, whoever started it (another process, a
    handshake-era client): as a subscription does."""
    from mcp.shared.subscriptions import ResourceUpdated

    double.answers["get_deep_researcher_job"] = job = Job(
        ["## Plan\n", "## Searching\n", "# Report\n"], every=0.3
    )
    job.started = anyio.current_time() + 3600  # pending until the client listens
    uri = f"apex://research/{JOB}"
    heard = []
    async with (
        connect("stdio", env, mode="2026-07-28") as client,
        client.listen(resource_subscriptions=[uri]) as events,
    ):
        job.started = anyio.current_time()
        with anyio.move_on_after(30):  # not a speed check: without the watcher, none come
            async for event in events:
                assert isinstance(event, ResourceUpdated)
                heard.append(event.uri)
                if len(heard) == 3:
                    break
    assert heard == [uri, uri, uri]


async def test_list_research_pages_through_completions(
    env: dict[str, str], double: ScriptedApex
) -> None:
    double.answers["get_completions_with_deep_researcher_entry"] = (
        m.GetCompletionsWithDeepResearcherEntryResponse(
            completions=[
                m.ParsedCompletion(
                    id=f"c{i}",
                    chat_id="chat",
                    user_prompt_text=f"question {i}",
                    metadata={"deep-researcher": {"jobId": f"j{i}", "status": "completed"}},
                )
                for i in range(5)
            ]
        )
    )
    async with connect("http", env) as client:
        pages, cursor = [], None
        while True:
            args: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            out = (await client.call_tool("list_research", args)).structured_content
            assert out is not None
            pages.append([c["id"] for c in out["completions"]])
            cursor = out.get("next_cursor")
            if not cursor:
                break
        bad = await client.call_tool("list_research", {"cursor": "not-a-cursor"})
    assert pages == [["c0", "c1"], ["c2", "c3"], ["c4"]]
    assert bad.is_error and "cursor" in text_of(bad)


async def test_a_2026_client_hears_of_a_job_it_started(
    env: dict[str, str], double: ScriptedApex
) -> None:
    """Clients of the stateless protocol listen instead of subscribing: a job started here is
    followed, and each step reaches them."""
    from mcp.shared.subscriptions import ResourceUpdated

    double.answers["submit_deep_researcher_job"] = m.SubmitDeepResearcherJobResponse(
        job_id=JOB, status="pending"
    )
    double.answers["get_deep_researcher_job"] = job = Job(
        ["## Plan\n", "## Searching\n", "# Report\n"], every=0.3
    )
    uri = f"apex://research/{JOB}"
    heard = []
    async with (
        connect("stdio", env, mode="2026-07-28") as client,
        client.listen(resource_subscriptions=[uri]) as events,
    ):
        job.started = anyio.current_time()
        await client.call_tool("deep_research_start", {"user_prompt": "q", "save": False})
        with waiting_for("3 resource updates of a job started by this client", 20):
            async for event in events:
                assert isinstance(event, ResourceUpdated)
                heard.append(event.uri)
                if len(heard) == 3:
                    break
    assert heard == [uri, uri, uri]


LOOK_ALIKES = [
    "https://example.com/a",
    "https://www.example.com/b",
    "https://example.com.evil.net/c",
    "https://notexample.com/d",
    "https://docs.other.org/e",
]


async def test_domain_filters_are_enforced_on_what_a_remote_server_returns(
    double: ScriptedApex, env: dict[str, str]
) -> None:
    double.answers["web_retrieval"] = m.WebRetrievalResponse(
        results=[
            m.WebSearchResult(url=u, content="T\nText.", relevant="Text.") for u in LOOK_ALIKES
        ]
    )
    calls_before = len(double.calls)
    async with connect("http", env) as client:
        only = await client.call_tool(
            "web_search", {"search_query": "q", "include_domains": ["example.com"]}
        )
        subdomains = await client.call_tool(
            "web_search", {"search_query": "q", "include_domains": ["*.example.com", "other.org"]}
        )
        without = await client.call_tool(
            "web_search", {"search_query": "q", "exclude_domains": ["Example.com"]}
        )
        bad = await client.call_tool(
            "web_search", {"search_query": "q", "include_domains": ["https://example.com/x"]}
        )
        recent = await client.call_tool("web_search", {"search_query": "q", "recency": "week"})
        research = await client.call_tool(
            "deep_research_start", {"user_prompt": "q", "include_domains": ["example.com"]}
        )
        research_bad = await client.call_tool(
            "deep_research_start", {"user_prompt": "q", "exclude_domains": ["example.com/x"]}
        )

    def urls(result: Any) -> list[str]:
        assert not result.is_error, text_of(result)
        return [r["url"] for r in result.structured_content["results"]]

    assert urls(only) == LOOK_ALIKES[:2]
    assert urls(subdomains) == [LOOK_ALIKES[1], LOOK_ALIKES[4]]
    assert urls(without) == LOOK_ALIKES[2:]
    assert bad.is_error and "is not a domain" in text_of(bad)
    # An Apex server cannot bound the age of pages: said, not silently ignored.
    assert recent.is_error and "recency needs the embedded engine" in text_of(recent)
    # Nor can it keep a research job's searches to domains: refused, the job never started.
    assert research.is_error and "need the embedded engine" in text_of(research)
    assert research_bad.is_error and "is not a domain" in text_of(research_bad)
    assert not [c for c in double.calls[calls_before:] if "deep_researcher" in c[0]]
