"""Who calls over HTTP, and what they may do: static bearer tokens, or OAuth 2.1 access tokens
with this server a resource server, as the MCP authorization spec asks.

- ``APEX_HTTP_TOKEN``: one shared token, the server's one user (as before).
- ``APEX_HTTP_TOKENS``: several tokens, each naming its user (as the gateway's keys do).
- ``APEX_OAUTH_ISSUER``: access tokens of that authorization server, checked here as JWTs
  against its keys (discovered from its metadata, cached, fetched again for an unknown key
  id), or by introspection (RFC 7662). The user is the token's ``sub`` (or another claim),
  scoped by its issuer; its scopes say what it may do (``Permission``).

A request that passes carries an ``AuthenticatedUser`` (the SDK's, so that its transports bind
each session to the caller that opened it) whose access token is a ``Caller``. Tokens, claim
values and keys are never logged nor said in an error: a refusal says what is wrong with the
token, never what it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr
from starlette.authentication import AuthCredentials

from .._http import LazyClient, bearer_token, drain_body, header, send_whole

if TYPE_CHECKING:
    import httpx2
    from mcp.server import ServerRequestContext
    from mcp.server.auth.provider import TokenVerifier

    from ..config import Settings
    from .inventory import Offer

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30  # clocks of the issuer and this server may differ this much
# An unknown key id fetches the issuer's keys again, at most this often (a token with a made
# up key id must not turn every request into a request to the issuer).
UNKNOWN_KID_REFRESH_SECONDS = 1.0
VERIFIED_TOKENS = 4096  # tokens remembered as checked, the least recently used forgotten
# Signatures with a public key only: an HMAC "signed" with the issuer's public key, or none at
# all, is refused before any key is looked at.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_USER_KEY = b"apex-mcp oauth user v1"
INSUFFICIENT_SCOPE = -32001  # the JSON-RPC error of a call refused for its token's scopes


class Permission(Enum):
    """What a scope lets a caller do: read (list, read, search), write (chat, change, delete),
    research (start and cancel deep research jobs)."""

    READ = "read"
    WRITE = "write"
    RESEARCH = "research"


ALL_PERMISSIONS = frozenset(Permission)


def needed_permission(offer: Offer) -> Permission:
    """What serving ``offer`` takes: starting or stopping research, writing, or reading."""
    if offer.writes and offer.toolset == "research":
        return Permission.RESEARCH
    return Permission.WRITE if offer.writes else Permission.READ


class Caller(AccessToken):
    """An authenticated caller: its store user (None: the server's own, for the one shared
    token) and what it may do. ``token`` is left empty: nothing after the check needs it, so
    no repr or log of a request can show it."""

    user: str | None = None
    permissions: frozenset[Permission] = ALL_PERMISSIONS


class Refused(Exception):
    """A token that does not let its bearer in; the text says why, never what it holds."""

    def __init__(self, description: str, *, status: int = 401, error: str = "invalid_token"):
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error


class IssuerUnavailable(Exception):
    """The authorization server's metadata or keys could not be had (a 503, not a 401: the
    token may be fine)."""


def caller_of(request: ServerRequestContext[Any] | None) -> Caller | None:
    """The caller of an MCP request over HTTP (None over stdio, or without auth)."""
    http = getattr(request, "request", None) if request is not None else None
    scope = getattr(http, "scope", None)
    user = scope.get("user") if isinstance(scope, Mapping) else None
    if isinstance(user, AuthenticatedUser) and isinstance(user.access_token, Caller):
        return user.access_token
    return None


def oauth_user(issuer: str, value: str) -> str:
    """The store user of an OAuth subject: a keyed hash of issuer and claim, the same in every
    process and replica, that gives neither back (nor shows them in a log)."""
    digest = hmac.new(_USER_KEY, f"{issuer}\n{value}".encode(), hashlib.sha256).hexdigest()
    return "oauth:" + digest[:32]


def scope_names(settings: Settings) -> dict[Permission, str]:
    return {p: settings.oauth_scope_prefix + p.value for p in Permission}


def permissions_of(granted: set[str], names: Mapping[Permission, str]) -> frozenset[Permission]:
    """The permissions a token's scopes grant. A scope named as a URI (Entra's
    ``api://app/apex.read``) is granted by its last segment too, which is how Entra writes
    it in the token's ``scp``."""
    return frozenset(
        p for p, name in names.items() if name in granted or name.rsplit("/", 1)[-1] in granted
    )


