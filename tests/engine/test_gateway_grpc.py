"""The gateway over gRPC, gRPC-Web and Connect binary, with connect-python's own client.

Each protocol's client (generated from apex.proto, apex_mcp/apex/gen) talks to the gateway
served by hypercorn on 127.0.0.1 (HTTP/2 h2c for gRPC, HTTP/1.1 for the others), in front of
real SQLite and fake miners / web on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httpx2 as httpx
import pyqwest
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from google.protobuf import empty_pb2
from pydantic import SecretStr

from apex_mcp.apex.gen import apex_pb2 as pb
from apex_mcp.apex.gen.apex_connect import ApexServiceClient
from apex_mcp.apex.server import DEFAULT_MAX_REQUEST_BYTES
from apex_mcp.config import MinerSettings, Settings
from apex_mcp.gateway import create_gateway_app
from tests.engine.test_research import Script, engine_settings, texts, wait_for
from tests.fakes.hostile_miner import HostileMiner, serve_hostile
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.servers import free_port, gateway_process, run_process, serve_asgi

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice-key-0001", "bob-key-0002"
AS_ALICE = {"authorization": f"Bearer {ALICE}"}
LIMIT = DEFAULT_MAX_REQUEST_BYTES  # the gateway's limit on a request

# (protocol, JSON codec?, HTTP/2?): each way a connect-python client can call
PROTOCOLS = {
    "connect-proto": (ProtocolType.CONNECT, False, False),
    "connect-json": (ProtocolType.CONNECT, True, False),
    "grpc-proto": (ProtocolType.GRPC, False, True),
    "grpc-json": (ProtocolType.GRPC, True, True),
    "grpc-web-proto": (ProtocolType.GRPC_WEB, False, False),
    "grpc-web-json-h2": (ProtocolType.GRPC_WEB, True, True),
}


@pytest.fixture
def miner() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI(models=["m1"])
    with serve_openai(fake) as url:
        yield fake, url


@pytest.fixture
def settings(tmp_path: Path, miner: tuple[FakeOpenAI, str]) -> Settings:
    return Settings(
        db=tmp_path / "apex.db",
        miners=[MinerSettings(name="first", base_url=miner[1], models=["m1"], timeout=2)],
        discover_local_miners=False,
        gateway_keys={"alice": SecretStr(ALICE), "bob": SecretStr(BOB)},
    )


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    with serve_asgi(create_gateway_app(settings)) as url:
        yield url


def client_for(url: str, protocol: str) -> ApexServiceClient:
    kind, json, http2 = PROTOCOLS[protocol]
    transport = pyqwest.HTTPTransport(
        http_version=pyqwest.HTTPVersion.HTTP2 if http2 else pyqwest.HTTPVersion.HTTP1
    )
    return ApexServiceClient(
        url, protocol=kind, proto_json=json, http_client=pyqwest.Client(transport)
    )


@pytest.fixture(params=list(PROTOCOLS))
async def apex(request: pytest.FixtureRequest, gateway: str) -> AsyncIterator[ApexServiceClient]:
    async with client_for(gateway, request.param) as client:
        yield client


async def code_of(call: Any) -> Code:
    with pytest.raises(ConnectError) as info:
        await call
    return info.value.code


def ask(text: str, **fields: Any) -> pb.ChatCompletionRequest:
    return pb.ChatCompletionRequest(messages=[pb.ChatMessage(role="user", content=text)], **fields)


# --- every RPC, every protocol --------------------------------------------------------------


async def test_every_storage_rpc(apex: ApexServiceClient) -> None:
    created = await apex.create_chat_and_completion(
        pb.CreateChatAndCompletionRequest(
            user_prompt="Tell me about the Crab Nebula",
            chat_type="apex",
            completion_type="basic",
            title="Nebulae",
        ),
        headers=AS_ALICE,
    )
    chat, first = created.parsed_chat, created.parsed_completion
    assert uuid.UUID(chat.id) and first.chat_id == chat.id
    assert (chat.title, chat.chat_type) == ("Nebulae", "apex")
    assert chat.created_at.seconds > 0  # a Timestamp, from the model's RFC 3339 text

    second = await apex.create_completion(
        pb.CreateCompletionRequest(
            chat_id=chat.id, user_prompt="and the pulsar?", completion_type="reasoning"
        ),
        headers=AS_ALICE,
    )
    assert second.parsed_completion.completion_type == "reasoning"

    sessions = await apex.get_chat_sessions(pb.GetChatSessionsRequest(), headers=AS_ALICE)
    assert [s.id for s in sessions.chat_sessions] == [chat.id]

    renamed = await apex.update_chat_attributes(
        pb.UpdateChatAttributesRequest(chat_id=chat.id, attributes={"title": "Pulsars"}),
        headers=AS_ALICE,
    )
    assert renamed.chat.title == "Pulsars"

    update = pb.UpdateCompletionAttributesRequest(
        completion_id=first.id, completion_text="A supernova remnant."
    )
    update.metadata.update({"deep-researcher": {"jobId": "j-1"}, "n": 2})
    updated = await apex.update_completion_attributes(update, headers=AS_ALICE)
    assert updated.completion.completion_text == "A supernova remnant."
    assert updated.completion.metadata["deep-researcher"]["jobId"] == "j-1"

    got = await apex.get_chat_completion(
        pb.GetChatCompletionRequest(completion_id=first.id), headers=AS_ALICE
    )
    assert (got.id, got.user_prompt_text) == (first.id, "Tell me about the Crab Nebula")
    stored = await apex.get_stored_chat_completions(
        pb.GetStoredChatCompletionsRequest(chat_id=chat.id), headers=AS_ALICE
    )
    assert {c.id for c in stored.chat_completions} == {first.id, second.parsed_completion.id}
    found = await apex.search_chat_ids_by_prompt_and_completion_text(
        pb.SearchChatIdsByPromptAndCompletionTextRequest(search_term="supernova"),
        headers=AS_ALICE,
    )
    assert list(found.chat_ids) == [chat.id]
    research = await apex.get_completions_with_deep_researcher_entry(
        empty_pb2.Empty(), headers=AS_ALICE
    )
    assert [c.id for c in research.completions] == [first.id]

    deleted = await apex.delete_completions(
        pb.DeleteCompletionsRequest(completion_ids=[second.parsed_completion.id]),
        headers=AS_ALICE,
    )
    assert deleted.success
    assert (
        await apex.delete_chats(pb.DeleteChatsRequest(chat_ids=[chat.id]), headers=AS_ALICE)
    ).success
    after = await apex.get_chat_sessions(pb.GetChatSessionsRequest(), headers=AS_ALICE)
    assert list(after.chat_sessions) == []


async def test_chat_unary_and_streaming(
    apex: ApexServiceClient, miner: tuple[FakeOpenAI, str]
) -> None:
    request = ask("hello there", seed=7)
    request.sampling_parameters.max_new_tokens = 64
    answer = await apex.chat_completion(request, headers=AS_ALICE)
    assert answer.choices[0].message.content == "echo: hello there"
    assert (answer.model, answer.system_fingerprint) == ("m1", "miner:first")
    assert miner[0].requests[-1]["max_tokens"] == 64 and miner[0].requests[-1]["seed"] == 7

    chunks = [
        chunk
        async for chunk in apex.chat_completion_stream(
            ask("one two three four", stream=True), headers=AS_ALICE
        )
    ]
    assert len(chunks) > 3
    assert "".join(c.choices[0].delta.content for c in chunks if c.choices) == (
        "echo: one two three four"
    )


@pytest.mark.parametrize("protocol", ["connect-proto", "connect-json"])
async def test_reads_over_connect_get(protocol: str, gateway: str) -> None:
    async with client_for(gateway, protocol) as apex:
        created = await apex.create_chat_and_completion(
            pb.CreateChatAndCompletionRequest(user_prompt="cacheable", chat_type="apex"),
            headers=AS_ALICE,
        )
        got = await apex.get_chat_completion(
            pb.GetChatCompletionRequest(completion_id=created.parsed_completion.id),
            headers=AS_ALICE,
            use_get=True,
        )
        assert got.user_prompt_text == "cacheable"
        sessions = apex.get_chat_sessions(pb.GetChatSessionsRequest(), use_get=True)
        assert await code_of(sessions) is Code.UNAUTHENTICATED


def test_a_write_over_get_is_refused(gateway: str) -> None:
    url = f"{gateway}/apex.v1.ApexService/DeleteChats?encoding=json&message=%7B%7D"
    response = httpx.get(url, headers=AS_ALICE)
    assert response.status_code == 405 and response.headers["allow"] == "POST"


async def test_each_user_sees_only_their_own_chats(gateway: str) -> None:
    async with client_for(gateway, "grpc-proto") as apex:
        await apex.create_chat_and_completion(
            pb.CreateChatAndCompletionRequest(user_prompt="mine", chat_type="apex"),
            headers=AS_ALICE,
        )
        bobs = await apex.get_chat_sessions(
            pb.GetChatSessionsRequest(), headers={"authorization": f"Bearer {BOB}"}
        )
        assert list(bobs.chat_sessions) == []


# --- errors ---------------------------------------------------------------------------------


async def test_errors_arrive_with_their_code(apex: ApexServiceClient) -> None:
    no_key = apex.get_chat_sessions(pb.GetChatSessionsRequest())
    assert await code_of(no_key) is Code.UNAUTHENTICATED
    wrong_key = apex.get_chat_sessions(
        pb.GetChatSessionsRequest(), headers={"authorization": "Bearer nope"}
    )
    assert await code_of(wrong_key) is Code.UNAUTHENTICATED
    missing = pb.GetChatCompletionRequest(completion_id=str(uuid.uuid4()))
    assert await code_of(apex.get_chat_completion(missing, headers=AS_ALICE)) is Code.NOT_FOUND
    bad = pb.GetChatCompletionRequest(completion_id="42")
    assert await code_of(apex.get_chat_completion(bad, headers=AS_ALICE)) is Code.INVALID_ARGUMENT
    with pytest.raises(ConnectError) as stream_error:
        async for _ in apex.chat_completion_stream(ask("hi")):
            pass
    assert stream_error.value.code is Code.UNAUTHENTICATED


async def test_deadline_exceeded_in_each_protocol(
    apex: ApexServiceClient, miner: tuple[FakeOpenAI, str]
) -> None:
    miner[0].delay = 1.5  # the miner answers after the call's 300 ms deadline
    call = apex.chat_completion(ask("slow"), headers=AS_ALICE, timeout_ms=300)
    assert await code_of(call) is Code.DEADLINE_EXCEEDED
    stream = apex.chat_completion_stream(ask("slow"), headers=AS_ALICE, timeout_ms=300)
    with pytest.raises(ConnectError) as streamed:
        async for _ in stream:
            pass
    assert streamed.value.code is Code.DEADLINE_EXCEEDED


async def test_a_keyed_write_retried_over_grpc_is_done_once(gateway: str) -> None:
    keyed = {**AS_ALICE, "idempotency-key": "create-1"}
    request = pb.CreateChatAndCompletionRequest(user_prompt="once", chat_type="apex")
    async with client_for(gateway, "grpc-proto") as apex:
        first = await apex.create_chat_and_completion(request, headers=keyed)
        again = await apex.create_chat_and_completion(request, headers=keyed)
        assert again.parsed_chat.id == first.parsed_chat.id
        sessions = await apex.get_chat_sessions(pb.GetChatSessionsRequest(), headers=AS_ALICE)
        assert len(sessions.chat_sessions) == 1
        other = pb.CreateChatAndCompletionRequest(user_prompt="another", chat_type="apex")
        reused = apex.create_chat_and_completion(other, headers=keyed)
        assert await code_of(reused) is Code.INVALID_ARGUMENT


# --- research and search --------------------------------------------------------------------


@pytest.fixture
def research_gateway(tmp_path: Path) -> Iterator[tuple[str, FakeWeb]]:
    miner = FakeOpenAI(models=["m1", "m2"], reply=Script())
    site, search = FakeWeb(), FakeSearxng()
    with (
        serve_openai(miner) as miner_url,
        serve_web(site) as base,
        serve_searxng(search) as searxng,
    ):
        search.hits = [hit(base, "/bees"), hit(base, "/tides"), hit(base, "/bees")]
        settings = engine_settings(tmp_path / "apex.db", miner_url, searxng)
        with serve_asgi(create_gateway_app(settings)) as url:
            yield url, site


@pytest.mark.parametrize("protocol", ["connect-proto", "grpc-proto", "grpc-web-proto"])
async def test_deep_research_and_web_retrieval(
    protocol: str, research_gateway: tuple[str, FakeWeb]
) -> None:
    url, site = research_gateway
    async with client_for(url, protocol) as apex:
        question = "Where do honeybees nest, and how do they choose?"
        submitted = await apex.submit_deep_researcher_job(ask(question, seed=7))
        assert submitted.status == "pending"

        async def completed() -> pb.GetDeepResearcherJobResponse | None:
            got = await apex.get_deep_researcher_job(
                pb.GetDeepResearcherJobRequest(job_id=submitted.job_id)
            )
            return got if got.status == "completed" else None

        done = await wait_for(completed, "the job to complete over " + protocol)
        from apex_mcp.apex.grpc_server import from_proto
        from apex_mcp.apex.models import GetDeepResearcherJobResponse

        assert texts(from_proto(done, GetDeepResearcherJobResponse))[-1].startswith("# ")
        found = await apex.web_retrieval(pb.WebRetrievalRequest(search_query="tides"))
        # The page on tides, though the search lists the bees first: pages are ranked.
        assert [r.url for r in found.results] == [site.url("/tides")]
        missing = pb.GetDeepResearcherJobRequest(job_id=str(uuid.uuid4()))
        assert await code_of(apex.get_deep_researcher_job(missing)) is Code.NOT_FOUND


# --- gRPC framing faults, with raw HTTP/2 -----------------------------------------------------


def frame(payload: bytes, *, compressed: bool = False) -> bytes:
    return struct.pack(">BI", int(compressed), len(payload)) + payload


@dataclass
class H2Answer:
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str]

    @property
    def status(self) -> str:
        """gRPC's status: in the trailers, or in the headers of a trailers-only answer."""
        return self.trailers.get("grpc-status") or self.headers.get("grpc-status", "")

    @property
    def message(self) -> str:
        return self.trailers.get("grpc-message") or self.headers.get("grpc-message", "")


