"""MinerPool against fake OpenAI-compatible servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from pydantic import SecretStr

from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.models import (
    ChatCompletionChunkResponse,
    ChatCompletionRequest,
    ChatMessage,
    SamplingParameters,
)
from apex_mcp.config import MinerSettings
from apex_mcp.engine import MinerConfig, MinerPool
from apex_mcp.engine.miners import SYNTHESIS_PROMPT
from apex_mcp.serving import engine_miner
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.servers import free_port

pytestmark = pytest.mark.anyio

Start = Callable[..., tuple[FakeOpenAI, str]]
SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def start() -> Iterator[Start]:
    """Start a fake OpenAI server: ``fake, base_url = start(models=[...])``."""
    with ExitStack() as stack:

        def start_fake(**settings: Any) -> tuple[FakeOpenAI, str]:
            fake = FakeOpenAI(**settings)
            return fake, stack.enter_context(serve_openai(fake))

        yield start_fake


def miner(name: str, url: str, **fields: Any) -> MinerConfig:
    return MinerConfig(name=name, base_url=url, **fields)


def ask(text: str = "hello", **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(messages=[ChatMessage(role="user", content=text)], **fields)


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


async def collect(
    pool: MinerPool, request: ChatCompletionRequest
) -> list[ChatCompletionChunkResponse]:
    return [chunk async for chunk in pool.stream(request)]


def text_of(chunks: list[ChatCompletionChunkResponse]) -> str:
    return "".join(c.delta.content for chunk in chunks for c in chunk.choices if c.delta)


# --- the request and the answer ---------------------------------------------------------------


async def test_request_mapping(start: Start) -> None:
    fake, url = start(models=["m1"])
    sampling = SamplingParameters(
        temperature=0.5, top_p=0.9, top_k=40, max_new_tokens=64, do_sample=True
    )
    async with MinerPool([miner("a", url, models=["m1"], supports_top_k=True)]) as pool:
        await pool.complete(
            ChatCompletionRequest(
                messages=[
                    ChatMessage(role="system", content="be brief"),
                    ChatMessage(role="user", content="hi"),
                    ChatMessage(content="no role given"),
                ],
                sampling_parameters=sampling,
                seed=7,
                json_format=True,
                uids=[1, 2],
                task="InferenceTask",
            )
        )
        await pool.complete(ask(sampling_parameters=SamplingParameters(do_sample=False, top_k=5)))
        await pool.complete(ask())
    assert fake.requests[0] == {
        "model": "m1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "no role given"},
        ],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "max_tokens": 64,
        "seed": 7,
        "response_format": {"type": "json_object"},
        "stream": False,
    }
    greedy, plain = fake.requests[1], fake.requests[2]
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == 5
    assert plain == {
        "model": "m1",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": False,
    }


async def test_top_k_only_where_supported(start: Start) -> None:
    fake, url = start()
    async with MinerPool([miner("a", url)]) as pool:
        await pool.complete(ask(sampling_parameters=SamplingParameters(top_k=40, do_sample=True)))
    assert "top_k" not in fake.requests[0] and "temperature" not in fake.requests[0]


async def test_complete_answers(start: Start) -> None:
    _, url = start(models=["m1"])
    async with MinerPool([miner("a", url, models=["m1"])]) as pool:
        response = await pool.complete(ask("what is SN1?"))
        as_json = await pool.complete(ask("x", json_format=True))
    assert response.id.startswith("chatcmpl-fake-")
    assert (response.object, response.model, response.created) == (
        "chat.completion",
        "m1",
        1_700_000_000,
    )
    assert response.system_fingerprint == "miner:a"
    [choice] = response.choices
    assert choice.finish_reason == "stop" and choice.message is not None
    assert (choice.message.role, choice.message.content) == ("assistant", "echo: what is SN1?")
    assert response.usage is not None and response.usage.completion_tokens == 4
    assert as_json.choices[0].message is not None
    assert json.loads(as_json.choices[0].message.content) == {"echo": "x"}


async def test_stream_answers(start: Start) -> None:
    fake, url = start(models=["m1"], delay=0.01)
    async with MinerPool([miner("a", url, models=["m1"])]) as pool:
        chunks = await collect(pool, ask("stream this please"))
    assert fake.requests[0]["stream"] is True
    assert fake.requests[0]["stream_options"] == {"include_usage": True}
    assert text_of(chunks) == "echo: stream this please"
    assert len(chunks) >= 5
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.system_fingerprint for c in chunks} == {"miner:a"}
    assert {c.model for c in chunks} == {"m1"}
    assert chunks[0].choices[0].delta is not None and chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


async def test_a_reader_may_stop_early(start: Start) -> None:
    _, url = start(answer="one two three four five six", delay=0.02)
    async with MinerPool([miner("a", url)]) as pool:
        chunks = pool.stream(ask())
        async for chunk in chunks:
            if text_of([chunk]):
                break
        await chunks.aclose()  # closes the upstream stream, not just our side
        again = await pool.complete(ask("again"))
    assert text_of([chunk]) == "one"
    assert again.system_fingerprint == "miner:a"


async def test_empty_messages_is_the_callers_error(start: Start) -> None:
    fake, url = start()
    async with MinerPool([miner("a", url)]) as pool:
        with pytest.raises(ApexError) as caught:
            await pool.complete(ChatCompletionRequest())
        with pytest.raises(ApexError) as streamed:
            await collect(pool, ChatCompletionRequest(stream=True))
    assert caught.value.code == streamed.value.code == Code.INVALID_ARGUMENT
    assert fake.requests == []


# --- fallback ---------------------------------------------------------------------------------


def break_first(fake: FakeOpenAI, how: str) -> None:
    if how.isdigit():
        fake.fail(int(how))
    elif how == "stall":
        fake.stall_after = 0
    elif how == "malformed":
        fake.malformed = True
    elif how == "wrong key":
        fake.api_key = "sk-the-right-one"
    else:
        raise AssertionError(how)


FAILURES = ["500", "503", "429", "401", "403", "404", "stall", "malformed", "wrong key", "closed"]


@pytest.mark.parametrize("how", FAILURES)
async def test_complete_falls_back(start: Start, how: str) -> None:
    first, url_a = start()
    _, url_b = start()
    if how == "closed":
        url_a = closed_url()
    else:
        break_first(first, how)
    miners = [miner("a", url_a, timeout=0.3, api_key=SecretStr(SECRET)), miner("b", url_b)]
    async with MinerPool(miners) as pool:
        response = await pool.complete(ask("hi"))
    assert response.system_fingerprint == "miner:b"
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "echo: hi"


@pytest.mark.parametrize("how", ["500", "stall", "malformed", "wrong key", "closed", "cut"])
async def test_stream_falls_back_before_the_first_chunk(start: Start, how: str) -> None:
    first, url_a = start()
    _, url_b = start()
    if how == "closed":
        url_a = closed_url()
    elif how == "cut":
        first.break_after = 1  # the role chunk only: nothing the user could see yet
    else:
        break_first(first, how)
    async with MinerPool([miner("a", url_a, timeout=0.3), miner("b", url_b)]) as pool:
        chunks = await collect(pool, ask("hi"))
    assert text_of(chunks) == "echo: hi"
    assert {c.system_fingerprint for c in chunks} == {"miner:b"}


@pytest.mark.parametrize("how", ["cut", "stall"])
async def test_stream_failing_mid_answer_is_unavailable(start: Start, how: str) -> None:
    first, url_a = start(answer="one two three four")
    second, url_b = start()
    if how == "cut":
        first.break_after = 3
    else:
        first.stall_after = 3
    received: list[ChatCompletionChunkResponse] = []
    async with MinerPool([miner("a", url_a, timeout=0.3), miner("b", url_b)]) as pool:
        with pytest.raises(ApexError) as caught:
            async for chunk in pool.stream(ask()):
                received.append(chunk)
    assert text_of(received) == "one two"
    assert caught.value.code == Code.UNAVAILABLE
    assert "miner a:" in caught.value.message and "incomplete" in caught.value.message
    assert second.requests == []  # too late to fall back: the user has half an answer


async def test_every_miner_failing_is_unavailable_and_names_them(start: Start) -> None:
    first, url_a = start()
    first.fail(500)
    _, url_b = start(stall_after=0)
    miners = [miner("a", url_a), miner("b", url_b, timeout=0.2), miner("c", closed_url())]
    async with MinerPool(miners) as pool:
        with pytest.raises(ApexError) as caught:
            await pool.complete(ask())
        with pytest.raises(ApexError) as streamed:
            await collect(pool, ask())
    for error in (caught.value, streamed.value):
        assert error.code == Code.UNAVAILABLE
        assert "a: HTTP 500 (fake failure 500)" in error.message
        assert "b: " in error.message and "0.2s" in error.message
        assert "c: unreachable at http://127.0.0.1:" in error.message


async def test_every_miner_rejecting_the_request_is_invalid_argument(start: Start) -> None:
    first, url_a = start()
    second, url_b = start()
    first.fail(400)
    second.fail(422)
    async with MinerPool([miner("a", url_a), miner("b", url_b)]) as pool:
        with pytest.raises(ApexError) as caught:
            await pool.complete(ask())
    assert caught.value.code == Code.INVALID_ARGUMENT
    assert "a: HTTP 400" in caught.value.message and "b: HTTP 422" in caught.value.message


async def test_a_transient_failure_passes(start: Start) -> None:
    fake, url = start()
    fake.fail(503, times=1)
    async with MinerPool([miner("a", url)]) as pool:
        with pytest.raises(ApexError):
            await pool.complete(ask())
        response = await pool.complete(ask())
    assert response.system_fingerprint == "miner:a"


# --- choice of miner --------------------------------------------------------------------------


async def test_model_routing(start: Start) -> None:
    fake_a, url_a = start(models=["m1", "m1b"])
    fake_b, url_b = start(models=["m2"])
    miners = [miner("a", url_a, models=["m1", "m1b"]), miner("b", url_b, models=["m2"])]
    async with MinerPool(miners) as pool:
        by_default = await pool.complete(ask())
        named_default = await pool.complete(ask(model="Default"))
        named = await pool.complete(ask(model="m2"))
        with pytest.raises(ApexError) as unknown:
            await pool.complete(ask(model="gpt-9"))
    assert (by_default.system_fingerprint, by_default.model) == ("miner:a", "m1")
    assert named_default.system_fingerprint == "miner:a"
    assert (named.system_fingerprint, named.model) == ("miner:b", "m2")
    assert [r["model"] for r in fake_a.requests] == ["m1", "m1"]
    assert [r["model"] for r in fake_b.requests] == ["m2"]
    assert unknown.value.code == Code.INVALID_ARGUMENT
    assert "'gpt-9'" in unknown.value.message and "m1, m1b, m2" in unknown.value.message


async def test_default_falls_back_to_the_next_miners_default(start: Start) -> None:
    fake_a, url_a = start()
    fake_a.fail(500)
    _, url_b = start(models=["m2"])
    miners = [miner("a", url_a, models=["m1"]), miner("b", url_b, models=["m2"])]
    async with MinerPool(miners) as pool:
        response = await pool.complete(ask())
    assert (response.system_fingerprint, response.model) == ("miner:b", "m2")


async def test_a_miner_without_models_takes_any(start: Start) -> None:
    fake_a, url_a = start(models=["m1"])
    fake_any, url_any = start(models=["server-default"])
    miners = [miner("a", url_a, models=["m1"]), miner("any", url_any)]
    async with MinerPool(miners) as pool:
        named = await pool.complete(ask(model="llama-70b"))
        fake_a.fail(500)
        default = await pool.complete(ask())
    assert named.system_fingerprint == "miner:any" and named.model == "llama-70b"
    assert default.system_fingerprint == "miner:any" and default.model == "server-default"
    assert "model" not in fake_any.requests[-1]  # the server picks its own default


# --- mixture of agents ------------------------------------------------------------------------


def is_synthesis(body: dict[str, Any]) -> bool:
    return SYNTHESIS_PROMPT in body["messages"][0]["content"]


async def test_mixture_asks_miners_concurrently_and_synthesizes(start: Start) -> None:
    lock = threading.Lock()
    arrived: list[str] = []

    def proposer(name: str) -> Callable[[dict[str, Any]], Any]:
        async def reply(body: dict[str, Any]) -> str:
            if is_synthesis(body):
                return f"synthesis by {name}"
            with lock:
                arrived.append(name)
            # Each proposal waits until all three were asked: asked one after another, they
            # would wait out this loop and say so.
            for _ in range(300):
                if len(arrived) == 3:
                    return f"proposal from {name}"
                await asyncio.sleep(0.01)
            return f"{name} was asked alone"

        return reply

    fakes = [start(reply=proposer(name)) for name in ("a", "b", "c")]
    fourth, url_d = start()
    miners = [miner(name, url) for name, (_, url) in zip("abc", fakes, strict=True)]
    async with MinerPool([*miners, miner("d", url_d)]) as pool:
        request = ask("what is Bittensor?", inference_mode="Mixture-of-Agents")
        response = await pool.complete(request)

    assert sorted(arrived) == ["a", "b", "c"]
    assert fourth.requests == []  # three proposers at most
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "synthesis by a"
    assert response.system_fingerprint == "mixture:a,b,c"
    synthesis = fakes[0][0].requests[-1]
    assert is_synthesis(synthesis)
    for name in "abc":
        assert f"proposal from {name}" in synthesis["messages"][0]["content"]
    assert synthesis["messages"][1:] == [{"role": "user", "content": "what is Bittensor?"}]
    # usage is what the whole mixture cost: three proposals and the synthesis, 3 words each
    asked = [body for fake, _ in fakes for body in fake.requests]
    prompt = sum(len(m["content"].split()) for body in asked for m in body["messages"])
    assert response.usage is not None
    assert response.usage.total_tokens == prompt + 4 * 3


async def test_mixture_with_one_miner_samples_it_three_times(start: Start) -> None:
    fake, url = start(reply=lambda body: "final" if is_synthesis(body) else f"seed {body['seed']}")
    async with MinerPool([miner("solo", url)]) as pool:
        response = await pool.complete(ask("q", mixture=True, seed=100))
    proposals, synthesis = fake.requests[:3], fake.requests[3]
    assert sorted(r["seed"] for r in proposals) == [100, 101, 102]
    for seed in (100, 101, 102):
        assert f"seed {seed}" in synthesis["messages"][0]["content"]
    assert response.system_fingerprint == "mixture:solo,solo,solo"
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "final"


async def test_mixture_drops_failed_proposers_and_keeps_the_system_prompt(start: Start) -> None:
    broken, url_a = start()
    broken.fail(500)
    fake_b, url_b = start(reply=lambda body: "merged" if is_synthesis(body) else "from b")
    fake_c, url_c = start(answer="from c")
    miners = [miner("a", url_a), miner("b", url_b), miner("c", url_c)]
    request = ChatCompletionRequest(
        messages=[
            ChatMessage(role="system", content="You are terse."),
            ChatMessage(role="user", content="q"),
        ],
        mixture=True,
    )
    async with MinerPool(miners) as pool:
        response = await pool.complete(request)
    assert response.system_fingerprint == "mixture:b,c"
    synthesis = fake_b.requests[-1]
    system = synthesis["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are terse.\n\n")
    assert "from b" in system["content"] and "from c" in system["content"]
    assert [m["role"] for m in synthesis["messages"]] == ["system", "user"]
    assert len(fake_c.requests) == 1  # b synthesized; c only proposed


async def test_mixture_streams_the_synthesis(start: Start) -> None:
    def reply(body: dict[str, Any]) -> str:
        return "the synthesized answer" if is_synthesis(body) else "a proposal"

    fake_a, url_a = start(reply=reply)
    _, url_b = start(reply=reply)
    async with MinerPool([miner("a", url_a), miner("b", url_b)]) as pool:
        chunks = await collect(pool, ask(inference_mode="mixture", stream=True))
    assert text_of(chunks) == "the synthesized answer"
    assert {c.system_fingerprint for c in chunks} == {"mixture:a,b"}
    assert [r["stream"] for r in fake_a.requests] == [False, True]
    assert chunks[-1].usage is not None


async def test_mixture_with_every_proposer_failing_is_unavailable(start: Start) -> None:
    fake, url = start()
    fake.fail(502)
    async with MinerPool([miner("a", url)]) as pool:
        with pytest.raises(ApexError) as caught:
            await pool.complete(ask(mixture=True))
    assert caught.value.code == Code.UNAVAILABLE and "a: HTTP 502" in caught.value.message


# --- no miner configured ----------------------------------------------------------------------


async def test_discovers_a_local_server_once(start: Start) -> None:
    fake, url = start(models=["nomic-embed-text", "llama3.2:latest"])
    probe = [("Ollama", closed_url()), ("LM Studio", url)]
    async with MinerPool([], local_probe=probe) as pool:
        first = await pool.complete(ask())
        second = await pool.complete(ask(model="nomic-embed-text"))
        statuses = await pool.check()
    assert first.system_fingerprint == "miner:lmstudio" and first.model == "llama3.2:latest"
    assert second.model == "nomic-embed-text"
    assert fake.model_listings == 1
    assert [(s.name, s.ok, s.discovered) for s in statuses] == [
        ("Ollama", False, True),
        ("LM Studio", True, True),
    ]


async def test_no_miner_anywhere_says_how_to_configure_one() -> None:
    ollama, lmstudio = free_port(), free_port()
    probe = [
        ("Ollama", f"http://127.0.0.1:{ollama}/v1"),
        ("LM Studio", f"http://127.0.0.1:{lmstudio}/v1"),
    ]
    async with MinerPool([], local_probe=probe) as pool:
        with pytest.raises(ApexError) as caught:
            await pool.complete(ask())
    assert caught.value.code == Code.FAILED_PRECONDITION
    assert caught.value.message == (
        f"no LLM miner is configured and none answers on 127.0.0.1:{ollama} (Ollama) or "
        f"127.0.0.1:{lmstudio} (LM Studio): set APEX_MINER=ollama (or "
        "APEX_MINER=https://your-endpoint/v1 with APEX_MINER_API_KEY and APEX_MINER_MODEL), "
        "or add [[miners]] entries to the config file"
    )
    async with MinerPool([], discover_local=False) as pool:
        with pytest.raises(ApexError) as undiscovered:
            await collect(pool, ask())
        assert await pool.check() == []
    assert undiscovered.value.code == Code.FAILED_PRECONDITION
    assert undiscovered.value.message.startswith("no LLM miner is configured: set APEX_MINER=")


async def test_check_reports_each_miner(start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = start(models=["m1", "m2"])
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    miners = [
        miner("up", url, models=["m2", "m9"]),
        miner("down", closed_url()),
        engine_miner(MinerSettings.parse("openrouter")),
    ]
    async with MinerPool(miners) as pool:
        up, down, keyless = await pool.check()
    assert up.ok and up.models == ("m1", "m2") and "does not list m9" in up.detail
    assert not down.ok and "unreachable" in down.detail
    assert not keyless.ok and keyless.detail == "no API key: set OPENROUTER_API_KEY"
    # What doctor says to do follows from the kind of problem.
    assert (up.problem, down.problem, keyless.problem) == ("model_missing", "unreachable", "no_key")


# --- keys -------------------------------------------------------------------------------------


async def test_the_key_is_sent_and_never_shown(
    start: Start, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = start(api_key=SECRET)
    monkeypatch.setenv("FAKE_MINER_KEY", SECRET)
    async with MinerPool([miner("good", url, api_key_env="FAKE_MINER_KEY")]) as pool:
        await pool.complete(ask())
    assert fake.calls[-1].headers["authorization"] == f"Bearer {SECRET}"

    fake.api_key = "sk-something-else"  # the server now refuses, and echoes the key it got
    caplog.set_level(logging.DEBUG)
    bad = miner("bad", url, api_key=SecretStr(SECRET))
    async with MinerPool([bad]) as pool:
        with pytest.raises(ApexError) as caught:
            await pool.complete(ask())
        with pytest.raises(ApexError) as streamed:
            await collect(pool, ask())
        statuses = await pool.check()
    assert SECRET in json.dumps(fake.calls[-1].headers)  # it was sent...
    for error in (caught.value, streamed.value):  # ...and shown nowhere
        assert error.code == Code.UNAVAILABLE
        assert "bad: HTTP 401 (Incorrect API key provided: ***); check its API key" in error.message
        assert SECRET not in str(error) and SECRET not in repr(error)
    assert SECRET not in statuses[0].detail and SECRET not in repr(statuses)
    assert SECRET not in caplog.text and "bad" in caplog.text
    assert SECRET not in repr(bad) and SECRET not in repr(pool)
