"""web_search and deep research through the MCP server on the embedded engine: real
retrieval of local pages found by a fake SearXNG, a fake miner writing plan, notes and report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.engine.test_research import Script
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.server.harness import connect, research_env, text_of
from tests.servers import waiting_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def world(tmp_path: Path, script: Script) -> Iterator[tuple[dict[str, str], FakeWeb]]:
    site, search = FakeWeb(), FakeSearxng()
    miner = FakeOpenAI(models=["m1"], reply=script)
    with serve_web(site) as base, serve_searxng(search) as searxng, serve_openai(miner) as url:
        search.hits = [hit(base, "/bees"), hit(base, "/tides"), hit(base, "/volcanoes")]
        env = research_env(tmp_path / "apex.db", url, searxng)
        yield env, site


async def test_web_search_reads_the_pages_it_finds(world: tuple[dict[str, str], FakeWeb]) -> None:
    env, site = world
    async with connect("stdio", env) as client:
        result = await client.call_tool(
            "web_search",
            {"search_query": "what does the waggle dance of a bee signal", "n_results": 2},
        )
    assert not result.is_error, text_of(result)
    out = result.structured_content
    assert out is not None
    # The page that answers first; the second is whichever of the others ranks better.
    urls = [r["url"] for r in out["results"]]
    assert urls[0] == site.url("/bees") and urls[1] in (site.url("/tides"), site.url("/volcanoes"))
    bees = out["results"][0]
    assert bees["title"] == "How honeybees share the way to flowers"
    assert "waggle" in bees["relevant"]  # the passage that answers, not the page's start
    assert "Accept all cookies" not in json.dumps(out)


async def test_deep_research_start_status_and_the_stored_report(
    world: tuple[dict[str, str], FakeWeb], script: Script
) -> None:
    env, site = world
    script.hold = {"report"}  # the job pauses before writing its report
    async with connect("http", env) as client:
        started = await client.call_tool(
            "deep_research_start", {"user_prompt": "How do honeybees pick a new nest?"}
        )
        assert not started.is_error, text_of(started)
        job = started.structured_content
        assert job is not None and job["status"] == "pending" and job["chat_id"]

        seen: list[str] = []
        next_seq, statuses = 0, []
        while True:
            status = await client.call_tool(
                "deep_research_status",
                {"job_id": job["job_id"], "last_seq_id": next_seq, "wait_seconds": 20},
            )
            out = status.structured_content
            assert out is not None and not status.is_error
            statuses.append(out["status"])
            seen += out["chunks"]
            next_seq = out["next_seq_id"]
            if any(c.startswith("## Drafting") for c in seen):
                script.release()  # the report may come now
            if out["status"] in ("completed", "failed"):
                break

        assert out["status"] == "completed", out
        assert seen[0] == "## Generating Research Plan\n"
        assert any(c.startswith("### Reading") for c in seen)
        assert out["report"] == seen[-1]
        assert site.url("/bees") in out["sources"]

        # The stored completion follows the job: status and report.
        listed = (await client.call_tool("list_research", {})).structured_content
        assert listed is not None
        (entry,) = listed["completions"]
        assert entry["metadata"]["deep-researcher"]["jobId"] == job["job_id"]
        assert entry["metadata"]["deep-researcher"]["status"] == "completed"
        assert entry["completion_text"] == out["report"]

        document = await client.read_resource(f"apex://research/{job['job_id']}")
        assert out["report"] in document.contents[0].text  # type: ignore[union-attr]


async def test_cancel_stops_a_running_job(
    world: tuple[dict[str, str], FakeWeb], script: Script
) -> None:
    env, _ = world
    script.hold = {"plan"}  # the job hangs in its first step
    async with connect("stdio", env) as client:
        started = await client.call_tool(
            "deep_research_start", {"user_prompt": "a question", "save": False}
        )
        assert started.structured_content is not None
        job_id = started.structured_content["job_id"]
        with waiting_for("the job to be running", 20):
            while True:
                out: Any = (
                    await client.call_tool("deep_research_status", {"job_id": job_id})
                ).structured_content
                if out["status"] == "running":
                    break
                await anyio.sleep(0.05)
        cancelled = await client.call_tool("deep_research_cancel", {"job_id": job_id})
        assert cancelled.structured_content is not None
        assert cancelled.structured_content["status"] == "cancelled"
        script.release()
        await anyio.sleep(0.5)
        after = (
            await client.call_tool("deep_research_status", {"job_id": job_id})
        ).structured_content
    assert after is not None and after["status"] == "cancelled"
    assert not any(c.startswith("## Searching") for c in after["chunks"])


async def test_deep_research_keeps_to_the_domains_asked_for(tmp_path: Path, script: Script) -> None:
    """deep_research_start's domain filters hold for every search of the job: the engine is
    asked for them, and no page outside them is read or cited."""
    site, search = FakeWeb(), FakeSearxng()
    miner = FakeOpenAI(models=["m1"], reply=script)
    with serve_web(site) as base, serve_searxng(search) as searxng, serve_openai(miner) as url:
        elsewhere = base.replace("127.0.0.1", "localhost")  # the same pages, another domain
        search.hits = [hit(elsewhere, "/bees"), hit(base, "/tides"), hit(elsewhere, "/volcanoes")]
        env = research_env(tmp_path / "apex.db", url, searxng)
        async with connect("stdio", env) as client:
            started = await client.call_tool(
                "deep_research_start",
                {"user_prompt": "How do honeybees pick a nest?", "exclude_domains": ["localhost"]},
            )
            assert not started.is_error, text_of(started)
            job = started.structured_content
            assert job is not None
            out: dict[str, Any] = {"status": "pending"}
            with waiting_for("the job to end", 60):
                while out["status"] not in ("completed", "failed"):
                    status = await client.call_tool(
                        "deep_research_status", {"job_id": job["job_id"], "wait_seconds": 20}
                    )
                    out = status.structured_content or {}
    assert out["status"] == "completed", out
    assert out["sources"] == [site.url("/tides")]
    assert "localhost" not in out["report"]
    assert site.hits_for("/bees") == 0 and site.hits_for("/volcanoes") == 0  # never fetched
    assert search.queries and all("-site:localhost" in q["q"][0] for q in search.queries)