def h2_post(base: str, path: str, body: bytes, headers: dict[str, str]) -> H2Answer:
    """One HTTP/2 (h2c) request, with the h2 library: what HTTP clients hide (trailers) shown,
    and what they refuse to send (a request without te: trailers) sent."""
    host, port = base.removeprefix("http://").split(":")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    answer = H2Answer({}, b"", {})
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.increment_flow_control_window(2**30)
        sock.sendall(conn.data_to_send())
        stream = conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":scheme", "http"), (":authority", base[7:])]
        conn.send_headers(stream, [*request, (":path", path), *headers.items()])
        pending, done = body, False
        while not done:
            while pending and conn.local_flow_control_window(stream) > 0:
                size = min(len(pending), conn.local_flow_control_window(stream), 16384)
                conn.send_data(stream, pending[:size])
                pending = pending[size:]
            if not pending and not conn.streams[stream].state_machine.state.name.startswith(
                "HALF_CLOSED_LOCAL"
            ):
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    conn.end_stream(stream)
            sock.sendall(conn.data_to_send())
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    answer.headers = _decoded(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    answer.body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.TrailersReceived):
                    answer.trailers = _decoded(event.headers)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    done = True
            sock.sendall(conn.data_to_send())
    return answer


def _decoded(headers: Any) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in headers
    }


