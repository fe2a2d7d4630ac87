"""OAuth over HTTP, the server a resource server: a real authorization server (oidc-provider on
127.0.0.1) signs people in, and the server lets each see only their own chats, completions,
research jobs and subscriptions, refuses every bad token with the right status and challenge,
picks up the issuer's new key without a restart, and logs no token, claim or key. One
authorization server, one miner and one MCP server serve the whole module."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from mcp import Client, MCPError
from mcp.client.auth import OAuthClientProvider
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import ResourceTemplateReference

from apex_mcp.server import auth
from apex_mcp.server.app import build_server
from apex_mcp.server.http import create_http_app
from tests import postgres
from tests.fakes import oidc
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import READ_TOOLS, engine_env, settings_from, text_of
from tests.server.test_replicas_http import BALANCER, ENDPOINT, replicas
from tests.servers import free_port, serve_asgi, wait_exit, wait_listening

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(oidc.missing() is not None, reason=str(oidc.missing())),
]

# Subjects unlike any word the server writes: found in a log, they were leaked.
ALICE, BOB = "alice-sub-7f3a91", "bob-sub-c42e08"
STATIC = {"carol": "static-token-carol-5d1b", "dave": "static-token-dave-9e27"}


@dataclass
class World:
    url: str
    issuer: oidc.AuthorizationServer
    env: dict[str, str]
    introspected: str  # the resource URL the issuer gives opaque tokens for
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"{self.url}/mcp"

    def token(self, user: str) -> str:
        if user not in self.tokens:
            self.tokens[user] = self.issuer.sign_in(user, self.resource)
        return self.tokens[user]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("oauth")
    with ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        # Every unknown key id asks the issuer again (not once a second): the rotation test
        # follows the others at once.
        patch.setattr(auth, "UNKNOWN_KID_REFRESH_SECONDS", 0.0)
        introspected = f"http://127.0.0.1:{free_port()}/mcp"
        issuer = stack.enter_context(oidc.authorization_server([introspected]))
        miner = stack.enter_context(serve_openai(FakeOpenAI(models=["m1"])))
        env = {
            **engine_env(tmp / "apex.db", miner),
            "APEX_OAUTH_ISSUER": issuer.issuer,
            "APEX_HTTP_TOKENS": json.dumps(STATIC),
            "APEX_SEARCH_PROVIDER": "searxng",
            "APEX_SEARXNG_URL": f"http://127.0.0.1:{free_port()}",  # nothing: jobs fail fast
            "APEX_RESEARCH_POLL_SECONDS": "0.1",
        }
        url = stack.enter_context(serve(env))
        yield World(url, issuer, env, introspected)


def serve(env: dict[str, str], port: int | None = None) -> Any:
    settings = settings_from(env)
    port = port or free_port()
    app = create_http_app(build_server(settings), settings, "127.0.0.1", port)
    return serve_asgi(app, port=port)


@asynccontextmanager
async def connect(
    url: str, token: str, mode: str = "2026-07-28", transport: Any = None
) -> AsyncIterator[Client]:
    headers = {"authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, transport=transport) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


def challenge(response: httpx2.Response) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer ...`` header."""
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer"), value
    params = {}
    for part in value.removeprefix("Bearer").split('", '):
        name, _, quoted = part.strip().partition("=")
        if name:
            params[name] = quoted.strip('"')
    return params


async def test_the_metadata_names_the_issuer_and_a_request_without_a_token_is_told_where(
    world: World,
) -> None:
    async with httpx2.AsyncClient(base_url=world.url) as http:
        metadata = await http.get("/.well-known/oauth-protected-resource/mcp")
        at_root = await http.get("/.well-known/oauth-protected-resource")
        elsewhere = await http.get("/.well-known/openid-configuration")
        refused = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        healthy = await http.get("/healthz")
    assert metadata.status_code == at_root.status_code == 200
    assert metadata.json() == at_root.json()
    assert metadata.json()["resource"] == world.resource
    assert metadata.json()["authorization_servers"] == [world.issuer.issuer]
    assert metadata.json()["scopes_supported"] == ["apex:read", "apex:write", "apex:research"]
    assert elsewhere.status_code == 404 and world.issuer.issuer in elsewhere.json()["message"]
    assert refused.status_code == 401
    params = challenge(refused)
    assert params["resource_metadata"] == f"{world.url}/.well-known/oauth-protected-resource/mcp"
    assert params["scope"] == "apex:read apex:write apex:research"
    assert "error" not in params  # RFC 6750 §3.1: no token, no error code
    assert healthy.status_code == 200