def scopes_of(claims: Mapping[str, Any]) -> set[str]:
    """A token's scopes: ``scope`` (space-separated, RFC 9068) or ``scp`` (Entra, Okta: a
    string or a list)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(v for v in value if isinstance(v, str))
    return found


class StaticTokens:
    """``APEX_HTTP_TOKEN`` (the server's one user) and ``APEX_HTTP_TOKENS`` (user -> token),
    compared in constant time."""

    def __init__(self, shared: SecretStr | None, per_user: Mapping[str, SecretStr]) -> None:
        self._tokens: list[tuple[bytes, str | None]] = [
            (secret.get_secret_value().encode(), user) for user, secret in per_user.items()
        ]
        if shared is not None:
            self._tokens.append((shared.get_secret_value().encode(), None))
        if any(not token.strip() for token, _ in self._tokens):
            raise ValueError("an empty bearer token would let anyone in")

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def check(self, token: str) -> Caller | None:
        given = token.encode("latin-1")  # as the header came
        found: Caller | None = None
        for secret, user in self._tokens:  # every one compared: the time says nothing
            if hmac.compare_digest(secret, given):
                name = "apex-mcp" if user is None else user
                found = Caller(token="", client_id=name, scopes=[], subject=name, user=user)
        return found


class OAuthTokens:
    """Access tokens of one authorization server: JWTs checked against its published keys, or
    opaque tokens it is asked about (introspection)."""

    def __init__(self, settings: Settings, resource_url: str) -> None:
        assert settings.oauth_issuer is not None
        self.issuer = settings.oauth_issuer
        self.audience = settings.oauth_audience or resource_url
        self.user_claim = settings.oauth_user_claim
        self.jwks_seconds = settings.oauth_jwks_cache_seconds
        self.introspect = settings.oauth_token_check == "introspection"
        self.introspection_seconds = settings.oauth_introspection_cache_seconds
        self.client_id = settings.oauth_client_id
        self.client_secret = settings.oauth_client_secret
        self.names = scope_names(settings)
        self.required = set(settings.oauth_required_scopes)
        self._http = LazyClient(_issuer_http)
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, tuple[Any, str | None]] = {}  # kid -> PyJWK, its declared alg
        self._keys_at = -float("inf")  # monotonic time of the last fetch
        self._lock = anyio.Lock()
        # sha256 of a token -> its caller, and the keys' fetch time it was checked against
        self._verified: OrderedDict[bytes, tuple[Caller, float]] = OrderedDict()
        # sha256 of an introspected token -> its caller, and the monotonic time it is good till
        self._introspected: OrderedDict[bytes, tuple[Caller, float]] = OrderedDict()

    async def check(self, token: str) -> Caller:
        """The caller ``token`` stands for; Refused saying why, IssuerUnavailable."""
        digest = hashlib.sha256(token.encode("latin-1")).digest()
        if self.introspect:
            return await self._check_introspected(token, digest)
        # A JWT checked already is taken again while the keys it was checked with are (a
        # client sends the same token with each request; checking it costs a signature).
        known = self._verified.get(digest)
        if known is not None and known[1] == self._keys_at:
            caller = known[0]
            fresh = time.monotonic() - self._keys_at <= self.jwks_seconds
            expires = caller.expires_at
            if fresh and (expires is None or time.time() <= expires + LEEWAY_SECONDS):
                self._verified.move_to_end(digest)
                return caller
        caller = self._caller(await self._decode(token))
        _remember(self._verified, digest, (caller, self._keys_at))
        return caller

    async def _check_introspected(self, token: str, digest: bytes) -> Caller:
        # The issuer's answer may change (revoked): asked each time, unless the settings
        # allow an active answer to be taken again for a while (never an inactive one).
        known = self._introspected.get(digest)
        if known is not None and time.monotonic() < known[1]:
            self._introspected.move_to_end(digest)
            return known[0]
        caller = self._caller(await self._introspect(token))
        good_for = self.introspection_seconds
        if caller.expires_at is not None:
            good_for = min(good_for, caller.expires_at - time.time())
        if good_for > 0:
            _remember(self._introspected, digest, (caller, time.monotonic() + good_for))
        return caller

    async def verify_token(self, token: str) -> AccessToken | None:
        """The MCP SDK's ``TokenVerifier``: the caller, or None for a token refused (an
        issuer that cannot be reached is raised, not taken for a bad token)."""
        try:
            return await self.check(token)
        except Refused:
            return None

    def _caller(self, claims: dict[str, Any]) -> Caller:
        """The caller of a token with these (checked) claims; Refused without a user."""
        value = claims.get(self.user_claim)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
            raise Refused(f"the token has no {self.user_claim} claim to name its user")
        granted = scopes_of(claims)
        missing = sorted(self.required - granted)
        if missing:
            raise Refused(
                f"the token lacks the scope {' '.join(missing)}",
                status=403,
                error="insufficient_scope",
            )
        user = oauth_user(self.issuer, str(value))
        client = claims.get("client_id") or claims.get("azp") or claims.get("appid") or ""
        expires = claims.get("exp")
        return Caller(
            token="",
            client_id=str(client),
            scopes=sorted(granted),
            expires_at=int(expires) if isinstance(expires, int | float) else None,
            resource=self.audience,
            subject=user,  # the SDK binds sessions to (client, issuer, subject)
            claims={"iss": self.issuer},
            user=user,
            permissions=permissions_of(granted, self.names),
        )

    # --- JWT ---------------------------------------------------------------------------------

    async def _decode(self, token: str) -> dict[str, Any]:
        import jwt

        header_ = _jwt_header(token)
        alg, kid = header_.get("alg"), header_.get("kid")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise Refused("the token is not signed with one of the issuer's keys")
        found = await self._key(kid if isinstance(kid, str) else None)
        if found is None:
            raise Refused("the token is signed with a key the issuer does not publish")
        key, declared = found
        if declared is not None and declared != alg:
            raise Refused("the token's algorithm is not its key's")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Refused("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Refused(self._not_for_us()) from None
        except jwt.InvalidIssuerError:
            raise Refused(f"the token is not issued by {self.issuer}") from None
        except jwt.MissingRequiredClaimError as error:
            raise Refused(f"the token has no {error.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise Refused("the token's signature does not verify") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Refused("the token cannot be verified") from None
        return claims

    async def _key(self, kid: str | None) -> Any:
        """The issuer's key ``kid`` (the only one, when the token names none)."""
        now = time.monotonic()
        if now - self._keys_at > self.jwks_seconds:
            await self._fetch_keys(self._keys_at)
        found = self._find(kid)
        if found is None and time.monotonic() - self._keys_at >= UNKNOWN_KID_REFRESH_SECONDS:
            await self._fetch_keys(self._keys_at)  # rotated at the issuer, perhaps
            found = self._find(kid)
        return found

    def _find(self, kid: str | None) -> Any:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _fetch_keys(self, seen: float) -> None:
        from jwt import PyJWK
        from jwt.exceptions import PyJWKError

        async with self._lock:
            if self._keys_at != seen:
                return  # fetched by another request meanwhile
            metadata = await self.metadata()
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise IssuerUnavailable(f"the metadata of {self.issuer} names no jwks_uri")
            document = await self._get_json(jwks_uri)
            keys: dict[str, Any] = {}
            for n, entry in enumerate(document.get("keys") or []):
                if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                    continue
                try:
                    key = PyJWK(entry)
                except PyJWKError:
                    continue  # a kind of key this server cannot use; its tokens are refused
                declared = entry.get("alg")
                keys[str(entry.get("kid", f"#{n}"))] = (
                    key,
                    declared if isinstance(declared, str) else None,
                )
            self._keys, self._keys_at = keys, time.monotonic()
            log.debug("fetched %d signing keys of %s", len(keys), self.issuer)

    async def metadata(self) -> dict[str, Any]:
        """The issuer's metadata (RFC 8414, else OpenID discovery), fetched once."""
        if self._metadata is None:
            for url in metadata_urls(self.issuer):
                try:
                    found = await self._get_json(url)
                except IssuerUnavailable:
                    continue
                if found.get("issuer") == self.issuer:
                    self._metadata = found
                    break
            else:
                raise IssuerUnavailable(
                    f"no authorization server metadata for {self.issuer} (tried "
                    f"{', '.join(metadata_urls(self.issuer))}): check APEX_OAUTH_ISSUER"
                )
        return self._metadata

    async def _get_json(self, url: str) -> dict[str, Any]:
        import httpx2

        try:
            response = await self._http().get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx2.HTTPError, ValueError) as error:
            raise IssuerUnavailable(f"{url}: {type(error).__name__}") from None
        if not isinstance(document, dict):
            raise IssuerUnavailable(f"{url} is not a JSON object")
        return document

    # --- introspection (RFC 7662) -------------------------------------------------------------

    async def _introspect(self, token: str) -> dict[str, Any]:
        import httpx2

        endpoint = (await self.metadata()).get("introspection_endpoint")
        if not isinstance(endpoint, str):
            raise IssuerUnavailable(f"{self.issuer}'s metadata names no introspection_endpoint")
        assert self.client_id is not None and self.client_secret is not None
        try:
            response = await self._http().post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(self.client_id, self.client_secret.get_secret_value()),
            )
            response.raise_for_status()
            claims = response.json()
        except (httpx2.HTTPError, ValueError) as error:
            raise IssuerUnavailable(f"introspection: {type(error).__name__}") from None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise Refused("the token is not active (unknown, expired or revoked)")
        if claims.get("iss", self.issuer) != self.issuer:
            raise Refused(f"the token is not issued by {self.issuer}")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if audience is not None and self.audience not in audiences:
            raise Refused(self._not_for_us())
        expires = claims.get("exp")
        if isinstance(expires, int | float) and expires + LEEWAY_SECONDS < time.time():
            raise Refused("the token has expired")
        return claims

    async def describe_issuer(self) -> str:
        """What the issuer publishes that this server uses (IssuerUnavailable if it cannot
        be had): for ``apex-mcp doctor``."""
        metadata = await self.metadata()
        if self.introspect:
            if not isinstance(metadata.get("introspection_endpoint"), str):
                raise IssuerUnavailable(f"{self.issuer}'s metadata names no introspection_endpoint")
            return f"{self.issuer}: metadata, introspection at {metadata['introspection_endpoint']}"
        await self._fetch_keys(self._keys_at)
        if not self._keys:
            raise IssuerUnavailable(f"{self.issuer} publishes no signing key this server can use")
        return f"{self.issuer}: metadata and {len(self._keys)} signing key(s)"

    def _not_for_us(self) -> str:
        return f"the token is not for this server (its audience is not {self.audience})"

    async def aclose(self) -> None:
        await self._http.aclose()


