"""What a user reads when a part fails, through the SDK's client: web search that cannot reach
its provider, research jobs that fail on search or on the miner, chat turns that fail, and the
transcripts (get_chat, the chat resource) of turns and jobs without an answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.engine.test_research import Script
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import connect, text_of
from tests.servers import free_port

pytestmark = pytest.mark.anyio

SEARCH_DOWN_HINT = (
    "check that the SearXNG instance is running and that APEX_SEARXNG_URL points at it"
)
ENGINE_MINERS_HINT = (
    "check the miners and their keys (APEX_MINER, APEX_MINER_API_KEY and APEX_MINER_MODEL, or "
    "[[miners]] in the config file): `apex-mcp doctor` tries each"
)
MINER_500 = "no miner could answer: fake: HTTP 500 (fake failure 500)"
CHAT_MINERS_HINT = "check that the miners are up and their keys are set: run `apex-mcp doctor`"


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def miner(script: Script) -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI(models=["m1"], reply=script)
    with serve_openai(fake) as url:
        yield fake, url


@pytest.fixture
def searxng_down() -> str:
    """A SearXNG URL where nothing listens: search fails at once, on this machine."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def env(tmp_path: Path, miner: tuple[FakeOpenAI, str], searxng_down: str) -> dict[str, str]:
    _, url = miner
    return {
        "APEX_DB": str(tmp_path / "apex.db"),
        "APEX_MINERS": json.dumps([{"name": "fake", "base_url": url, "timeout": 30}]),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_SEARCH_PROVIDER": "searxng",
        "APEX_SEARXNG_URL": searxng_down,
        "APEX_RESEARCH_POLL_SECONDS": "0.1",
    }


def tool_error(tool: str, line: str) -> str:
    """The text of a tool's error as the client gets it: the SDK's frame around our line."""
    return f"Error executing tool {tool}: {line}"


async def follow(client: Client, job_id: str) -> str:
    """deep_research_status, as a host calls it, until the job ends; the status line of its
    last answer (the new chunks follow it)."""
    next_seq = 0
    for _ in range(20):  # each call waits up to 10 s for news
        status = await client.call_tool(
            "deep_research_status",
            {"job_id": job_id, "last_seq_id": next_seq, "wait_seconds": 10},
        )
        assert not status.is_error, text_of(status)
        out = status.structured_content
        assert out is not None
        next_seq = out["next_seq_id"]
        if out["status"] in ("completed", "failed", "cancelled"):
            return text_of(status).split("\n\n")[0]
    pytest.fail(f"gave up waiting for research job {job_id} to end")


async def start_research(client: Client) -> tuple[str, str]:
    started = await client.call_tool("deep_research_start", {"user_prompt": "How do bees fly?"})
    job = started.structured_content
    assert job is not None and not started.is_error, text_of(started)
    return job["job_id"], job["chat_id"]


async def answer_lines(client: Client, chat_id: str) -> tuple[str, str]:
    """The assistant's line in get_chat's text and in the chat resource, for a one-turn chat."""
    got = await client.call_tool("get_chat", {"chat_id": chat_id})
    resource = await client.read_resource(f"apex://chats/{chat_id}")
    document: Any = resource.contents[0]
    return _assistant_line(text_of(got)), _assistant_line(document.text)


def _assistant_line(transcript: str) -> str:
    (line,) = [x for x in transcript.splitlines() if x.startswith("**Assistant:**")]
    return line


# --- web search -------------------------------------------------------------------------------


async def test_web_search_without_its_searxng_is_one_line_saying_what_to_check(
    env: dict[str, str], searxng_down: str
) -> None:
    async with connect("http", env) as client:
        result = await client.call_tool("web_search", {"search_query": "bees", "n_miners": 5})
    assert result.is_error
    assert text_of(result) == tool_error(
        "web_search",
        f"unavailable: the search provider searxng at {searxng_down} could not be reached: "
        f"connection refused ({SEARCH_DOWN_HINT})",
    )