def hmac_with_public_key(world: World) -> str:
    """An HS256 token whose secret is the issuer's public key (the old alg confusion): made
    by hand, as PyJWT rightly refuses to."""
    from cryptography.hazmat.primitives import serialization
    from jwt.algorithms import RSAAlgorithm

    key = RSAAlgorithm.from_jwk(json.dumps(oidc.public(world.issuer.keys[0])))
    pem = key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": world.issuer.issuer, "aud": world.resource, "sub": "mallory", "exp": 2**40}
    header = {"alg": "HS256", "typ": "JWT", "kid": world.issuer.keys[0]["kid"]}
    signing = b".".join(_b64(json.dumps(part).encode()) for part in (header, claims))
    return (signing + b"." + _b64(hmac.new(pem, signing, hashlib.sha256).digest())).decode()


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


async def test_each_bad_token_is_refused_with_401_saying_why_and_none_is_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer, aud = world.issuer, world.resource
    stranger = oidc.new_key(issuer.keys[0]["kid"])  # the issuer's key id, another key
    unknown = oidc.new_key("never-published")
    unsigned = jwt.encode({"iss": issuer.issuer, "aud": aud, "sub": "mallory"}, None, "none")
    cases = {
        "malformed": ("not.a-jwt", "is not a JWT"),
        "wrong signature": (issuer.forge({"aud": aud}, key=stranger), "signature does not"),
        "unknown kid": (issuer.forge({"aud": aud}, key=unknown), "key the issuer does not"),
        "alg none": (unsigned, "not signed with one of the issuer's keys"),
        "hmac with the public key": (hmac_with_public_key(world), "not signed with one"),
        "wrong issuer": (issuer.forge({"aud": aud, "iss": "http://127.0.0.1:1"}), "not issued"),
        "wrong audience": (issuer.forge({"aud": "http://elsewhere/mcp"}), "not for this server"),
        "expired": (issuer.forge({"aud": aud, "exp": 1_700_000_000}), "has expired"),
        "not yet valid": (issuer.forge({"aud": aud, "nbf": 2**40}), "not valid yet"),
        "no subject": (issuer.forge({"aud": aud, "sub": None}), "no sub claim"),
    }
    seen = {}
    async with httpx2.AsyncClient(base_url=world.url) as http:
        for name, (token, _) in cases.items():
            seen[name] = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"authorization": f"Bearer {token}"},
            )
    for name, (token, reason) in cases.items():
        response = seen[name]
        assert response.status_code == 401, (name, response.text)
        params = challenge(response)
        assert params["error"] == "invalid_token", name
        assert reason in params["error_description"], (name, params)
        assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
        assert response.json()["error_description"] == params["error_description"]
        assert token not in response.text and token not in str(response.headers), name
    logged = caplog.text
    for token, _ in cases.values():
        signature = token.rsplit(".", 1)[-1]
        assert token not in logged and (not signature or signature not in logged)
    for key in (stranger, unknown, *issuer.keys):
        assert key["d"] not in logged and key["n"] not in logged


async def test_a_token_without_a_scope_sees_only_what_it_may_do_and_is_refused_403(
    world: World,
) -> None:
    reader = world.issuer.sign_in("reader-sub-1b7c", world.resource, scope="apex:read")
    async with connect(world.url, reader) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert (await call(client, "list_chats"))["chats"] == []
        with pytest.raises(MCPError, match="needs the scope apex:write, which the token lacks"):
            await client.call_tool("chat", {"user_prompt": "hi"})
    assert tools == READ_TOOLS
    call_chat = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "chat", "arguments": {"user_prompt": "hi"}},
    }
    async with httpx2.AsyncClient(base_url=world.url) as http:
        refused = await http.post(
            "/mcp", json=call_chat, headers={"authorization": f"Bearer {reader}"}
        )
    assert refused.status_code == 403
    params = challenge(refused)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "apex:write apex:read"  # what to ask for, keeping what it has
    assert "apex:write" in params["error_description"]
    assert refused.json()["id"] == 7 and "apex:write" in refused.json()["error"]["message"]