def _remember(
    checked: OrderedDict[bytes, tuple[Caller, float]], digest: bytes, entry: tuple[Caller, float]
) -> None:
    checked[digest] = entry
    checked.move_to_end(digest)
    if len(checked) > VERIFIED_TOKENS:
        checked.popitem(last=False)


def _jwt_header(token: str) -> dict[str, Any]:
    """A JWT's header, read to choose its key (PyJWT's own reading checks every segment, and
    ``jwt.decode`` does it again: the one check is enough)."""
    from jwt.utils import base64url_decode

    segment, dot, _ = token.partition(".")
    try:
        header_ = json.loads(base64url_decode(segment)) if dot else None
    except (ValueError, TypeError):
        header_ = None
    if not isinstance(header_, dict):
        raise Refused("the token is not a JWT")
    return header_


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata is: RFC 8414's well-known URI (inserted before the path),
    then OpenID Connect discovery's (appended to it)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return [
        urlunsplit(parts._replace(path="/.well-known/oauth-authorization-server" + path)),
        urlunsplit(parts._replace(path=path + "/.well-known/openid-configuration")),
    ]


def _issuer_http() -> httpx2.AsyncClient:
    import httpx2

    from .. import __version__

    return httpx2.AsyncClient(
        headers={"user-agent": f"apex-mcp/{__version__}", "accept": "application/json"},
        timeout=10,
        follow_redirects=False,
    )