async def test_web_search_without_duckduckgo_is_one_line_saying_what_to_set(
    tmp_path: Path,
) -> None:
    # ddgs sends every request through DDGS_PROXY: a closed port on 127.0.0.1 refuses them all,
    # as a network that is down would, and nothing leaves this machine.
    env = {
        "APEX_DB": str(tmp_path / "apex.db"),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "DDGS_PROXY": f"http://127.0.0.1:{free_port()}",
    }
    async with connect("stdio", env) as client:
        result = await client.call_tool("web_search", {"search_query": "what do bees eat"})
    assert result.is_error
    assert text_of(result) == tool_error(
        "web_search",
        "unavailable: the search provider duckduckgo could not be reached: connection refused "
        "(check the network, or set APEX_SEARCH_PROVIDER=searxng with APEX_SEARXNG_URL)",
    )


# --- research jobs ----------------------------------------------------------------------------


async def test_a_job_failing_on_search_names_search_and_its_settings(
    env: dict[str, str], searxng_down: str
) -> None:
    async with connect("stdio", env) as client:
        job_id, chat_id = await start_research(client)
        status = await follow(client, job_id)
        in_get_chat, in_resource = await answer_lines(client, chat_id)
    why = (
        f"every web search failed: the search provider searxng at {searxng_down} could not be "
        f"reached: connection refused ({SEARCH_DOWN_HINT})"
    )
    assert status == f"Job {job_id}: failed: {why}."
    assert "APEX_BASE_URL" not in status
    assert in_get_chat == in_resource == f"**Assistant:** _(research failed)_ {why}"


async def test_a_job_failing_on_the_miner_names_the_miner_settings(
    env: dict[str, str], miner: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = miner
    fake.fail(500)
    async with connect("http", env) as client:
        job_id, chat_id = await start_research(client)
        status = await follow(client, job_id)
        in_get_chat, in_resource = await answer_lines(client, chat_id)
    why = f"{MINER_500} ({ENGINE_MINERS_HINT})"
    assert status == f"Job {job_id}: failed: {why}."
    assert in_get_chat == in_resource == f"**Assistant:** _(research failed)_ {why}"


async def test_a_running_job_shows_how_far_it_got(env: dict[str, str], script: Script) -> None:
    script.hold = {"plan"}  # the job stays in its first step
    try:
        async with connect("http", env) as client:
            job_id, chat_id = await start_research(client)
            status = await client.call_tool(
                "deep_research_status", {"job_id": job_id, "wait_seconds": 20}
            )
            assert status.structured_content is not None
            assert status.structured_content["status"] == "running", text_of(status)
            in_get_chat, in_resource = await answer_lines(client, chat_id)
    finally:
        script.release()
    assert (
        in_get_chat
        == in_resource
        == ("**Assistant:** _(research running)_ step 1: Generating Research Plan")
    )


# --- chat turns -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_failed_chat_turn_shows_its_error_in_the_transcripts(
    env: dict[str, str], miner: tuple[FakeOpenAI, str], transport: str
) -> None:
    fake, _ = miner
    fake.fail(500)
    async with connect(transport, env) as client:
        failed = await client.call_tool("chat", {"user_prompt": "hello"})
        listed = (await client.call_tool("list_chats", {})).structured_content
        assert listed is not None
        (chat,) = listed["chats"]
        in_get_chat, in_resource = await answer_lines(client, chat["id"])
    assert failed.is_error
    assert text_of(failed) == tool_error("chat", f"unavailable: {MINER_500} ({CHAT_MINERS_HINT})")
    assert (
        in_get_chat == in_resource == f"**Assistant:** _(failed)_ {MINER_500} ({CHAT_MINERS_HINT})"
    )


async def test_a_cancelled_chat_turn_says_so_in_the_transcripts(
    env: dict[str, str], miner: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = miner
    fake.reply = None  # an echo, not the research script
    fake.stall_after = 2  # the answer starts, then hangs until the call is cancelled
    async with connect("stdio", env) as client:
        with anyio.move_on_after(2):
            await client.call_tool("chat", {"user_prompt": "a long story"})
        fake.stall_after = None
        listed = (await client.call_tool("list_chats", {})).structured_content
        assert listed is not None
        (chat,) = listed["chats"]
        cancelled = "**Assistant:** _(failed)_ cancelled before the answer was complete"
        for _ in range(100):  # the server records it as the call ends
            lines = await answer_lines(client, chat["id"])
            if lines == (cancelled, cancelled):
                break
            await anyio.sleep(0.1)
        else:
            pytest.fail(f"the transcripts never said the turn was cancelled: {lines}")