async def use_and_hide(
    world: World,
    mode: str,
    tokens: dict[str, str],
    url: str | None = None,
    transport: Any = None,
    subscribe: bool = True,
) -> None:
    """Alice chats, keeps a completion, starts a research job and follows it; Bob, and Carol
    with a static token, find none of it, by listing, searching, reading or guessing ids."""
    legacy = mode == "legacy"
    url = url or world.url

    def connect_as(who: str) -> Any:
        return connect(url, tokens.get(who, who), mode, transport)

    async with connect_as(ALICE) as alice:
        said = await call(alice, "chat", user_prompt="alice's private question")
        chat_id = said["chat_id"]
        completion_id = said["completion_id"]
        job = await call(alice, "deep_research_start", user_prompt="alice's research")
        uri = f"apex://research/{job['job_id']}"
        if legacy and subscribe:
            with pytest.warns(MCPDeprecationWarning):
                await alice.subscribe_resource(uri)
        mine = {c["id"] for c in (await call(alice, "list_chats"))["chats"]}
        assert chat_id in mine
    for intruder in (BOB, STATIC["carol"]):
        async with connect_as(intruder) as other:
            assert chat_id not in json.dumps(await call(other, "list_chats"))
            assert chat_id not in json.dumps(await call(other, "search_chats", search_term="alice"))
            assert job["job_id"] not in json.dumps(await call(other, "list_research"))
            for tool, arguments in (
                ("get_chat", {"chat_id": chat_id}),
                ("get_completion", {"completion_id": completion_id}),
                ("deep_research_status", {"job_id": job["job_id"]}),
            ):
                refused = await other.call_tool(tool, arguments)
                assert refused.is_error and "not_found" in text_of(refused), tool
            index = await other.read_resource("apex://chats")
            assert chat_id not in json.dumps([c.model_dump() for c in index.contents])
            chat_ref = ResourceTemplateReference(uri="apex://chats/{chat_id}")
            offered = await other.complete(chat_ref, {"name": "chat_id", "value": ""})
            assert chat_id not in offered.completion.values
            if not subscribe:
                continue
            with pytest.raises(MCPError, match=f"{uri}: no job"):
                if legacy:
                    with pytest.warns(MCPDeprecationWarning):
                        await other.subscribe_resource(uri)
                else:
                    async with other.listen(resource_subscriptions=[uri]):
                        pass
    # Alice, in another session, finds hers again.
    async with connect_as(ALICE) as alice:
        assert chat_id in json.dumps(await call(alice, "list_chats"))


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_two_people_never_see_each_others_history(
    world: World, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await use_and_hide(world, mode, {ALICE: world.token(ALICE), BOB: world.token(BOB)})
    logged = caplog.text
    for secret in (ALICE, BOB, world.token(ALICE), world.token(BOB), *STATIC.values()):
        assert secret not in logged


async def test_static_tokens_are_users_of_their_own(world: World) -> None:
    async with connect(world.url, STATIC["carol"]) as carol:
        made = (await call(carol, "create_chat", user_prompt="carol's"))["chat"]["id"]
    async with connect(world.url, STATIC["dave"]) as dave:
        assert made not in json.dumps(await call(dave, "list_chats"))
    async with connect(world.url, STATIC["carol"], "legacy") as carol:
        assert made in json.dumps(await call(carol, "list_chats"))
    # Over HTTP+SSE (2024-11-05) too.
    for who, sees in (("carol", True), ("dave", False)):
        headers = {"authorization": f"Bearer {STATIC[who]}"}
        async with Client(sse_client(f"{world.url}/sse", headers=headers), mode="legacy") as sse:
            assert (made in json.dumps(await call(sse, "list_chats"))) is sees


async def test_the_issuers_new_key_is_used_without_a_restart(world: World) -> None:
    async with connect(world.url, world.token(ALICE)) as alice:
        before = await call(alice, "list_chats")
    new_key = world.issuer.rotate()
    rotated = world.issuer.sign_in(ALICE, world.resource)
    assert jwt.get_unverified_header(rotated)["kid"] == new_key["kid"]
    async with connect(world.url, rotated) as alice:
        assert await call(alice, "list_chats") == before  # the same person, the same chats
    async with connect(world.url, world.token(BOB)) as bob:  # the old key still published
        assert (await bob.list_tools()).tools


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_sdk_client_signs_in_with_pkce_and_calls_tools(world: World) -> None:
    redirected: dict[str, str] = {}

    async def open_browser(url: str) -> None:  # the person signs in and consents
        redirected.update(await anyio.to_thread.run_sync(world.issuer.authorize, url, "sdk-user"))

    async def come_back() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(**redirected)

    storage = MemoryStorage()
    sign_in = OAuthClientProvider(
        world.resource,
        OAuthClientMetadata(
            client_name="apex-mcp test",
            redirect_uris=["http://127.0.0.1:9/callback"],  # type: ignore[list-item]
            token_endpoint_auth_method="none",
        ),
        storage,
        redirect_handler=open_browser,
        callback_handler=come_back,
    )
    async with (
        httpx2.AsyncClient(auth=sign_in, timeout=30) as http,
        Client(streamable_http_client(world.resource, http_client=http)) as client,
    ):
        said = await call(client, "chat", user_prompt="signed in by the SDK")
        listed = await call(client, "list_chats")
    assert said["chat_id"] in json.dumps(listed)
    assert storage.tokens is not None and storage.client is not None  # registered, signed in
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == world.resource and claims["sub"] == "sdk-user"


async def test_opaque_tokens_are_introspected(world: World) -> None:
    env = {
        **world.env,
        "APEX_OAUTH_TOKEN_CHECK": "introspection",
        "APEX_OAUTH_CLIENT_ID": oidc.INTROSPECTION_CLIENT,
        "APEX_OAUTH_CLIENT_SECRET": world.issuer.introspection_secret,
        "APEX_OAUTH_REQUIRED_SCOPES": '["apex:read"]',
    }
    port = int(world.introspected.rsplit(":", 1)[1].split("/")[0])
    opaque = world.issuer.sign_in(ALICE, world.introspected)
    assert opaque.count(".") == 0  # not a JWT
    async with connect(world.url, world.token(ALICE)) as alice:
        made = (await call(alice, "create_chat", user_prompt="alice's, by JWT"))["chat"]["id"]
    writer = world.issuer.sign_in(BOB, world.introspected, scope="apex:write")
    with serve(env, port) as url:
        async with connect(url, opaque) as alice:
            listed = await call(alice, "list_chats")
        async with httpx2.AsyncClient(base_url=url) as http:
            list_tools = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            refused = await http.post(
                "/mcp", json=list_tools, headers={"authorization": "Bearer not-a-token-it-issued"}
            )
            unread = await http.post(
                "/mcp", json=list_tools, headers={"authorization": f"Bearer {writer}"}
            )
    assert made in json.dumps(listed)  # the same person on the same store
    assert refused.status_code == 401
    assert challenge(refused)["error_description"].startswith("the token is not active")
    # APEX_OAUTH_REQUIRED_SCOPES: every token needs them, whatever it calls.
    assert unread.status_code == 403
    assert challenge(unread)["error"] == "insufficient_scope"
    assert challenge(unread)["scope"].split() == ["apex:read", "apex:write", "apex:research"]


async def test_a_revoked_opaque_token_is_refused_at_once_unless_answers_may_be_kept(
    world: World,
) -> None:
    env = {
        **world.env,
        "APEX_OAUTH_TOKEN_CHECK": "introspection",
        "APEX_OAUTH_CLIENT_ID": oidc.INTROSPECTION_CLIENT,
        "APEX_OAUTH_CLIENT_SECRET": world.issuer.introspection_secret,
    }
    port = int(world.introspected.rsplit(":", 1)[1].split("/")[0])
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "revoked", "version": "1"},
        },
    }
    accept = {"accept": "application/json, text/event-stream"}
    for kept, served_once_revoked in (("0", False), ("3600", True)):
        token = world.issuer.sign_in(ALICE, world.introspected)
        headers = {**accept, "authorization": f"Bearer {token}"}
        with serve({**env, "APEX_OAUTH_INTROSPECTION_CACHE_SECONDS": kept}, port) as url:
            async with httpx2.AsyncClient(base_url=url) as http:
                before = await http.post("/mcp", json=initialize, headers=headers)
                world.issuer.revoke(token)
                after = await http.post("/mcp", json=initialize, headers=headers)
        assert before.status_code == 200, before.text
        if served_once_revoked:  # the issuer's answer of a moment ago is taken again
            assert after.status_code == 200, after.text
        else:  # the default: the issuer is asked each time
            assert after.status_code == 401
            assert challenge(after)["error_description"].startswith("the token is not active")