SESSIONS = "/apex.v1.ApexService/GetChatSessions"
GRPC_HEADERS = {
    "content-type": "application/grpc",
    "te": "trailers",
    "authorization": f"Bearer {ALICE}",
}
EMPTY_REPLY = frame(pb.GetChatSessionsResponse().SerializeToString())


def test_raw_grpc_call_answers_in_a_frame_with_status_zero(gateway: str) -> None:
    request = pb.GetChatSessionsRequest().SerializeToString()
    answer = h2_post(gateway, SESSIONS, frame(request), GRPC_HEADERS)
    assert answer.headers[":status"] == "200"
    assert (answer.body, answer.status) == (EMPTY_REPLY, "0")


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        pytest.param(b"\x00\x00\x00\x00\x10abc", {}, "3", id="truncated-frame"),
        # connect-python's code for a message protobuf cannot parse: unknown
        pytest.param(b"\x00\x00\x00\x00\x05\x0a\x03\xff\xfe\xfd", {}, "2", id="not-protobuf"),
        pytest.param(frame(b"x" * (LIMIT + 1)), {}, "8", id="frame-over-the-size-limit"),
        pytest.param(
            frame(b"\x0a\x03abc", compressed=True),
            {"grpc-encoding": "snappy"},
            "12",
            id="unknown-compression",
        ),
        pytest.param(
            frame(gzip.compress(b"\x0a\x00" * 1024 * 1024 * 10), compressed=True),
            {"grpc-encoding": "gzip"},
            "8",
            id="gzip-bomb",
        ),
        pytest.param(frame(b""), {"te": ""}, "3", id="no-te-trailers"),
        pytest.param(frame(b""), {"authorization": ""}, "16", id="no-key"),
    ],
)
def test_grpc_framing_faults_get_a_status_never_a_crash(
    gateway: str, body: bytes, headers: dict[str, str], status: str
) -> None:
    sent = {k: v for k, v in {**GRPC_HEADERS, **headers}.items() if v}
    answer = h2_post(gateway, SESSIONS, body, sent)
    assert answer.status == status, answer
    assert ALICE not in answer.message
    # and the gateway goes on answering
    assert h2_post(gateway, SESSIONS, frame(b""), GRPC_HEADERS).body == EMPTY_REPLY


