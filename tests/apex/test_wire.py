"""RemoteApex -> wire server over real HTTP/2 on 127.0.0.1 -> a scripted ApexClient -> back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apex_mcp.apex import models as m
from apex_mcp.apex.client import RPCS, ApexClient
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.apex.server import create_app, serve_client
from tests.doubles import ScriptedApex
from tests.servers import serve_asgi

pytestmark = pytest.mark.anyio

SAMPLES = json.loads((Path(__file__).parent.parent / "data" / "apex_docs_samples.json").read_text())
T0 = datetime(2025, 7, 2, 13, 28, 43, 154364, tzinfo=UTC)
T1 = datetime(2025, 7, 2, 13, 29, 8, 693000, tzinfo=UTC)


class Recorder:
    """ASGI middleware noting each request's HTTP version and raw body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()

        async def tap() -> Any:
            event = await receive()
            body.extend(event.get("body", b""))
            if not event.get("more_body"):
                self.seen.append((scope["http_version"], scope["path"], bytes(body)))
            return event

        await self.app(scope, tap, send)


@pytest.fixture
def double() -> ScriptedApex:
    return ScriptedApex()


@pytest.fixture
def recorder(double: ScriptedApex) -> Recorder:
    return Recorder(create_app(serve_client(double, tokens={"good-key"})))


@pytest.fixture
def base_url(recorder: Recorder) -> Iterator[str]:
    with serve_asgi(recorder) as url:
        yield url


@pytest.fixture
async def remote(base_url: str) -> Any:
    async with RemoteApex(base_url, "good-key", timeout=10) as client:
        yield client


def rich_cases() -> dict[str, tuple[m.Message, Any]]:
    """One request and one answer per RPC, using every kind of field there is."""
    chat_request = m.ChatCompletionRequest(
        messages=[
            m.ChatMessage(role="system", content="be brief"),
            m.ChatMessage(role="user", content="héllo ✨"),
        ],
        seed=2**40,
        model="Default",
        mixture=False,  # optional set to its default: must arrive as set
        sampling_parameters=m.SamplingParameters(
            temperature=0.7, top_p=0.95, top_k=0, max_new_tokens=4096, do_sample=True
        ),
        inference_mode="Reasoning-Fast",
        json_format=True,
        stream=False,
        timeout=60,
        uids=[1, 2],
    )
    completion = m.StoredChatCompletion(
        id="c1",
        chat_id="chat1",
        completion_type="basic",
        created_at=T0,
        completed_at=T1,
        user_prompt_text="q",
        completion_text="a",
        metadata={"deep-researcher": {"jobId": "j", "status": "completed"}, "n": [1, 2.5, None]},
    )
    parsed = m.ParsedCompletion(
        id="c1",
        chat_id="chat1",
        created_at=T0,
        user_prompt_text="q",
        completion_type="basic",
        metadata={},
    )
    session = m.ChatSession(
        id="chat1", user_id="u", title="t", chat_type="apex", created_at=T0, updated_at=T1
    )
    return {
        "ChatCompletion": (
            chat_request,
            m.ChatCompletionResponse(
                id="r1",
                created=1749034638,
                model="mistral",
                object="chat.completion",
                choices=[
                    m.Choice(
                        finish_reason="stop",
                        index=0,
                        message=m.ChatCompletionMessage(
                            content="hi",
                            role="assistant",
                            tool_calls=[
                                m.ChatCompletionMessageToolCall(
                                    id="t", function=m.Function(name="f", arguments=["{}"])
                                )
                            ],
                        ),
                        logprobs=m.ChoiceLogprobs(
                            content=[
                                m.ChatCompletionTokenLogprob(
                                    token="hi",
                                    bytes=[104, 105],
                                    logprob=-0.25,
                                    top_logprobs=[m.TopLogprob(token="hi", logprob=-0.25)],
                                )
                            ]
                        ),
                    )
                ],
                usage=m.CompletionUsage(
                    prompt_tokens=3,
                    completion_tokens=1,
                    total_tokens=4,
                    completion_tokens_details=m.CompletionTokensDetails(reasoning_tokens=9),
                ),
            ),
        ),
        "ChatCompletionStream": (
            chat_request.model_copy(update={"stream": True}),
            [
                m.ChatCompletionChunkResponse(
                    id="r",
                    created=1,
                    choices=[m.ChunkChoice(delta=m.ChoiceDelta(role="assistant", content="Hel"))],
                ),
                m.ChatCompletionChunkResponse(
                    id="r",
                    created=1,
                    choices=[m.ChunkChoice(delta=m.ChoiceDelta(content="lo " * 600))],
                ),
                m.ChatCompletionChunkResponse(
                    id="r",
                    created=1,
                    choices=[m.ChunkChoice(delta=m.ChoiceDelta(), finish_reason="stop")],
                    usage=m.CompletionUsage(total_tokens=7),
                ),
            ],
        ),
        "WebRetrieval": (
            m.WebRetrievalRequest(
                search_query="What is Bittensor?", n_miners=3, n_results=0, max_response_time=20
            ),
            m.WebRetrievalResponse(
                results=[
                    m.WebSearchResult(url="https://a.example/", content="c" * 5000, relevant="r")
                ]
            ),
        ),
        "SubmitDeepResearcherJob": (
            chat_request,
            m.SubmitDeepResearcherJobResponse(
                job_id="j",
                status="pending",
                created_at="2025-05-30T14:32:05.758727Z",
                updated_at="2025-05-30T14:32:05.758727Z",
            ),
        ),
        "GetDeepResearcherJob": (
            m.GetDeepResearcherJobRequest(job_id="j"),
            m.GetDeepResearcherJobResponse(
                job_id="j",
                status="failed",
                result=[m.DeepResearcherResultChunk(seq_id=1, chunk='[{"content": "## Plan\\n"}]')],
                error="",
            ),
        ),
        "GetChatSessions": (
            m.GetChatSessionsRequest(chat_type="apex"),
            m.GetChatSessionsResponse(chat_sessions=[session, session]),
        ),
        "GetStoredChatCompletions": (
            m.GetStoredChatCompletionsRequest(chat_id="chat1"),
            m.GetStoredChatCompletionsResponse(chat_completions=[completion]),
        ),
        "GetChatCompletion": (m.GetChatCompletionRequest(completion_id="c1"), completion),
        "UpdateChatAttributes": (
            m.UpdateChatAttributesRequest(
                chat_id="chat1", attributes={"title": "new", "chat_type": "gravity"}
            ),
            m.UpdateChatAttributesResponse(chat=session),
        ),
        "DeleteChats": (
            m.DeleteChatsRequest(chat_ids=["a", "b"]),
            m.DeleteChatsResponse(success=True),
        ),
        "CreateChatAndCompletion": (
            m.CreateChatAndCompletionRequest(
                user_prompt="p", chat_type="apex", completion_type="basic", title=""
            ),
            m.CreateChatAndCompletionResponse(
                parsed_chat=m.ParsedChat(id="chat1", title="", created_at=T0, chat_type="apex"),
                parsed_completion=parsed,
            ),
        ),
        "CreateCompletion": (
            m.CreateCompletionRequest(
                chat_id="chat1", user_prompt="p", completion_type="reasoning"
            ),
            m.CreateCompletionResponse(parsed_completion=parsed),
        ),
        "DeleteCompletions": (
            m.DeleteCompletionsRequest(completion_ids=["c1"]),
            m.DeleteCompletionsResponse(success=False),
        ),
        "SearchChatIdsByPromptAndCompletionText": (
            m.SearchChatIdsByPromptAndCompletionTextRequest(search_term='"quoted" AND *'),
            m.SearchChatIdsByPromptAndCompletionTextResponse(chat_ids=["chat1"]),
        ),
        "UpdateCompletionAttributes": (
            m.UpdateCompletionAttributesRequest(
                completion_id="c1", completion_text="", metadata={"k": {"nested": True}}
            ),
            m.UpdateCompletionAttributesResponse(completion=completion),
        ),
        "GetCompletionsWithDeepResearcherEntry": (
            m.Empty(),
            m.GetCompletionsWithDeepResearcherEntryResponse(completions=[parsed]),
        ),
    }