def resource_metadata_url(resource_url: str) -> str:
    """Where this server's Protected Resource Metadata is (RFC 9728 §3.1: the well-known
    path, then the resource's own path)."""
    parts = urlsplit(resource_url)
    path = parts.path.rstrip("/")
    return urlunsplit(parts._replace(path="/.well-known/oauth-protected-resource" + path, query=""))


# ``Authorizer``: a token in, the caller out (or Refused / IssuerUnavailable).
Authorizer = Callable[[str], Awaitable[Caller]]


@dataclass(frozen=True)
class Protection:
    """How the HTTP app checks its callers: the static tokens, and OAuth if configured."""

    static: StaticTokens
    oauth: OAuthTokens | None
    resource_url: str | None
    scope_names: Mapping[Permission, str]
    required_scopes: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings, resource_url: str) -> Protection | None:
        static = StaticTokens(settings.http_token, settings.http_tokens)
        oauth = OAuthTokens(settings, resource_url) if settings.oauth_issuer else None
        if not static and oauth is None:
            return None
        return cls(
            static,
            oauth,
            resource_url if oauth is not None else None,
            scope_names(settings),
            tuple(settings.oauth_required_scopes),
        )

    async def check(self, token: str) -> Caller:
        caller = self.static.check(token)
        if caller is not None:
            return caller
        if self.oauth is None:
            raise Refused("the token is not this server's")
        return await self.oauth.check(token)

    def metadata_document(self) -> dict[str, Any]:
        """This server's Protected Resource Metadata (RFC 9728)."""
        from mcp.shared.auth import ProtectedResourceMetadata

        assert self.oauth is not None and self.resource_url is not None
        document = ProtectedResourceMetadata.model_validate(
            {
                "resource": self.resource_url,
                "authorization_servers": [self.oauth.issuer],
                "scopes_supported": self.all_scopes(),
                "resource_name": "apex-mcp",
            }
        )
        dumped: dict[str, Any] = document.model_dump(mode="json", exclude_none=True)
        return dumped

    def all_scopes(self) -> list[str]:
        names = [self.scope_names[p] for p in Permission]
        return names + [s for s in self.required_scopes if s not in names]

    def scopes_for(self, permission: Permission, caller: Caller | None = None) -> list[str]:
        """The scopes a token needs for ``permission``: the required ones, the permission's,
        and those the caller holds already (a new sign-in must not lose them)."""
        wanted = [*self.required_scopes, self.scope_names[permission]]
        if caller is not None:
            wanted += [self.scope_names[p] for p in caller.permissions]
        return list(dict.fromkeys(wanted))

    async def aclose(self) -> None:
        if self.oauth is not None:
            await self.oauth.aclose()


