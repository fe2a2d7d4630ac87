"""Failures between RemoteApex and a server: each gives the right ApexError, saying what to do."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import anyio
import pytest

from apex_mcp.apex import connect
from apex_mcp.apex import models as m
from apex_mcp.apex.errors import HINTS, ApexError, Code
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.apex.server import create_app, serve_client
from tests.doubles import ScriptedApex
from tests.servers import free_port, serve_asgi

pytestmark = pytest.mark.anyio

KEY = "sk-apex-secret-0123456789"
CHAT = m.ChatCompletionRequest(messages=[m.ChatMessage(role="user", content="hi")])
CREATE = m.CreateChatAndCompletionRequest(
    user_prompt="p", chat_type="apex", completion_type="basic"
)
READ = m.GetChatCompletionRequest(completion_id="c1")


@pytest.fixture
def double() -> ScriptedApex:
    return ScriptedApex()


@pytest.fixture
def base_url(double: ScriptedApex) -> Iterator[str]:
    with serve_asgi(create_app(serve_client(double, tokens={KEY}))) as url:
        yield url


def remote(url: str, key: str = KEY, **kwargs: Any) -> RemoteApex:
    kwargs.setdefault("backoff_base", 0.01)
    return RemoteApex(url, key, **kwargs)


class Flaky:
    """Fails with ``error`` the first ``times`` calls, then answers ``answer``."""

    def __init__(self, error: ApexError, times: int, answer: m.Message) -> None:
        self.error, self.times, self.answer, self.calls = error, times, answer, 0

    def __call__(self, request: m.Message) -> Any:
        self.calls += 1
        return self.error if self.calls <= self.times else self.answer


async def test_unauthenticated_key_says_what_to_fix(base_url: str) -> None:
    async with remote(base_url, key="sk-wrong-key-987") as client:
        with pytest.raises(ApexError) as info:
            await client.get_chat_completion(READ)
    assert info.value.code is Code.UNAUTHENTICATED
    assert "APEX_API_KEY" in info.value.explain()
    assert "sk-wrong-key-987" not in str(info.value) + repr(info.value) + info.value.explain()


async def test_missing_key_is_unauthenticated(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APEX_API_KEY", raising=False)
    monkeypatch.delenv("MACROCOSMOS_API_KEY", raising=False)
    async with RemoteApex(base_url) as client:
        assert not client.has_api_key
        with pytest.raises(ApexError) as info:
            await client.get_chat_completion(READ)
    assert info.value.code is Code.UNAUTHENTICATED


async def test_key_comes_from_the_environment(
    base_url: str, double: ScriptedApex, monkeypatch: pytest.MonkeyPatch
) -> None:
    double.answers["get_chat_completion"] = m.StoredChatCompletion(id="c1")
    monkeypatch.delenv("APEX_API_KEY", raising=False)
    monkeypatch.setenv("MACROCOSMOS_API_KEY", KEY)
    async with RemoteApex(base_url) as client:
        assert (await client.get_chat_completion(READ)).id == "c1"
    monkeypatch.setenv("APEX_API_KEY", KEY)
    monkeypatch.setenv("MACROCOSMOS_API_KEY", "other")
    async with RemoteApex(base_url) as client:
        assert (await client.get_chat_completion(READ)).id == "c1"


@pytest.mark.parametrize(
    "code",
    [Code.NOT_FOUND, Code.INVALID_ARGUMENT, Code.PERMISSION_DENIED, Code.FAILED_PRECONDITION],
)
async def test_server_errors_arrive_with_code_and_message(
    code: Code, base_url: str, double: ScriptedApex
) -> None:
    double.answers["get_chat_completion"] = ApexError(code, "no completion c1")
    async with remote(base_url) as client:
        with pytest.raises(ApexError) as info:
            await client.get_chat_completion(READ)
    assert info.value.code is code
    assert info.value.message == "no completion c1"
    assert len(double.calls) == 1  # not retryable


async def test_resource_exhausted_honours_retry_after_on_reads(
    base_url: str, double: ScriptedApex
) -> None:
    flaky = Flaky(
        ApexError(Code.RESOURCE_EXHAUSTED, "slow down", retry_after=1),
        1,
        m.StoredChatCompletion(id="c1"),
    )
    double.answers["get_chat_completion"] = flaky
    async with remote(base_url) as client:
        started = anyio.current_time()
        got = await client.get_chat_completion(READ)
        waited = anyio.current_time() - started
    assert got.id == "c1" and flaky.calls == 2
    assert waited >= 0.9  # it waited as the server asked, not its own short backoff


async def test_resource_exhausted_on_a_create_is_reported_with_retry_after(
    base_url: str, double: ScriptedApex
) -> None:
    double.answers["create_chat_and_completion"] = ApexError(
        Code.RESOURCE_EXHAUSTED, "slow down", retry_after=7
    )
    async with remote(base_url) as client:
        with pytest.raises(ApexError) as info:
            await client.create_chat_and_completion(CREATE)
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert info.value.retry_after == 7
    assert len(double.calls) == 1


async def test_retry_after_beyond_the_deadline_gives_up_at_once(
    base_url: str, double: ScriptedApex
) -> None:
    double.answers["get_chat_completion"] = ApexError(
        Code.RESOURCE_EXHAUSTED, "slow down", retry_after=30
    )
    async with remote(base_url) as client:
        with pytest.raises(ApexError) as info:
            await client.get_chat_completion(READ, timeout=2)
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert len(double.calls) == 1


async def test_unavailable_then_success_on_a_read(base_url: str, double: ScriptedApex) -> None:
    flaky = Flaky(
        ApexError(Code.UNAVAILABLE, "overloaded"),
        2,
        m.GetChatSessionsResponse(chat_sessions=[m.ChatSession(id="a")]),
    )
    double.answers["get_chat_sessions"] = flaky
    async with remote(base_url) as client:
        got = await client.get_chat_sessions(m.GetChatSessionsRequest())
    assert [s.id for s in got.chat_sessions] == ["a"]
    assert flaky.calls == 3


async def test_retries_stop_after_max_retries(base_url: str, double: ScriptedApex) -> None:
    double.answers["get_chat_sessions"] = ApexError(Code.UNAVAILABLE, "down")
    async with remote(base_url, max_retries=2) as client:
        with pytest.raises(ApexError) as info:
            await client.get_chat_sessions(m.GetChatSessionsRequest())
    assert info.value.code is Code.UNAVAILABLE
    assert len(double.calls) == 3


@pytest.mark.parametrize(
    "method,request_",
    [
        ("create_chat_and_completion", CREATE),
        ("chat_completion", CHAT),
        ("delete_chats", m.DeleteChatsRequest(chat_ids=["a"])),
    ],
)
async def test_unavailable_on_a_write_is_not_retried(
    method: str, request_: m.Message, base_url: str, double: ScriptedApex
) -> None:
    double.answers[method] = ApexError(Code.UNAVAILABLE, "overloaded")
    async with remote(base_url) as client:
        with pytest.raises(ApexError) as info:
            await getattr(client, method)(request_)
    assert info.value.code is Code.UNAVAILABLE
    assert len(double.calls) == 1


async def test_broken_connection_is_retried_on_reads(double: ScriptedApex) -> None:
    port = free_port()
    double.answers["get_chat_completion"] = m.StoredChatCompletion(id="c1")
    done = threading.Event()

    def serve_later() -> None:  # the server comes up while the client is already retrying
        time.sleep(0.3)
        with serve_asgi(create_app(serve_client(double, tokens={KEY})), port=port):
            done.wait(30)

    thread = threading.Thread(target=serve_later)
    thread.start()
    try:
        async with remote(f"http://127.0.0.1:{port}", backoff_base=0.2, max_retries=8) as client:
            got = await client.get_chat_completion(READ, timeout=10)
    finally:
        done.set()
        thread.join()
    assert got.id == "c1"


async def test_nothing_listening_gives_unavailable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with remote(url, max_retries=1) as client:
        with pytest.raises(ApexError) as info:
            await client.create_completion(m.CreateCompletionRequest(chat_id="x"))
    assert info.value.code is Code.UNAVAILABLE
    assert url in info.value.message
    assert "APEX_BASE_URL" in info.value.explain()


async def test_deadline_that_expires(base_url: str, double: ScriptedApex) -> None:
    double.delay = 3
    double.answers["get_chat_completion"] = m.StoredChatCompletion(id="c1")
    async with remote(base_url) as client:
        started = anyio.current_time()
        with pytest.raises(ApexError) as info:
            await client.get_chat_completion(READ, timeout=0.5)
    assert info.value.code is Code.DEADLINE_EXCEEDED
    assert anyio.current_time() - started < 2.5  # it did not wait for the slow answer


async def test_server_enforces_connect_timeout_ms(base_url: str, double: ScriptedApex) -> None:
    import httpx2

    double.delay = 3
    double.answers["get_chat_completion"] = m.StoredChatCompletion(id="c1")
    async with httpx2.AsyncClient(base_url=base_url, timeout=10) as raw:
        answer = await raw.post(
            "/apex.v1.ApexService/GetChatCompletion",
            json={"completionId": "c1"},
            headers={"authorization": f"Bearer {KEY}", "connect-timeout-ms": "300"},
        )
    assert answer.status_code == 504
    assert answer.json()["code"] == "deadline_exceeded"


async def test_stream_that_ends_in_an_error_envelope(base_url: str, double: ScriptedApex) -> None:
    chunk = m.ChatCompletionChunkResponse(
        id="r", choices=[m.ChunkChoice(delta=m.ChoiceDelta(content="par"))]
    )
    double.answers["chat_completion_stream"] = [
        chunk,
        ApexError(Code.RESOURCE_EXHAUSTED, "miner quota used up"),
    ]
    got = []
    async with remote(base_url) as client:
        with pytest.raises(ApexError) as info:
            async with aclosing(client.chat_completion_stream(CHAT)) as stream:
                async for item in stream:
                    got.append(item)
    assert got == [chunk]
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert info.value.message == "miner quota used up"


async def test_stream_refused_before_it_starts(base_url: str) -> None:
    async with remote(base_url, key="wrong-key-abc") as client:
        with pytest.raises(ApexError) as info:
            async with aclosing(client.chat_completion_stream(CHAT)) as stream:
                async for _ in stream:
                    pass
    assert info.value.code is Code.UNAUTHENTICATED


def cut_stream_app(tail: bytes) -> Any:
    """A server that sends one good chunk, then ``tail``, then ends without an end-stream."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        chunk = m.ChatCompletionChunkResponse(
            id="r", choices=[m.ChunkChoice(delta=m.ChoiceDelta(content="par"))]
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/connect+json")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": connect.pack_envelope(connect.encode_message(chunk)),
                "more_body": True,
            }
        )
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    return app


