"""Malformed input to the wire server gets the right Connect error, and it keeps serving."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest

from apex_mcp.apex import connect
from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.server import create_app, serve_client
from tests.doubles import ScriptedApex
from tests.servers import serve_asgi

pytestmark = pytest.mark.anyio

UNARY = "/apex.v1.ApexService/GetChatCompletion"
STREAM = "/apex.v1.ApexService/ChatCompletionStream"
JSON = {"content-type": "application/json"}
CONNECT_JSON = {"content-type": "application/connect+json"}


@pytest.fixture
def double() -> ScriptedApex:
    return ScriptedApex(
        get_chat_completion=m.StoredChatCompletion(id="c1"),
        chat_completion_stream=[m.ChatCompletionChunkResponse(id="r")],
    )


@pytest.fixture
def base_url(double: ScriptedApex) -> Iterator[str]:
    app = create_app(serve_client(double), max_request_bytes=64 * 1024)
    with serve_asgi(app) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=base_url, http1=False, http2=True) as client:
        yield client
    # After whatever the test sent, the server still answers a good request.
    async with httpx2.AsyncClient(base_url=base_url) as client:
        answer = await client.post(UNARY, json={"completionId": "c1"})
        assert answer.status_code == 200 and answer.json() == {"id": "c1"}


def connect_error(answer: httpx2.Response) -> str:
    body = answer.json()
    assert isinstance(body.get("message"), str) and body["message"]
    return str(body["code"])


@pytest.mark.parametrize(
    "body,fragment",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"completionId": 5}', "completionId"),
        (b'"\xff\xfe"', "not valid JSON"),
    ],
)
async def test_bad_json_and_wrong_types_are_invalid_argument(
    http: httpx2.AsyncClient, body: bytes, fragment: str
) -> None:
    answer = await http.post(UNARY, content=body, headers=JSON)
    assert answer.status_code == 400
    assert connect_error(answer) == "invalid_argument"
    assert fragment in answer.json()["message"]


async def test_wrong_types_in_nested_fields_name_the_field(http: httpx2.AsyncClient) -> None:
    answer = await http.post(
        "/apex.v1.ApexService/ChatCompletion",
        json={"messages": [{"role": "user", "content": 7}], "seed": "x"},
    )
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "messages.0.content" in message and "seed" in message


async def test_oversized_body_is_resource_exhausted(http: httpx2.AsyncClient) -> None:
    answer = await http.post(UNARY, content=b"x" * 100_000, headers=JSON)
    assert answer.status_code == 429
    assert connect_error(answer) == "resource_exhausted"


async def test_gzip_bomb_is_refused(http: httpx2.AsyncClient) -> None:
    bomb = gzip.compress(b'{"completionId": "' + b"a" * 10_000_000 + b'"}')
    answer = await http.post(UNARY, content=bomb, headers={**JSON, "content-encoding": "gzip"})
    assert answer.status_code == 429
    assert connect_error(answer) == "resource_exhausted"


async def test_gzip_request_is_read(http: httpx2.AsyncClient) -> None:
    body = gzip.compress(b'{"completionId": "c1"}')
    answer = await http.post(UNARY, content=body, headers={**JSON, "content-encoding": "gzip"})
    assert answer.status_code == 200 and answer.json() == {"id": "c1"}


async def test_unknown_encoding_is_unimplemented(http: httpx2.AsyncClient) -> None:
    answer = await http.post(UNARY, content=b"{}", headers={**JSON, "content-encoding": "br"})
    assert connect_error(answer) == "unimplemented"


@pytest.mark.parametrize(
    "path", ["/apex.v1.ApexService/NoSuchMethod", "/", "/apex.v2.Other/ChatCompletion"]
)
async def test_unknown_method_is_404_unimplemented(http: httpx2.AsyncClient, path: str) -> None:
    answer = await http.post(path, json={})
    assert answer.status_code == 404
    assert connect_error(answer) == "unimplemented"


async def test_get_and_wrong_content_type_are_refused(http: httpx2.AsyncClient) -> None:
    answer = await http.get(UNARY)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    answer = await http.post(UNARY, content=b"{}", headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    answer = await http.post(STREAM, content=b"{}", headers=JSON)
    assert answer.status_code == 415


async def test_bad_timeout_header_is_invalid_argument(http: httpx2.AsyncClient) -> None:
    answer = await http.post(UNARY, json={}, headers={"connect-timeout-ms": "soon"})
    assert connect_error(answer) == "invalid_argument"


def end_stream_error(body: bytes) -> dict[str, str] | None:
    reader = connect.EnvelopeReader(1 << 20)
    envelopes = reader.feed(body)
    flags, payload = envelopes[-1]
    assert flags & connect.FLAG_END_STREAM
    error: dict[str, str] | None = json.loads(payload).get("error")
    return error


@pytest.mark.parametrize(
    "body",
    [
        b"",  # no envelope
        b"\x00\x00\x00",  # a cut prefix
        b"\x00\x00\x00\x00\x10{}",  # a length longer than the data
        connect.pack_envelope(b"{}") + connect.pack_envelope(b"{}"),  # two messages
        connect.pack_envelope(b"{}", connect.FLAG_END_STREAM),  # a flag a request can't have
        connect.pack_envelope(b"not json"),
        connect.pack_envelope(b"\x1f\x8b garbage", connect.FLAG_COMPRESSED),
    ],
)
async def test_bad_envelopes_end_the_stream_with_invalid_argument(
    http: httpx2.AsyncClient, body: bytes
) -> None:
    answer = await http.post(STREAM, content=body, headers=CONNECT_JSON)
    assert answer.status_code == 200  # Connect streams carry their errors in the trailer
    error = end_stream_error(answer.content)
    assert error is not None and error["code"] == "invalid_argument"


async def test_good_stream_ends_with_an_empty_trailer(http: httpx2.AsyncClient) -> None:
    answer = await http.post(STREAM, content=connect.pack_envelope(b"{}"), headers=CONNECT_JSON)
    assert answer.status_code == 200
    assert end_stream_error(answer.content) is None
    assert connect.EnvelopeReader(1 << 20).feed(answer.content)[0][1] == b'{"id":"r"}'


async def test_a_crashing_implementation_is_an_internal_error(
    http: httpx2.AsyncClient, double: ScriptedApex
) -> None:
    def boom(request: m.Message) -> m.Message:
        raise RuntimeError("bug in the implementation")

    double.answers["get_chat_completion"] = boom
    answer = await http.post(UNARY, json={"completionId": "c1"})
    assert answer.status_code == 500
    assert connect_error(answer) == "internal"
    assert "bug in the implementation" not in answer.text  # internals stay in the server log
    double.answers["get_chat_completion"] = m.StoredChatCompletion(id="c1")


async def test_auth_is_delegated_to_the_resolver() -> None:
    seen: list[str | None] = []

    async def resolve(token: str | None) -> ScriptedApex:
        seen.append(token)
        if token != "t1":
            raise ApexError(Code.UNAUTHENTICATED, "unknown key")
        return ScriptedApex(get_chat_completion=m.StoredChatCompletion(id="for-t1"))

    with serve_asgi(create_app(resolve)) as url:  # type: ignore[arg-type]
        async with httpx2.AsyncClient(base_url=url) as client:
            ok = await client.post(UNARY, json={}, headers={"authorization": "Bearer t1"})
            bad = await client.post(UNARY, json={}, headers={"authorization": "Basic dDE="})
            none = await client.post(UNARY, json={})
    assert ok.json() == {"id": "for-t1"}
    assert bad.status_code == none.status_code == 401
    assert seen == ["t1", None, None]


async def test_health_endpoint(http: httpx2.AsyncClient) -> None:
    answer = await http.get("/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


@pytest.mark.parametrize("depth", [101, 5_000, 30_000])
async def test_deeply_nested_json_is_invalid_argument_not_a_crash(
    http: httpx2.AsyncClient, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    nested = b"[" * depth + b"]" * depth
    unary = await http.post(
        "/apex.v1.ApexService/UpdateCompletionAttributes",
        content=b'{"completionId": "c1", "metadata": {"x": ' + nested + b"}}",
        headers=JSON,
    )
    assert unary.status_code == 400, unary.text
    assert connect_error(unary) == "invalid_argument"
    assert "more than 100 deep" in unary.json()["message"]
    assert "\n" not in unary.json()["message"]

    stream = await http.post(
        STREAM, content=connect.pack_envelope(b'{"seed": ' + nested + b"}"), headers=CONNECT_JSON
    )
    error = end_stream_error(stream.content)
    assert error is not None and error["code"] == "invalid_argument"
    assert "more than 100 deep" in error["message"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_json_as_deep_as_the_limit_is_read(http: httpx2.AsyncClient) -> None:
    nested = b"[" * 96 + b"]" * 96  # with the body and metadata objects, 98 deep: allowed
    answer = await http.post(
        "/apex.v1.ApexService/UpdateCompletionAttributes",
        content=b'{"completionId": "c1", "metadata": {"x": ' + nested + b"}}",
        headers=JSON,
    )
    assert "deep" not in answer.text
