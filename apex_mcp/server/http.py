"""The MCP server over streamable HTTP: Host/Origin checks on, a bearer token when it listens
beyond loopback (unless a hosting platform in front authenticates, with per-session
configuration), and a health endpoint."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import Settings
from ..serving import discard_request_body, is_loopback, serve_until_signalled
from .state import AppState

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})


def security_for(host: str, port: int, settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: only our own Host names, only browser Origins we serve."""
    hosts = {"127.0.0.1", "localhost", "[::1]"}
    if host not in ("0.0.0.0", "::"):
        hosts.add(f"[{host}]" if ":" in host else host)
    allowed_hosts = [f"{h}:{port}" for h in sorted(hosts)] + list(settings.http_allowed_hosts)
    allowed_origins = [f"http://{h}:{port}" for h in sorted(hosts)] + list(
        settings.http_allowed_origins
    )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )


def create_http_app(mcp: MCPServer[AppState], settings: Settings, host: str, port: int) -> Any:
    """The ASGI app: ``/mcp`` (streamable HTTP) and ``/healthz``, behind a bearer check when a
    token is set. Refuses to build without a token for a non-loopback address."""
    token = settings.http_token
    if token is None and not is_loopback(host):
        if not settings.http_session_config:
            raise SystemExit(
                f"refusing to serve MCP on {host} without a token: set APEX_HTTP_TOKEN "
                "(clients send it as 'Authorization: Bearer <token>') or listen on 127.0.0.1"
            )
        log.warning(
            "serving MCP on %s without a token: APEX_HTTP_SESSION_CONFIG trusts the platform "
            "in front to authenticate clients; never expose this port directly",
            host,
        )

    @mcp.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app: Any = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=security_for(host, port, settings),
        host=host,
    )
    if settings.http_session_config:
        app = SessionConfigGate(app)
    return BearerGate(app, token) if token is not None else app


async def _refuse(
    receive: Any, send: Any, status: int, body: dict[str, str], *headers: tuple[bytes, bytes]
) -> None:
    await discard_request_body(receive)
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class SessionConfigGate:
    """ASGI middleware: a request whose session configuration (the query string) cannot be
    used gets 400 saying what to fix, before it reaches MCP."""

    def __init__(self, app: Any) -> None:
        from . import sessions  # only servers that take session settings need it

        self.app = app
        self._sessions = sessions

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            try:
                self._sessions.parse_query(scope.get("query_string", b""))
            except self._sessions.SessionConfigError as error:
                body = {"error": "invalid_session_config", "message": str(error)}
                await _refuse(receive, send, 400, body)
                return
        await self.app(scope, receive, send)


class BearerGate:
    """ASGI middleware: every HTTP request but the open paths needs ``Bearer <token>``."""

    def __init__(self, app: Any, token: SecretStr) -> None:
        self.app = app
        self._token = token.get_secret_value().encode()
        if not self._token.strip():
            raise ValueError("an empty bearer token would let anyone in")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, value = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self._token):
                body = {"error": "unauthorized", "message": "send Authorization: Bearer <token>"}
                await _refuse(receive, send, 401, body, (b"www-authenticate", b"Bearer"))
                return
        await self.app(scope, receive, send)


async def serve_http(mcp: MCPServer[AppState], settings: Settings, host: str, port: int) -> None:
    await serve_until_signalled(create_http_app(mcp, settings, host, port), host, port)