async def test_remote_apex_implements_the_contract(remote: RemoteApex) -> None:
    client: ApexClient = remote
    assert isinstance(client, ApexClient)


@pytest.mark.parametrize("rpc_name", list(RPCS))
async def test_round_trip_of_every_rpc_over_http2(
    rpc_name: str, remote: RemoteApex, double: ScriptedApex, recorder: Recorder
) -> None:
    rpc = RPCS[rpc_name]
    request, answer = rich_cases()[rpc_name]
    double.answers[rpc.attr] = answer
    if rpc.streaming:
        async with aclosing(remote.chat_completion_stream(request)) as stream:  # type: ignore[arg-type]
            got = [chunk async for chunk in stream]
        assert got == answer
    else:
        got = await getattr(remote, rpc.attr)(request, timeout=5)
        assert got == answer
    assert len(double.calls) == 1
    attr, received, timeout = double.calls[0]
    assert attr == rpc.attr
    assert received == request  # every field, optional presence included
    assert timeout is not None and 0 < timeout <= 10
    versions = {version for version, _, _ in recorder.seen}
    assert versions == {"2"}


@pytest.mark.parametrize("rpc_name", [k for k in SAMPLES if not k.startswith("_")])
async def test_wire_json_matches_the_docs_samples(
    rpc_name: str, remote: RemoteApex, double: ScriptedApex, recorder: Recorder, base_url: str
) -> None:
    from tests.apex.test_models import shape_matches

    rpc = RPCS[rpc_name]
    sample = SAMPLES[rpc_name]
    double.answers[rpc.attr] = rpc.response.from_wire(sample["response"])
    await getattr(remote, rpc.attr)(rpc.request.from_wire(sample["request"]))
    sent = json.loads(recorder.seen[-1][2])  # small bodies go uncompressed
    shape_matches(sent, sample["request"])
    import httpx2

    async with httpx2.AsyncClient(base_url=base_url) as raw:
        answer = await raw.post(
            rpc.path,
            json=sample["request"],
            headers={"authorization": "Bearer good-key"},
        )
    assert answer.status_code == 200
    shape_matches(answer.json(), sample["response"])


async def test_large_bodies_travel_gzipped(
    remote: RemoteApex, double: ScriptedApex, recorder: Recorder
) -> None:
    double.answers["update_completion_attributes"] = m.UpdateCompletionAttributesResponse(
        completion=m.StoredChatCompletion(completion_text="z" * 100_000)
    )
    request = m.UpdateCompletionAttributesRequest(completion_id="c", completion_text="y" * 100_000)
    got = await remote.update_completion_attributes(request)
    assert got.completion is not None and got.completion.completion_text == "z" * 100_000
    assert double.calls[0][1] == request
    assert len(recorder.seen[-1][2]) < 5_000  # gzip on the wire
