"""End to end, as processes: `apex-mcp serve --http` replicas on one PostgreSQL database. What
one writes, the other reads and searches; a research job running on a replica killed with -9
is taken over by the other, resumes and completes there with its report, and clients
subscribed on the survivor hear its steps; no job is left running with no replica holding it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated

from apex_mcp.engine import jobs
from tests import postgres
from tests.engine.test_research import Script
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.server.harness import text_of
from tests.server.test_search_and_research import Updates
from tests.servers import free_port, wait_listening, waiting_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def script() -> Script:
    return Script(plan='["swarm scouts"]', hold={"notes"})  # the miner stalls on notes


@pytest.fixture
def env(module_database: postgres.TestDatabase, script: Script) -> Iterator[dict[str, str]]:
    site, search = FakeWeb(), FakeSearxng()
    with (
        serve_openai(FakeOpenAI(models=["m1"], reply=script)) as miner,
        serve_web(site) as base,
        serve_searxng(search) as searxng,
    ):
        search.hits = [hit(base, "/bees"), hit(base, "/tides")]
        yield {
            "APEX_DB": module_database.url,
            "APEX_MINER": miner,
            "APEX_DISCOVER_LOCAL_MINERS": "false",
            "APEX_SEARCH_PROVIDER": "searxng",
            "APEX_SEARXNG_URL": searxng,
            "APEX_ALLOW_PRIVATE_ADDRESSES": "true",
            # A lease of 5 beats of 0.2 s, and subscriptions that look every 0.2 s.
            "APEX_RESEARCH_HEARTBEAT_SECONDS": "0.2",
            "APEX_RESEARCH_POLL_SECONDS": "0.2",
        }


@contextmanager
def replica(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`apex-mcp serve --http` as a process on a port of its own; killed at the end."""
    port = free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "apex_mcp", "serve", "--http", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.kill()
        process.wait()


@asynccontextmanager
async def client(url: str, mode: str, **options: Any) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **options) as connected,  # type: ignore[arg-type]
    ):
        yield connected


async def test_a_job_whose_replica_is_killed_completes_through_the_other(
    env: dict[str, str], script: Script, module_database: postgres.TestDatabase, tmp_path: Path
) -> None:
    updates = Updates()
    listened: list[str] = []

    async def listen(on_b: Client, uri: str) -> None:
        async with on_b.listen(resource_subscriptions=[uri]) as events:
            async for event in events:
                assert isinstance(event, ResourceUpdated)
                listened.append(event.uri)

    with replica(env, tmp_path / "a.log") as (a_url, a_process):
        async with client(a_url, "2026-07-28") as on_a:
            said = await on_a.call_tool("create_chat", {"user_prompt": "How do lighthouses work?"})
            assert not said.is_error, text_of(said)
            assert said.structured_content is not None
            chat_id = said.structured_content["chat"]["id"]
            started = await on_a.call_tool("deep_research_start", {"user_prompt": "Bees?"})
            assert started.structured_content is not None, text_of(started)
            job_id = started.structured_content["job_id"]
            uri = f"apex://research/{job_id}"
            with waiting_for("the job to read a source on replica A", 30):
                while "notes" not in script.seen:
                    await anyio.sleep(0.02)

        # B starts while the job runs on A, so that A holds it.
        with replica(env, tmp_path / "b.log") as (b_url, _):
            async with (
                client(b_url, "legacy", message_handler=updates) as subscriber,
                client(b_url, "2026-07-28") as on_b,
                anyio.create_task_group() as tasks,
            ):
                found = await on_b.call_tool("search_chats", {"search_term": "lighthouses"})
                assert chat_id in text_of(found)  # written through A, searched through B
                with pytest.warns(Warning):  # the SDK marks the handshake-era subscribe so
                    await subscriber.subscribe_resource(uri)
                tasks.start_soon(listen, on_b, uri)
                read = await on_b.read_resource(uri)
                assert "Reading" in read.contents[0].text  # type: ignore[union-attr]
                heard_before = len(updates), len(listened)

                os.kill(a_process.pid, signal.SIGKILL)
                assert a_process.wait() == -signal.SIGKILL
                script.release()

                report: dict[str, Any] = {}
                with waiting_for("the job to complete on replica B", 60):
                    while report.get("status") not in ("completed", "failed"):
                        status = await on_b.call_tool(
                            "deep_research_status", {"job_id": job_id, "wait_seconds": 5}
                        )
                        report = status.structured_content or {}
                with waiting_for("replica B's subscribers to hear the last step", 30):
                    while len(updates) < heard_before[0] + 2 or len(listened) < heard_before[1] + 2:
                        await anyio.sleep(0.05)
                final = await on_b.read_resource(uri)
                tasks.cancel_scope.cancel()

    assert report["status"] == "completed", report
    assert "## Sources" in final.contents[0].text  # type: ignore[union-attr]
    assert set(updates) == {uri} and set(listened) == {uri}
    chunks = [
        json.loads(chunk)[0]["content"]
        for (chunk,) in module_database.query(
            "SELECT chunk FROM job_chunks WHERE job_id = %s ORDER BY seq_id", (job_id,)
        )
    ]
    assert chunks.count(jobs.TAKEOVER_CHUNK) == 1
    assert chunks.count("## Generating Research Plan\n") == 1  # resumed, not started over
    assert module_database.query("SELECT count(*) FROM jobs WHERE status = 'running'") == [(0,)]