async def test_two_people_never_see_each_others_history_across_replicas(
    world: World, module_database: postgres.TestDatabase
) -> None:
    env = {
        **world.env,
        "APEX_DB": module_database.url,
        "APEX_HTTP_STATELESS": "true",  # handshake clients need it behind a round-robin
        "APEX_HTTP_ALLOWED_HOSTS": json.dumps([BALANCER]),
        "APEX_OAUTH_RESOURCE_URL": ENDPOINT,
    }
    tokens = {who: world.issuer.sign_in(who, ENDPOINT) for who in (ALICE, BOB)}
    with replicas(env) as balancer:
        for mode in ("legacy", "2026-07-28"):
            # A stateless server has no session to send a handshake client's updates to.
            subscribe = mode != "legacy"
            await use_and_hide(world, mode, tokens, f"http://{BALANCER}", balancer, subscribe)
    assert {replica for _, replica, _ in balancer.sent} == {0, 1}
    assert all(status < 400 for _, _, status in balancer.sent), balancer.sent


async def test_the_server_process_serves_people_beyond_loopback_and_logs_no_token(
    world: World,
) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    token = world.issuer.sign_in(ALICE, resource)
    env = {**os.environ, **world.env, "APEX_LOG_LEVEL": "DEBUG"}
    env.pop("APEX_HTTP_TOKENS")
    serve_beyond_loopback = ["serve", "--http", "--host", "0.0.0.0", "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", "apex_mcp", *serve_beyond_loopback],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, server)
        async with connect(f"http://127.0.0.1:{port}", token) as alice:
            assert (await call(alice, "list_chats"))["chats"] is not None
        async with httpx2.AsyncClient() as http:
            refused = await http.post(resource, json={}, headers={"authorization": "Bearer x.y.z"})
        server.send_signal(signal.SIGINT)
        wait_exit(server, what="apex-mcp serve --http to stop at Ctrl+C", timeout=60)
    finally:
        server.kill()
        server.wait()
        assert server.stderr is not None
        logged = server.stderr.read().decode()
        server.stderr.close()
    assert refused.status_code == 401
    assert f"people signed in at {world.issuer.issuer}" in logged  # the banner
    assert "APEX_OAUTH_RESOURCE_URL is not set" in logged  # beyond loopback, say which URL
    assert "DEBUG" in logged  # the level was on
    for secret in (token, token.rsplit(".", 1)[1], ALICE, "x.y.z"):
        assert secret not in logged