# --- start-up: only the gateway pays for protobuf ---------------------------------------------


def test_stdio_never_imports_protobuf_or_connect(tmp_path: Path) -> None:
    done = run_process(
        [sys.executable, "-X", "importtime", "-m", "apex_mcp"],
        what="the stdio server to end at the end of its input",
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={
            **os.environ,
            "APEX_DB": str(tmp_path / "apex.db"),
            "APEX_DISCOVER_LOCAL_MINERS": "false",
        },
    )
    lines = done.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if "|" in line}
    assert any(name.startswith("apex_mcp.server") for name in imported)  # it did serve
    heavy = sorted(
        n for n in imported if n.startswith(("google.protobuf", "connectrpc", "pyqwest"))
    )
    assert heavy == []


async def test_the_gateway_process_speaks_grpc(tmp_path: Path) -> None:
    port = free_port()
    with gateway_process(tmp_path / "apex.db", port):
        async with client_for(f"http://127.0.0.1:{port}", "grpc-proto") as apex:
            created = await apex.create_chat_and_completion(
                pb.CreateChatAndCompletionRequest(user_prompt="over gRPC", chat_type="apex")
            )
            sessions = await apex.get_chat_sessions(pb.GetChatSessionsRequest())
    assert [s.id for s in sessions.chat_sessions] == [created.parsed_chat.id]


