"""Deep-research jobs through the engine over the PostgreSQL store: replicas (two engines, two
pools, one database) share the jobs and run each once, a job left by a dead replica is taken
over and resumed, and a linked completion follows its job. The job tests of test_research.py,
on SQLite, cover the rest: the store underneath is the one thing that differs, and
test_store.py runs its job methods against both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest

from apex_mcp.apex import models as m
from apex_mcp.engine import LocalApex, MinerConfig, MinerPool, ResearchLimits, jobs
from apex_mcp.engine.jobs import ResearchRunner
from apex_mcp.engine.store import open_store
from tests.engine.test_research import (
    FakeRetriever,
    Script,
    _true,
    ask,
    status_is,
    texts,
    wait_for,
)
from tests.fakes.openai_server import FakeOpenAI, serve_openai

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def fake(script: Script) -> Iterator[tuple[FakeOpenAI, str]]:
    miner = FakeOpenAI(models=["m1", "m2"], reply=script)
    with serve_openai(miner) as url:
        yield miner, url


@asynccontextmanager
async def replica(url: str, miner_url: str) -> AsyncIterator[LocalApex]:
    """One replica's engine: its own store (pool) on the shared database, its own runner."""
    limits = ResearchLimits(heartbeat_seconds=0.2)
    retriever = FakeRetriever()
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(await open_store(url))
        miners = await stack.enter_async_context(
            MinerPool([MinerConfig(name="fake", base_url=miner_url, timeout=30)])
        )
        runner = await stack.enter_async_context(ResearchRunner(store, miners, retriever, limits))
        yield LocalApex(store, miners, user_id="alice", retriever=retriever, research=runner)


async def test_replicas_share_the_jobs_and_run_each_once(
    backend: Any, fake: tuple[FakeOpenAI, str], script: Script
) -> None:
    _, url = fake
    script.plan = '["swarm scouts"]'
    database = backend.database.url
    async with replica(database, url) as one, replica(database, url) as two:
        created = await one.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(user_prompt="bees", completion_type="reasoning")
        )
        assert created.parsed_completion is not None
        ids = [(await one.submit_deep_researcher_job(ask())).job_id for _ in range(6)]
        entry = {"createdAt": "2026-01-01T00:00:00Z", "jobId": ids[0], "status": "pending"}
        await two.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=created.parsed_completion.id, metadata={"deep-researcher": entry}
            )
        )
        for job_id in ids:
            done = await status_is(two, job_id, "completed")
            assert texts(done).count("## Generating Research Plan\n") == 1
        linked = await one.get_chat_completion(
            m.GetChatCompletionRequest(completion_id=created.parsed_completion.id)
        )
        assert linked.metadata == {"deep-researcher": entry | {"status": "completed"}}
        assert linked.completion_text == texts(await status_is(one, ids[0], "completed"))[-1]
    assert script.seen.count("plan") == 6


async def test_a_job_left_running_by_a_dead_replica_is_taken_over_and_the_next_runs(
    backend: Any, fake: tuple[FakeOpenAI, str]
) -> None:
    _, url = fake
    database = backend.database.url
    async with await open_store(database) as store:  # what a replica killed mid-job leaves
        orphan = await store.create_job("alice", request=ask().to_wire())
        await store.claim_next_job()
        await store.append_chunk(orphan.id, jobs.chunk("## Generating Research Plan\n"))
        left = await store.create_job("alice", request=ask().to_wire())
    async with replica(database, url) as apex:
        done = await status_is(apex, orphan.id, "completed")
        assert texts(done)[:3] == [
            "## Generating Research Plan\n",
            jobs.TAKEOVER_CHUNK,
            "## Generating Research Plan\n",
        ]
        await status_is(apex, left.id, "completed")


async def test_a_job_whose_replica_dies_is_taken_over_by_another_within_its_lease(
    backend: Any, fake: tuple[FakeOpenAI, str], script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake
    database = backend.database.url
    script.hold = {"notes"}
    started: list[str] = []
    die, gone = anyio.Event(), anyio.Event()

    async def no_handoff(_: object) -> None:  # a killed process hands nothing back
        return None

    async def doomed_replica() -> None:
        async with replica(database, url) as one:
            assert one.research is not None
            monkeypatch.setattr(one.research, "_requeue", no_handoff)
            started.append((await one.submit_deep_researcher_job(ask())).job_id)
            await wait_for(lambda: _true("notes" in script.seen), "the job to read a source")
            await die.wait()  # then it stops: its job is left running, its lease not renewed
        gone.set()

    async with anyio.create_task_group() as replicas:
        replicas.start_soon(doomed_replica)
        await wait_for(lambda: _true("notes" in script.seen), "the job to read a source")
        async with replica(database, url) as two:
            die.set()
            await gone.wait()
            script.release()
            done = await status_is(two, started[0], "completed")
    assert texts(done).count(jobs.TAKEOVER_CHUNK) == 1
    assert [c.seq_id for c in done.result] == list(range(1, len(done.result) + 1))
    assert script.seen.count("plan") == 1  # it resumed: the plan was kept