async def test_doctor_checks_the_issuer(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from apex_mcp.cli.doctor import doctor

    # (This world's SearXNG is nowhere, on purpose: doctor says so too, as a problem.)
    await doctor(settings_from(world.env), local_probe=())
    found = capsys.readouterr().out
    nowhere = {**world.env, "APEX_OAUTH_ISSUER": f"http://127.0.0.1:{free_port()}"}
    missing = await doctor(settings_from(nowhere), local_probe=())
    printed = capsys.readouterr().out
    assert f"[ok  ] OAuth issuer: {world.issuer.issuer}: metadata and " in found
    assert "[FAIL] OAuth issuer" not in found
    assert missing == 1, printed
    assert "[FAIL] OAuth issuer: no authorization server metadata for http://127.0.0.1:" in printed
    assert "check APEX_OAUTH_ISSUER" in printed


async def test_the_token_check_is_the_sdks_token_verifier(world: World) -> None:
    """What checks tokens here is an MCP SDK ``TokenVerifier``, usable with its own auth."""
    from mcp.server.auth.provider import AccessToken, TokenVerifier

    verifier: TokenVerifier = auth.OAuthTokens(settings_from(world.env), world.resource)
    try:
        verified = await verifier.verify_token(world.token(ALICE))
        assert isinstance(verified, AccessToken) and verified.resource == world.resource
        assert await verifier.verify_token(world.token(ALICE)[:-4] + "AAAA") is None
        assert await verifier.verify_token("not a token") is None
    finally:
        await verifier.aclose()  # type: ignore[attr-defined]
