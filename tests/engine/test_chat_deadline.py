"""A chat request's ``timeout``: the engine bounds the whole answer by it, clamped to 60–300 s
as the hosted service did, and closes the miner's request when time is up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import anyio
import pytest

from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.engine import MinerConfig, MinerPool, local
from apex_mcp.engine.local import LocalApex, answer_time_limit
from apex_mcp.engine.store import SqliteStore
from tests.fakes.openai_server import FakeOpenAI, serve_openai

pytestmark = pytest.mark.anyio


def ask(timeout: int | None = None, *, stream: bool = False) -> m.ChatCompletionRequest:
    return m.ChatCompletionRequest(
        messages=[m.ChatMessage(role="user", content="hello")], timeout=timeout, stream=stream
    )


@pytest.mark.parametrize(
    ("timeout", "limit"), [(None, 300.0), (1, 60.0), (60, 60.0), (120, 120.0), (9999, 300.0)]
)
def test_the_limit_is_the_requests_timeout_clamped_as_the_service_did(
    timeout: int | None, limit: float
) -> None:
    assert answer_time_limit(ask(timeout)) == limit


@asynccontextmanager
async def engine(tmp_path: Path, fake: FakeOpenAI) -> AsyncIterator[LocalApex]:
    with serve_openai(fake) as url:
        # The miner's own timeout is long: the request's limit is what must stop the answer.
        miner = MinerConfig(name="slow", base_url=url, timeout=60)
        async with SqliteStore(tmp_path / "apex.db") as store, MinerPool([miner]) as pool:
            yield LocalApex(store, pool, user_id="alice")


@pytest.fixture
def short_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # The service's lower bound is a minute; the tests clamp to a fraction of a second.
    monkeypatch.setattr(local, "CHAT_TIMEOUT_RANGE", (0.3, 300))


async def test_an_answer_over_the_limit_is_deadline_exceeded(
    tmp_path: Path, short_limits: None
) -> None:
    fake = FakeOpenAI(models=["m1"], stall_after=0)  # never answers
    async with engine(tmp_path, fake) as apex:
        with pytest.raises(ApexError) as caught:
            await apex.chat_completion(ask(1))
        while fake.disconnects == 0:  # the miner's request is closed, not left hanging
            await anyio.sleep(0.05)
    assert caught.value.code is Code.DEADLINE_EXCEEDED
    assert "timeout of 1 s" in caught.value.message


async def test_a_stream_over_the_limit_keeps_what_came_and_then_says_so(
    tmp_path: Path, short_limits: None
) -> None:
    fake = FakeOpenAI(models=["m1"], answer="one two three four", stall_after=2)
    async with engine(tmp_path, fake) as apex:
        received: list[m.ChatCompletionChunkResponse] = []
        with pytest.raises(ApexError) as caught:
            async with aclosing(apex.chat_completion_stream(ask(1, stream=True))) as chunks:
                async for chunk in chunks:
                    received.append(chunk)
        while fake.disconnects == 0:
            await anyio.sleep(0.05)
    assert caught.value.code is Code.DEADLINE_EXCEEDED
    assert received  # the chunks that came in time were delivered


async def test_an_answer_within_the_limit_is_untouched(tmp_path: Path) -> None:
    fake = FakeOpenAI(models=["m1"], answer="in time")
    async with engine(tmp_path, fake) as apex:
        answer = await apex.chat_completion(ask(60))
        streamed = [c async for c in apex.chat_completion_stream(ask(60, stream=True))]
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == "in time"
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == "in time"
