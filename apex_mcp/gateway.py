"""The gateway: the embedded engine served over the Apex wire protocol, one user per API key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from .apex.client import ApexClient
from .apex.errors import ApexError, Code
from .apex.server import Receive, Reply, Scope, Send, create_app
from .config import Settings
from .engine import LocalApex
from .serving import engine_config, is_loopback, serve_until_signalled

log = logging.getLogger(__name__)


def create_gateway_app(settings: Settings) -> Callable[[Scope, Receive, Send], Any]:
    """An ASGI app serving LocalApex over Connect (JSON and binary), gRPC and gRPC-Web. With
    ``gateway_keys`` set, a key maps to its user and each user sees only their own chats;
    without, every caller is the one default user."""
    stack = AsyncExitStack()
    engine: LocalApex | None = None

    async def startup() -> None:
        nonlocal engine
        engine = await stack.enter_async_context(LocalApex.open(engine_config(settings)))

    async def shutdown() -> None:
        nonlocal engine
        engine = None
        await stack.aclose()

    async def resolve(token: str | None) -> ApexClient:
        if engine is None:
            raise ApexError(Code.UNAVAILABLE, "the gateway is starting or stopping")
        if not settings.gateway_keys:
            return engine
        user = settings.gateway_user(token)
        if user is None:
            raise ApexError(
                Code.UNAUTHENTICATED,
                "missing or unknown API key: ask the gateway's operator for one",
            )
        return engine.for_user(user)

    wire = create_app(resolve, on_startup=startup, on_shutdown=shutdown, replies=_StoredReplies())
    try:
        from .apex.grpc_server import with_binary_protocols
    except ImportError as exc:  # installed without the [gateway] extra: Connect JSON only
        log.warning(
            "gRPC, gRPC-Web and Connect binary are off (%s): pip install 'apex-mcp[gateway]'", exc
        )
        return wire
    return with_binary_protocols(wire)


class _StoredReplies:
    """The replies to keyed writes, in the engine's store under the caller's user."""

    async def claim(
        self, client: ApexClient, key: str, method: str, request_digest: str
    ) -> Reply | None:
        engine = _engine(client)
        kept = await engine.store.claim_reply(engine.user_id, key, method, request_digest)
        if kept is None:
            return None
        age = (datetime.now(UTC) - kept.created_at).total_seconds()
        return Reply(kept.method, kept.request_digest, kept.reply, age)

    async def remember(self, client: ApexClient, key: str, payload: bytes) -> None:
        engine = _engine(client)
        await engine.store.remember_reply(engine.user_id, key, payload)

    async def forget(self, client: ApexClient, key: str) -> None:
        engine = _engine(client)
        await engine.store.forget_reply(engine.user_id, key)


def _engine(client: ApexClient) -> LocalApex:
    assert isinstance(client, LocalApex)  # what the gateway's resolver gives
    return client


async def serve_gateway(settings: Settings, host: str, port: int) -> None:
    """Serve the gateway until SIGINT or SIGTERM. Without API keys, only on loopback."""
    if not settings.gateway_keys and not is_loopback(host):
        raise SystemExit(
            f"refusing to serve the gateway on {host} without API keys: set APEX_GATEWAY_KEYS "
            '(e.g. \'{"alice": "key-1"}\') or listen on 127.0.0.1'
        )
    log.info("apex-mcp gateway listening on http://%s:%d (HTTP/2 and HTTP/1.1)", host, port)
    await serve_until_signalled(create_gateway_app(settings), host, port)