async def test_no_key_in_the_gateways_logs_whatever_grpc_brings(tmp_path: Path) -> None:
    port = free_port()
    keys = json.dumps({"alice": ALICE})
    base = f"http://127.0.0.1:{port}"
    with gateway_process(tmp_path / "apex.db", port, {"APEX_GATEWAY_KEYS": keys}) as process:
        async with client_for(base, "grpc-proto") as apex:
            wrong = {"authorization": f"Bearer {ALICE}-but-wrong"}
            assert (
                await code_of(apex.get_chat_sessions(pb.GetChatSessionsRequest(), headers=wrong))
                is Code.UNAUTHENTICATED
            )
            await apex.get_chat_sessions(pb.GetChatSessionsRequest(), headers=AS_ALICE)
        for body in (b"\x00\x00\x00\x00\x10abc", b"\x00\x00\x00\x00\x02\xff\xff"):
            h2_post(base, SESSIONS, body, GRPC_HEADERS)
        process.terminate()
        assert process.stderr is not None
        logs = process.stderr.read().decode()
    assert ALICE not in logs


@pytest.fixture
def rate_limited_gateway(tmp_path: Path) -> Iterator[str]:
    limited = HostileMiner("rate_limited", retry_after="600")
    with serve_hostile(limited) as miner_url:
        settings = Settings(
            db=tmp_path / "apex.db",
            miners=[MinerSettings(name="busy", base_url=miner_url, timeout=5)],
            discover_local_miners=False,
        )
        with serve_asgi(create_gateway_app(settings)) as url:
            yield url


@pytest.mark.parametrize("protocol", ["connect-proto", "grpc-proto", "grpc-web-proto"])
async def test_a_rate_limit_says_when_to_retry(protocol: str, rate_limited_gateway: str) -> None:
    async with client_for(rate_limited_gateway, protocol) as apex:
        with pytest.raises(ConnectError) as caught:
            await apex.chat_completion(ask("hi"))
    assert caught.value.code is Code.RESOURCE_EXHAUSTED
    assert "every miner is rate limited" in caught.value.message
    assert "retry after " in caught.value.message  # the engine's advice, as over JSON


def test_the_gateway_itself_keeps_grpc_timeout(gateway: str, miner: tuple[FakeOpenAI, str]) -> None:
    miner[0].delay = 1.5  # the miner answers after the call's 300 ms deadline
    request = frame(ask("slow").SerializeToString())
    headers = {**GRPC_HEADERS, "grpc-timeout": "300m"}
    answer = h2_post(gateway, "/apex.v1.ApexService/ChatCompletion", request, headers)
    assert answer.status == "4", answer  # deadline_exceeded, from the server


def test_without_the_extra_the_gateway_serves_json_and_says_how_to_add_the_rest(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "apex_mcp.apex.grpc_server", None)  # as if not installed
    with serve_asgi(create_gateway_app(settings)) as url:
        json_call = httpx.post(
            f"{url}/apex.v1.ApexService/GetChatSessions", json={}, headers=AS_ALICE
        )
        grpc_call = httpx.post(
            f"{url}/apex.v1.ApexService/GetChatSessions",
            content=frame(b""),
            headers={**AS_ALICE, "content-type": "application/grpc"},
        )
    assert json_call.status_code == 200 and json_call.json() == {}
    assert grpc_call.status_code == 415
    assert "pip install 'apex-mcp[gateway]'" in caplog.text
