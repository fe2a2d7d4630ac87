"""LocalApex through the real path: RemoteApex -> gateway on 127.0.0.1 -> LocalApex -> miners.

The miners are fake OpenAI-compatible servers on 127.0.0.1 (real HTTP, real SSE).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.config import MinerSettings, Settings
from apex_mcp.gateway import create_gateway_app
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.servers import run_process, serve_asgi

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice-key-0001", "bob-key-0002"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI, str, str]]:
    first, second = FakeOpenAI(models=["m1"]), FakeOpenAI(models=["m1", "m2"])
    with serve_openai(first) as url1, serve_openai(second) as url2:
        yield first, second, url1, url2


@pytest.fixture
def settings(tmp_path: Path, fakes: tuple[FakeOpenAI, FakeOpenAI, str, str]) -> Settings:
    _, _, url1, url2 = fakes
    return Settings(
        db=tmp_path / "apex.db",
        miners=[
            MinerSettings(name="first", base_url=url1, models=["m1"], timeout=2),
            MinerSettings(name="second", base_url=url2, models=["m1", "m2"], timeout=2),
        ],
        discover_local_miners=False,
        gateway_keys={"alice": SecretStr(ALICE), "bob": SecretStr(BOB)},
    )


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    with serve_asgi(create_gateway_app(settings)) as url:
        yield url


@pytest.fixture
async def alice(gateway: str) -> AsyncIterator[RemoteApex]:
    async with RemoteApex(gateway, ALICE, timeout=20) as client:
        yield client


@pytest.fixture
async def bob(gateway: str) -> AsyncIterator[RemoteApex]:
    async with RemoteApex(gateway, BOB, timeout=20) as client:
        yield client


def ask(text: str, **fields: Any) -> m.ChatCompletionRequest:
    return m.ChatCompletionRequest(messages=[m.ChatMessage(role="user", content=text)], **fields)


async def new_chat(
    client: RemoteApex, prompt: str = "first prompt", **fields: Any
) -> m.CreateChatAndCompletionResponse:
    request = m.CreateChatAndCompletionRequest(
        user_prompt=prompt, chat_type="apex", completion_type="basic", **fields
    )
    return await client.create_chat_and_completion(request)


async def code_of(call: Any) -> Code:
    with pytest.raises(ApexError) as info:
        await call
    return info.value.code


# --- storage RPCs ---------------------------------------------------------------------------


async def test_every_storage_rpc_through_the_gateway(alice: RemoteApex) -> None:
    created = await new_chat(alice, "Tell me about the Crab Nebula", title="Nebulae")
    chat, first = created.parsed_chat, created.parsed_completion
    assert chat is not None and first is not None
    assert uuid.UUID(chat.id) and uuid.UUID(first.id)
    assert (chat.title, chat.chat_type) == ("Nebulae", "apex")
    assert first.completion_text == "" and first.metadata == {} and first.chat_id == chat.id

    second = (
        await alice.create_completion(
            m.CreateCompletionRequest(
                chat_id=chat.id, user_prompt="and the pulsar?", completion_type="reasoning"
            )
        )
    ).parsed_completion
    assert second is not None and second.completion_type == "reasoning"

    other = await alice.create_chat_and_completion(
        m.CreateChatAndCompletionRequest(user_prompt="a gravity chat", chat_type="gravity")
    )
    assert (
        other.parsed_chat is not None and other.parsed_chat.title == "a gravity chat"
    )  # titled after the prompt

    sessions = (await alice.get_chat_sessions(m.GetChatSessionsRequest())).chat_sessions
    assert [s.id for s in sessions] == [other.parsed_chat.id, chat.id]  # newest first
    apex_only = (
        await alice.get_chat_sessions(m.GetChatSessionsRequest(chat_type="apex"))
    ).chat_sessions
    assert [s.id for s in apex_only] == [chat.id]
    assert sessions[1].user_id == "alice"

    stored = (
        await alice.get_stored_chat_completions(m.GetStoredChatCompletionsRequest(chat_id=chat.id))
    ).chat_completions
    assert [c.id for c in stored] == [first.id, second.id]  # oldest first

    updated = await alice.update_completion_attributes(
        m.UpdateCompletionAttributesRequest(
            completion_id=first.id,
            completion_text="A supernova remnant in Taurus.",
            metadata={
                "deep-researcher": {
                    "jobId": "j1",
                    "status": "completed",
                    "createdAt": "2025-05-22T11:09:34Z",
                }
            },
        )
    )
    assert (
        updated.completion is not None
        and updated.completion.completion_text == "A supernova remnant in Taurus."
    )
    assert updated.completion.completed_at is not None
    got = await alice.get_chat_completion(m.GetChatCompletionRequest(completion_id=first.id))
    assert (
        got.user_prompt_text == "Tell me about the Crab Nebula"
        and got.metadata == updated.completion.metadata
    )

    research = (await alice.get_completions_with_deep_researcher_entry(m.Empty())).completions
    assert [c.id for c in research] == [first.id]

    renamed = await alice.update_chat_attributes(
        m.UpdateChatAttributesRequest(
            chat_id=chat.id, attributes={"title": "Crab", "chat_type": "gravity"}
        )
    )
    assert renamed.chat is not None and (renamed.chat.title, renamed.chat.chat_type) == (
        "Crab",
        "gravity",
    )
    assert (
        await code_of(
            alice.update_chat_attributes(
                m.UpdateChatAttributesRequest(chat_id=chat.id, attributes={"user_id": "bob"})
            )
        )
        is Code.INVALID_ARGUMENT
    )

    found = (
        await alice.search_chat_ids_by_prompt_and_completion_text(
            m.SearchChatIdsByPromptAndCompletionTextRequest(search_term="supernova")
        )
    ).chat_ids
    assert found == [chat.id]
    by_prompt = (
        await alice.search_chat_ids_by_prompt_and_completion_text(
            m.SearchChatIdsByPromptAndCompletionTextRequest(search_term="pulsar")
        )
    ).chat_ids
    assert by_prompt == [chat.id]

    assert (
        await alice.delete_completions(m.DeleteCompletionsRequest(completion_ids=[second.id]))
    ).success
    assert (
        await code_of(
            alice.get_chat_completion(m.GetChatCompletionRequest(completion_id=second.id))
        )
        is Code.NOT_FOUND
    )
    assert (await alice.delete_chats(m.DeleteChatsRequest(chat_ids=[chat.id]))).success
    assert (
        await code_of(alice.get_chat_completion(m.GetChatCompletionRequest(completion_id=first.id)))
        is Code.NOT_FOUND
    )
    assert (
        await code_of(
            alice.get_stored_chat_completions(m.GetStoredChatCompletionsRequest(chat_id=chat.id))
        )
        is Code.NOT_FOUND
    )
    assert (
        await alice.search_chat_ids_by_prompt_and_completion_text(
            m.SearchChatIdsByPromptAndCompletionTextRequest(search_term="supernova")
        )
    ).chat_ids == []


async def test_each_user_sees_only_their_own_chats(alice: RemoteApex, bob: RemoteApex) -> None:
    mine = await new_chat(alice, "alice's secret plan about zeppelins")
    assert mine.parsed_chat is not None and mine.parsed_completion is not None
    chat_id, completion_id = mine.parsed_chat.id, mine.parsed_completion.id
    await alice.update_completion_attributes(
        m.UpdateCompletionAttributesRequest(
            completion_id=completion_id, metadata={"deep-researcher": {"jobId": "j"}}
        )
    )

    assert (await bob.get_chat_sessions(m.GetChatSessionsRequest())).chat_sessions == []
    assert (
        await bob.search_chat_ids_by_prompt_and_completion_text(
            m.SearchChatIdsByPromptAndCompletionTextRequest(search_term="zeppelins")
        )
    ).chat_ids == []
    assert (await bob.get_completions_with_deep_researcher_entry(m.Empty())).completions == []
    for call in (
        bob.get_stored_chat_completions(m.GetStoredChatCompletionsRequest(chat_id=chat_id)),
        bob.get_chat_completion(m.GetChatCompletionRequest(completion_id=completion_id)),
        bob.update_chat_attributes(
            m.UpdateChatAttributesRequest(chat_id=chat_id, attributes={"title": "mine now"})
        ),
        bob.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=completion_id, completion_text="mine now"
            )
        ),
        bob.create_completion(m.CreateCompletionRequest(chat_id=chat_id, user_prompt="hijack")),
        bob.delete_chats(m.DeleteChatsRequest(chat_ids=[chat_id])),
        bob.delete_completions(m.DeleteCompletionsRequest(completion_ids=[completion_id])),
    ):
        assert await code_of(call) is Code.NOT_FOUND
    # Alice's chat came through untouched.
    stored = (
        await alice.get_stored_chat_completions(m.GetStoredChatCompletionsRequest(chat_id=chat_id))
    ).chat_completions
    assert [(c.id, c.completion_text) for c in stored] == [(completion_id, "")]
    sessions = (await alice.get_chat_sessions(m.GetChatSessionsRequest())).chat_sessions
    assert [(s.id, s.title) for s in sessions] == [(chat_id, "alice's secret plan about zeppelins")]


async def test_unknown_key_is_refused(gateway: str) -> None:
    async with RemoteApex(gateway, "nobody's key") as stranger:
        assert (
            await code_of(stranger.get_chat_sessions(m.GetChatSessionsRequest()))
            is Code.UNAUTHENTICATED
        )


# --- chat -----------------------------------------------------------------------------------


async def test_chat_through_the_gateway_non_streaming(alice: RemoteApex, fakes: Any) -> None:
    first, _, _, _ = fakes
    answer = await alice.chat_completion(
        ask(
            "hello there",
            model="Default",
            seed=7,
            sampling_parameters=m.SamplingParameters(
                temperature=0.5, top_p=0.9, max_new_tokens=64, do_sample=True
            ),
        )
    )
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == "echo: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.model, answer.system_fingerprint) == ("m1", "miner:first")
    sent = first.requests[-1]
    assert sent["max_tokens"] == 64 and sent["seed"] == 7 and sent["temperature"] == 0.5


async def test_chat_through_the_gateway_streaming(alice: RemoteApex) -> None:
    async with aclosing(
        alice.chat_completion_stream(ask("one two three four", stream=True))
    ) as stream:
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta)
    assert text == "echo: one two three four"
    assert len(chunks) > 3
    assert chunks[-1].choices == [] or chunks[-1].choices[-1].finish_reason in ("stop", "")


async def test_a_failing_miner_falls_back_to_a_healthy_one(alice: RemoteApex, fakes: Any) -> None:
    first, _, _, _ = fakes
    first.fail(503)
    answer = await alice.chat_completion(ask("still there?"))
    assert answer.system_fingerprint == "miner:second"
    assert (
        answer.choices[0].message is not None
        and answer.choices[0].message.content == "echo: still there?"
    )
    first.fail_status = None
    first.stall_after = 0  # now the first one hangs: its timeout hands over too
    async with aclosing(alice.chat_completion_stream(ask("and streaming?"))) as stream:
        chunks = [chunk async for chunk in stream]
    assert (
        "".join(c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta)
        == "echo: and streaming?"
    )


async def test_model_routing_picks_the_miner_that_serves_it(alice: RemoteApex) -> None:
    answer = await alice.chat_completion(ask("hi", model="m2"))
    assert (answer.model, answer.system_fingerprint) == ("m2", "miner:second")
    assert (
        await code_of(alice.chat_completion(ask("hi", model="no-such-model")))
        is Code.INVALID_ARGUMENT
    )


async def test_mixture_of_agents_asks_several_and_synthesizes(
    alice: RemoteApex, fakes: Any
) -> None:
    first, second, _, _ = fakes
    first.answer, second.answer = "Paris is the capital.", "The capital is Paris."
    answer = await alice.chat_completion(
        ask("capital of France?", inference_mode="Mixture-of-Agents")
    )
    assert answer.system_fingerprint.startswith("mixture:")
    everything = [r for r in first.requests + second.requests]
    synthesis = [
        r
        for r in everything
        if "Paris is the capital." in str(r["messages"])
        and "The capital is Paris." in str(r["messages"])
    ]
    assert len(synthesis) == 1  # one miner saw both proposals and wrote the final answer


async def test_every_miner_failing_is_unavailable_naming_them(
    alice: RemoteApex, fakes: Any
) -> None:
    first, second, _, _ = fakes
    first.fail(500)
    second.fail(502)
    with pytest.raises(ApexError) as info:
        await alice.chat_completion(ask("anyone?"))
    assert info.value.code is Code.UNAVAILABLE
    assert "first" in info.value.message and "second" in info.value.message


async def test_no_miner_gives_the_error_that_says_how_to_configure_one(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "apex.db", discover_local_miners=False)
    with serve_asgi(create_gateway_app(settings)) as url:
        async with RemoteApex(url) as client:
            with pytest.raises(ApexError) as info:
                await client.chat_completion(ask("hi"))
    assert info.value.code is Code.FAILED_PRECONDITION
    assert "APEX_MINER" in info.value.message


# --- bad input ------------------------------------------------------------------------------


async def test_bad_input_is_invalid_argument_never_a_crash(alice: RemoteApex) -> None:
    created = await new_chat(alice)
    assert created.parsed_chat is not None
    cases = [
        alice.chat_completion(m.ChatCompletionRequest()),
        alice.chat_completion(ask("x" * 10_000_000)),
        alice.chat_completion(
            m.ChatCompletionRequest(messages=[m.ChatMessage(role="wizard", content="hi")])
        ),
        alice.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(user_prompt="x" * 10_000_000)
        ),
        alice.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(user_prompt="p", completion_type="poetry")
        ),
        alice.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(user_prompt="p", chat_type="other")
        ),
        alice.create_chat_and_completion(m.CreateChatAndCompletionRequest(user_prompt="   ")),
        alice.create_completion(
            m.CreateCompletionRequest(
                chat_id=created.parsed_chat.id, user_prompt="p", completion_type="poetry"
            )
        ),
        alice.get_chat_completion(m.GetChatCompletionRequest(completion_id="not-a-uuid")),
        alice.get_stored_chat_completions(
            m.GetStoredChatCompletionsRequest(chat_id="'; DROP TABLE chats; --")
        ),
        alice.delete_chats(m.DeleteChatsRequest(chat_ids=[])),
        alice.delete_chats(m.DeleteChatsRequest(chat_ids=["1234"])),
        alice.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(completion_id=str(uuid.uuid4()))
        ),
        alice.get_chat_sessions(m.GetChatSessionsRequest(chat_type="bogus")),
    ]
    for call in cases:
        assert await code_of(call) is Code.INVALID_ARGUMENT
    assert (
        await code_of(
            alice.get_chat_completion(m.GetChatCompletionRequest(completion_id=str(uuid.uuid4())))
        )
        is Code.NOT_FOUND
    )
    # The chat is still there and the store still answers.
    assert len((await alice.get_chat_sessions(m.GetChatSessionsRequest())).chat_sessions) == 1


@pytest.mark.parametrize(
    "term",
    [
        '"',
        "*",
        "a AND",
        "NEAR(a b",
        "title:x",
        "^start",
        "'; DROP TABLE chats; --",
        "%_\\",
        "ünïcödé ✨",
        "   ",
        "OR OR OR",
        "(((",
        "-x",
    ],
)
async def test_search_terms_with_sql_and_fts_syntax_are_plain_text(
    alice: RemoteApex, term: str
) -> None:
    created = await new_chat(alice, f"a prompt that mentions {term} literally")
    assert created.parsed_chat is not None
    found = (
        await alice.search_chat_ids_by_prompt_and_completion_text(
            m.SearchChatIdsByPromptAndCompletionTextRequest(search_term=term)
        )
    ).chat_ids
    assert found in ([], [created.parsed_chat.id])
    assert (
        await alice.search_chat_ids_by_prompt_and_completion_text(
            m.SearchChatIdsByPromptAndCompletionTextRequest(search_term="literally")
        )
    ).chat_ids == [created.parsed_chat.id]


@pytest.mark.parametrize(
    "keys,fragment",
    [
        ('{"alice": "gw-secret-1"', "not valid JSON"),
        ("alice:gw-secret-1", "not valid JSON"),
        ('["gw-secret-1"]', "expected a JSON object"),
        ('{"alice": "gw-secret-1", "bob": "gw-secret-1"}', "the same API key"),
        ('{"alice": "  "}', "empty API key"),
    ],
)
def test_bad_gateway_keys_are_one_line_naming_the_format_never_the_keys(
    tmp_path: Path, keys: str, fragment: str
) -> None:
    done = run_process(
        [sys.executable, "-m", "apex_mcp", "gateway", "--port", "1", "--db", str(tmp_path / "db")],
        what="the gateway to refuse its keys",
        timeout=60,
        env={**os.environ, "APEX_GATEWAY_KEYS": keys},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "gateway_keys" in lines[0] and fragment in lines[0]
    assert "gw-secret" not in done.stderr + done.stdout