class AuthGate:
    """ASGI middleware: every HTTP request but the open paths needs a bearer token that
    ``protection`` accepts. A missing or bad one gets 401 with ``WWW-Authenticate`` naming
    this server's resource metadata (so that a host can find where to sign in); a call that
    needs a scope its token lacks gets 403 ``insufficient_scope`` naming the scopes to ask for.
    """

    def __init__(
        self,
        app: Any,
        protection: Protection,
        is_open: Callable[[str], bool],
        needed: Mapping[str, Permission],
    ) -> None:
        self.app = app
        self.protection = protection
        self.is_open = is_open
        self.needed = needed  # tool name -> permission
        from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE

        # The whole body of anything the transport takes is read for the methods it calls.
        self.peek = DEFAULT_MAX_REQUEST_BODY_SIZE
        self._metadata_url = (
            resource_metadata_url(protection.resource_url) if protection.resource_url else None
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
        if scope["type"] != "http" or self.is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = bearer_token(header(scope, b"authorization"))
        if token is None:
            await self._refuse(
                receive, send, Refused("send Authorization: Bearer <token>", error="")
            )
            return
        try:
            caller = await self.protection.check(token)
        except Refused as refused:
            await self._refuse(receive, send, refused)
            return
        except IssuerUnavailable as error:
            log.warning("cannot check a token: %s", error)
            body = {
                "error": "temporarily_unavailable",
                "error_description": "the authorization server cannot be reached; try again",
            }
            await drain_body(receive)
            await send_whole(send, 503, json.dumps(body).encode(), "application/json")
            return
        scope["user"] = AuthenticatedUser(caller)
        scope["auth"] = AuthCredentials(caller.scopes)
        if caller.permissions != ALL_PERMISSIONS:
            read, receive = await self._peek(scope, receive)
            needed = self._permissions_needed(scope, read)
            lacking = [(p, id_) for p, id_ in needed if p not in caller.permissions]
            if lacking:
                permission, request_id = lacking[0]
                await self._refuse(
                    receive,
                    send,
                    Refused(
                        f"this call needs the scope {self.protection.scope_names[permission]}, "
                        "which the token lacks: sign in again granting it",
                        status=403,
                        error="insufficient_scope",
                    ),
                    scopes=self.protection.scopes_for(permission, caller),
                    request_id=request_id,
                )
                return
        await self.app(scope, receive, send)

    def _closing(self, send: Any) -> Any:
        """``send`` for the lifespan: the issuer's HTTP client closes as the app shuts down."""

        async def closing_send(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.protection.aclose()
            await send(message)

        return closing_send

    async def _peek(self, scope: Any, receive: Any) -> tuple[bytes, Any]:
        """The start of the body, and a ``receive`` that gives all of it again."""
        if scope["method"] != "POST":
            return b"", receive
        read: list[Any] = []
        size = 0
        while size <= self.peek:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in read if m["type"] == "http.request")

        async def replay() -> Any:
            return read.pop(0) if read else await receive()

        return body, replay

    def _permissions_needed(self, scope: Any, body: bytes) -> list[tuple[Permission, Any]]:
        """What the request asks to do, with the id of each JSON-RPC request that asks it."""
        if scope["method"] == "GET":  # an event stream: what it brings, a caller may read
            return [(Permission.READ, None)]
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            return []  # not JSON-RPC: the transport says what is wrong
        messages = decoded if isinstance(decoded, list) else [decoded]
        needed: list[tuple[Permission, Any]] = []
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("method"), str):
                continue
            method, request_id = message["method"], message.get("id")
            if method == "tools/call":
                params = message.get("params")
                name = params.get("name") if isinstance(params, dict) else None
                tool = name if isinstance(name, str) else ""
                needed.append((self.needed.get(tool, Permission.READ), request_id))
            elif method.startswith(("resources/", "prompts/", "completion/", "subscriptions/")):
                needed.append((Permission.READ, request_id))
        return needed

    async def _refuse(
        self,
        receive: Any,
        send: Any,
        refused: Refused,
        *,
        scopes: list[str] | None = None,
        request_id: Any = None,
    ) -> None:
        """Answer ``refused``: its status, the challenge, and a body saying why (for a
        JSON-RPC request, as its error, which clients show)."""
        parts = []
        if refused.error:  # RFC 6750 §3.1: a request without a token gets no error code
            description = _quoted(refused.description)
            parts += [f'error="{refused.error}"', f'error_description="{description}"']
        if self._metadata_url is not None:
            parts.append(f'resource_metadata="{self._metadata_url}"')
            if scopes is None:  # a new sign-in asks for all the scopes there are
                scopes = self.protection.all_scopes()
        if scopes:
            parts.append(f'scope="{" ".join(scopes)}"')
        challenge = "Bearer " + ", ".join(parts) if parts else "Bearer"
        body: dict[str, Any] = {
            "error": refused.error or "unauthorized",
            "error_description": refused.description,
        }
        if isinstance(request_id, str | int):
            error = {"code": INSUFFICIENT_SCOPE, "message": f"forbidden: {refused.description}"}
            body = {"jsonrpc": "2.0", "id": request_id, "error": error}
        await drain_body(receive)
        await send_whole(
            send,
            refused.status,
            json.dumps(body).encode(),
            "application/json",
            [(b"www-authenticate", challenge.encode())],
        )


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


