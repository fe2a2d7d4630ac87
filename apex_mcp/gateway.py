"""The gateway: the embedded engine served over the Apex wire protocol, one user per API key."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from .apex.client import ApexClient
from .apex.errors import ApexError, Code
from .apex.server import ApexWireApp, create_app
from .config import Settings
from .engine.local import LocalApex
from .serving import is_loopback, serve_until_signalled

log = logging.getLogger(__name__)


def create_gateway_app(settings: Settings) -> ApexWireApp:
    """An ASGI app serving LocalApex. With ``gateway_keys`` set, a key maps to its user and
    each user sees only their own chats; without, every caller is the one default user."""
    stack = AsyncExitStack()
    engine: LocalApex | None = None

    async def startup() -> None:
        nonlocal engine
        engine = await stack.enter_async_context(LocalApex.open(settings))

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

    return create_app(resolve, on_startup=startup, on_shutdown=shutdown)


async def serve_gateway(settings: Settings, host: str, port: int) -> None:
    """Serve the gateway until SIGINT or SIGTERM. Without API keys, only on loopback."""
    if not settings.gateway_keys and not is_loopback(host):
        raise SystemExit(
            f"refusing to serve the gateway on {host} without API keys: set APEX_GATEWAY_KEYS "
            '(e.g. \'{"alice": "key-1"}\') or listen on 127.0.0.1'
        )
    log.info("apex-mcp gateway listening on http://%s:%d (HTTP/2 and HTTP/1.1)", host, port)
    await serve_until_signalled(create_gateway_app(settings), host, port)
