"""HTTP plumbing that the MCP server's HTTP transport (server/http.py) and the Apex wire
servers (apex/server.py, apex/grpc_server.py) share, and the lazily made httpx2 client of
every caller. It sits below every layer, so it imports nothing of the project."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Past this much of a body left unread, the connection is not worth keeping.
DRAIN_LIMIT = 64 * 1024 * 1024


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for another scheme or
    an empty token."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def header(scope: Scope, name: bytes) -> str:
    """The first value of the request header ``name`` (lower case); "" when there is none."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


async def drain_body(receive: Receive, limit: int = DRAIN_LIMIT) -> None:
    """Read and drop what is left of a request's body (up to ``limit`` bytes) before it is
    answered: HTTP/2 servers (hypercorn) drop the connection, and a request waiting on it,
    when a body arrives after its answer."""
    size = 0
    while size < limit:
        event = await receive()
        if event["type"] != "http.request":
            return
        size += len(event.get("body", b""))
        if not event.get("more_body", False):
            return


async def send_whole(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A whole response, with its length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class LazyClient:
    """An httpx2 client made on first use: a TLS context costs tens of milliseconds, and a
    host spawning the server waits for tools/list, which needs no connection. ``aclose``
    closes it if it was made."""

    def __init__(self, make: Callable[[], httpx2.AsyncClient]) -> None:
        self._make = make
        self._client: httpx2.AsyncClient | None = None

    def __call__(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = self._make()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