@pytest.mark.parametrize("tail", [b"", connect.pack_envelope(b'{"id": "x"}')[:7]])
async def test_stream_cut_midway(tail: bytes) -> None:
    with serve_asgi(cut_stream_app(tail)) as url:
        got = []
        async with remote(url) as client:
            with pytest.raises(ApexError) as info:
                async with aclosing(client.chat_completion_stream(CHAT)) as stream:
                    async for item in stream:
                        got.append(item)
    assert len(got) == 1
    assert info.value.code is Code.UNAVAILABLE
    assert "incomplete" in info.value.message


def static_app(
    status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), *(headers or [])],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


PROXY_PAGE = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
    b"<body><center><h1>503</h1></center><hr><center>nginx</center></body></html>"
)


async def test_a_proxys_html_503_page() -> None:
    with serve_asgi(static_app(503, PROXY_PAGE, b"text/html")) as url:
        async with remote(url, max_retries=1) as client:
            with pytest.raises(ApexError) as info:
                await client.create_chat_and_completion(CREATE)
    assert info.value.code is Code.UNAVAILABLE
    assert "503" in info.value.message and "HTML" in info.value.message
    assert "<html>" not in info.value.message


@pytest.mark.parametrize(
    "status,code",
    [
        (400, Code.INTERNAL),
        (401, Code.UNAUTHENTICATED),
        (403, Code.PERMISSION_DENIED),
        (404, Code.UNIMPLEMENTED),
        (429, Code.UNAVAILABLE),
        (502, Code.UNAVAILABLE),
        (504, Code.UNAVAILABLE),
        (418, Code.UNKNOWN),
    ],
)
async def test_bare_http_statuses_map_to_codes(status: int, code: Code) -> None:
    with serve_asgi(static_app(status, b"nope", b"text/plain")) as url:
        async with remote(url, max_retries=0) as client:
            with pytest.raises(ApexError) as info:
                await client.get_chat_completion(READ)
    assert info.value.code is code