async def permit_by_scope(
    ctx: ServerRequestContext[Any], call_next: Callable[[Any], Awaitable[Any]]
) -> Any:
    """Server middleware: a caller sees only what its scopes allow: tools/list lists only the
    tools it may call, and without read, there are no resources or prompts to list. (A call
    beyond its scopes never gets here: ``AuthGate`` refuses it.)"""
    caller = caller_of(ctx)
    if caller is None or caller.permissions == ALL_PERMISSIONS:
        return await call_next(ctx)
    allowed = caller.permissions
    result = await call_next(ctx)
    if ctx.method == "tools/list" and isinstance(result, dict):
        permitted = tool_permissions()
        tools = result.get("tools") or []
        result["tools"] = [
            t for t in tools if permitted.get(t.get("name"), Permission.READ) in allowed
        ]
    elif Permission.READ not in allowed and isinstance(result, dict):
        for key in ("resources", "resourceTemplates", "prompts"):
            if key in result:
                result[key] = []
    return result


_PERMITTED: dict[str, Permission] = {}


def tool_permissions() -> dict[str, Permission]:
    if not _PERMITTED:
        from .tools import all_tools

        _PERMITTED.update({spec.name: needed_permission(spec.offer) for spec in all_tools()})
    return _PERMITTED


if TYPE_CHECKING:
    _oauth_tokens_verify: type[TokenVerifier] = OAuthTokens