async def test_malformed_success_body_is_an_internal_error() -> None:
    with serve_asgi(static_app(200, b'{"id": 5, "chatId": ["x"]}', b"application/json")) as url:
        async with remote(url) as client:
            with pytest.raises(ApexError) as info:
                await client.get_chat_completion(READ)
    assert info.value.code is Code.INTERNAL
    assert "malformed" in info.value.message


async def test_empty_url_results_are_dropped(base_url: str, double: ScriptedApex) -> None:
    double.answers["web_retrieval"] = m.WebRetrievalResponse(
        results=[
            m.WebSearchResult(url="", content="", relevant=""),
            m.WebSearchResult(url="https://a.example/", content="c"),
        ]
    )
    async with remote(base_url) as client:
        got = await client.web_retrieval(m.WebRetrievalRequest(search_query="q"))
    assert [r.url for r in got.results] == ["https://a.example/"]


async def test_the_key_never_appears_in_errors_logs_or_reprs(
    base_url: str, double: ScriptedApex, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A careless server that echoes the request's authorization back in its error.
    double.answers["get_chat_completion"] = lambda request: ApexError(
        Code.UNAVAILABLE, f"bad header Bearer {KEY}"
    )
    double.answers["create_completion"] = ApexError(Code.INVALID_ARGUMENT, f"key {KEY} is odd")
    async with remote(base_url, max_retries=2) as client:
        texts = [repr(client), str(client.__dict__)]
        for call in (
            client.get_chat_completion(READ),
            client.create_completion(m.CreateCompletionRequest()),
        ):
            with pytest.raises(ApexError) as info:
                await call
            texts += [str(info.value), repr(info.value), info.value.explain(), str(info.value.args)]
    texts.append(caplog.text)
    for text in texts:
        assert KEY not in text
    assert "[redacted]" in texts[2]


@pytest.mark.parametrize(
    "hint",
    [
        "check the network, or set APEX_SEARCH_PROVIDER=searxng with APEX_SEARXNG_URL",
        "start Ollama (`ollama serve`) or LM Studio (its local server)",
    ],
)
def test_advice_crosses_the_wire_as_advice(hint: str) -> None:
    """The engine behind a gateway knows which part failed; its advice reaches the client's
    user as it was given, and the client adds no advice about its own server on top."""
    sent = ApexError(Code.UNAVAILABLE, "the search provider could not be reached", hint=hint)
    received = connect.error_from_json(connect.error_json(sent))
    assert received is not None
    assert received.explain() == sent.explain()
    assert received.own_hint == hint and "APEX_BASE_URL" not in received.explain()


def test_a_message_without_advice_gets_the_codes_advice_on_arrival() -> None:
    received = connect.error_from_json({"code": "unauthenticated", "message": "bad key"})
    assert received is not None and received.message == "bad key"
    assert received.explain() == f"bad key ({HINTS[Code.UNAUTHENTICATED]})"
