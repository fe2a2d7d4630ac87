"""Per-session configuration, for platforms that host MCP servers (Smithery).

With ``APEX_HTTP_SESSION_CONFIG`` on, each MCP session over HTTP brings its own settings in the
query string of ``/mcp``, and is a user of its own:

- ``miner``, ``minerApiKey``, ``minerModel``: the session's LLM endpoint, for its chats and its
  deep research, on the embedded engine. Its chats belong to the user its key names (a keyed
  hash, so the same key finds the same chats in a later session); a session without a key
  keeps what it makes to itself, for as long as it lasts.
- ``apexBaseUrl``, ``apexApiKey``: an Apex server of the session's own instead of the engine.

The query is Smithery's dot notation (``?miner=openrouter&minerApiKey=...``) or, as older
Smithery SDKs send it, ``config=<base64 of a JSON object>``; ``api_key`` and ``profile`` are
the platform's own and ignored. Keys are ``SecretStr`` from the moment they are parsed and are
never logged. A session's miner or server must be a public address, so that nobody reaches
the server's own loopback or network through it (``APEX_ALLOW_PRIVATE_ADDRESSES`` lifts this).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from .._http import LazyClient
from ..apex.connect import describe_validation_error
from ..apex.errors import ApexError, Code
from ..config import MinerSettings, split_credentials
from ..engine import MinerSet
from ..netguard import NotPublic, check_public_url, public_transport
from ..serving import engine_miner

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from mcp.server import ServerRequestContext

    from ..apex.client import ApexClient
    from ..apex.remote import RemoteApex
    from ..config import Settings
    from ..engine import LocalApex

log = logging.getLogger(__name__)

PLATFORM_PARAMETERS = frozenset({"api_key", "profile"})  # Smithery's own, not ours
MAX_QUERY_BYTES = 8192
MAX_REMOTE_CLIENTS = 64  # each holds a TLS context; the least recently used closes
# Keyed hashes name users and miner sets: the same key gives the same name in every process
# and replica, and no name gives back a key.
_HASH_KEY = b"apex-mcp session v1"


class SessionConfigError(ValueError):
    """The session's configuration cannot be used; the text says what to fix, never a value."""


class SessionConfig(BaseModel):
    """What a session configures; every field optional. Empty strings count as unset."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    miner: str | None = None  # never with credentials: those are taken out into miner_auth
    miner_api_key: SecretStr | None = None
    miner_model: str | None = None
    apex_base_url: str | None = None
    apex_api_key: SecretStr | None = None
    # The "user:password" a miner URL held, sent as basic auth: out of the URL so that no
    # repr, dump or log of the configuration shows it.
    miner_auth: SecretStr | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        miner = data.get("miner")
        if isinstance(miner, str) and "@" in miner:
            data["miner"], credentials = split_credentials(miner)
            data.pop("minerAuth", None)
            if credentials is not None:
                data["minerAuth"] = credentials
        url = data.get("apexBaseUrl", data.get("apex_base_url"))
        if isinstance(url, str) and split_credentials(url)[0] != url:
            raise ValueError("apexBaseUrl must not hold credentials: give the key as apexApiKey")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SessionConfig:
        miner_settings = [
            name
            for name, value in (
                ("minerApiKey", self.miner_api_key),
                ("minerModel", self.miner_model),
            )
            if value is not None
        ]
        if self.is_remote and (self.miner or miner_settings):
            raise ValueError(
                "give either the miner settings (miner, minerApiKey, minerModel) or the Apex "
                "server settings (apexBaseUrl, apexApiKey), not both: an Apex server has its "
                "own miners"
            )
        if miner_settings and not self.miner:
            raise ValueError(f"{' and '.join(miner_settings)} need miner: name the endpoint")
        if self.apex_base_url is not None and self.apex_api_key is None:
            raise ValueError("apexBaseUrl needs apexApiKey, the key of that server")
        if self.miner is not None:
            try:
                self.miner_config()  # an unknown preset (named, with the known ones) is said now
            except ValidationError:  # its text would repeat the URL, credentials and all
                raise ValueError(
                    "miner must be a preset or the http(s) URL of an OpenAI-compatible API"
                ) from None
        if self.apex_base_url is not None:
            scheme, found, _ = self.apex_base_url.partition("://")
            if found and scheme.lower() not in ("http", "https"):
                raise ValueError("apexBaseUrl must be an http(s) URL")
        return self

    @property
    def is_remote(self) -> bool:
        return self.apex_base_url is not None or self.apex_api_key is not None

    def miner_config(self) -> MinerSettings:
        """The session's miner. A preset never falls back to a key in the server's
        environment (``OPENROUTER_API_KEY``...): that key is the operator's, not the session's."""
        assert self.miner is not None
        fields: dict[str, Any] = {
            "api_key_env": None,
            "api_key": self.miner_api_key,
            "basic_auth": self.miner_auth,
        }
        if self.miner_model:
            fields["models"] = [m.strip() for m in self.miner_model.split(",") if m.strip()]
        return MinerSettings.parse(self.miner, **fields)

    @property
    def user_id(self) -> str | None:
        """The user the session's miner key names; None without one."""
        if self.miner_api_key is None:
            return None
        return "key:" + _keyed_hash(self.miner_api_key.get_secret_value())

    @property
    def fingerprint(self) -> str:
        """A name for the whole configuration, keys included, that gives none of it away."""
        return _keyed_hash(
            json.dumps(
                [
                    self.miner,
                    _secret(self.miner_auth),
                    _secret(self.miner_api_key),
                    self.miner_model,
                    self.apex_base_url,
                    _secret(self.apex_api_key),
                ]
            )
        )


def parse_query(query: bytes | str) -> SessionConfig:
    """The session configuration in a ``/mcp`` query string; SessionConfigError if unusable."""
    raw = query.encode() if isinstance(query, str) else query
    if len(raw) > MAX_QUERY_BYTES:
        raise SessionConfigError(f"the query string is over {MAX_QUERY_BYTES} bytes")
    text = raw.decode("utf-8", "replace")
    values: dict[str, Any] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        if name in PLATFORM_PARAMETERS:
            continue
        if name == "config":
            values.update(_base64_json(value))
        else:
            values[name] = value
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise SessionConfigError(
            f"unknown session setting {', '.join(unknown[:5])}: "
            f"the settings are {', '.join(FIELD_NAMES)}"
        )
    try:
        return SessionConfig.model_validate(values)
    except ValidationError as error:
        raise SessionConfigError(describe_validation_error(error, "session settings")) from None


# What a query may name (miner_auth comes only out of a miner URL).
FIELD_NAMES = tuple(to_camel(name) for name in SessionConfig.model_fields if name != "miner_auth")


def _base64_json(value: str) -> dict[str, Any]:
    # Standard or URL-safe alphabet, padded or not; a "+" sent unencoded reads as a space.
    text = value.strip().replace(" ", "+").replace("-", "+").replace("_", "/")
    try:
        decoded = json.loads(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, ValueError):
        raise SessionConfigError("config is not base64 of a JSON object") from None
    if not isinstance(decoded, dict):
        raise SessionConfigError("config is not base64 of a JSON object")
    return decoded


def anonymous_user(request: ServerRequestContext[Any]) -> str:
    """The user of a session without a key: a random name made here the first time its
    connection asks, kept on that live connection and gone with it. Never from what the
    client sends (an ``mcp-session-id`` can be replayed after its session ended, or sent by
    someone else); a 2026-07-28 request, a connection of its own, is a user for itself."""
    from .state import connection_of

    state = getattr(connection_of(request.session), "state", None)
    if not isinstance(state, dict):  # fail closed: a user of this request alone
        return "session:" + secrets.token_hex(16)
    user = state.get(_USER_STATE)
    if not isinstance(user, str):
        user = state[_USER_STATE] = "session:" + secrets.token_hex(16)
    return user


_USER_STATE = "apex-mcp:user"


def _keyed_hash(text: str) -> str:
    return hmac.new(_HASH_KEY, text.encode(), hashlib.sha256).hexdigest()[:32]


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class SessionClients:
    """The ApexClient each session is served by, from its configuration.

    The engine's views are made per call (they are cheap); a session's miners are a set the
    engine holds, named by the configuration's fingerprint; a session's Apex server gets a
    RemoteApex, kept for the next call.
    """

    def __init__(self, settings: Settings, tasks: TaskGroup) -> None:
        self.settings = settings
        self._tasks = tasks
        self._remotes: OrderedDict[str, RemoteApex] = OrderedDict()
        self._open: set[RemoteApex] = set()
        self._public_http = LazyClient(_public_http)

    async def client_for(self, request: ServerRequestContext[Any], engine: LocalApex) -> ApexClient:
        """The client for ``request``, from the configuration it carries (the platform sends
        it with every request, as Smithery's own SDK reads it)."""
        http = request.request
        if http is None:
            raise ApexError(
                Code.FAILED_PRECONDITION,
                "APEX_HTTP_SESSION_CONFIG is on, and only HTTP sessions bring a configuration:"
                " unset it for stdio",
            )
        try:
            config = parse_query(http.scope.get("query_string", b""))
        except SessionConfigError as error:  # the HTTP gate refuses these first
            raise ApexError(Code.INVALID_ARGUMENT, f"session configuration: {error}") from None
        return await self._client(config, engine, anonymous_user(request))

    async def _client(self, config: SessionConfig, engine: LocalApex, anonymous: str) -> ApexClient:
        if config.is_remote:
            return await self._remote(config)
        user = config.user_id or anonymous
        if config.miner is None:
            return await engine.for_session(user)
        miners = MinerSet("session:" + config.fingerprint, (engine_miner(config.miner_config()),))
        return await engine.for_session(
            user, miners, http=self._miners_http(), admit=self._admit_miners
        )

    async def _admit_miners(self, miners: MinerSet) -> None:
        for miner in miners.miners:
            await self._check_reachable("miner", miner.base_url)

    async def _remote(self, config: SessionConfig) -> RemoteApex:
        from ..apex.remote import DEFAULT_BASE_URL, RemoteApex

        key = config.fingerprint
        remote = self._remotes.get(key)
        if remote is not None:
            self._remotes.move_to_end(key)
            return remote
        base_url = config.apex_base_url or DEFAULT_BASE_URL
        if "://" not in base_url:
            base_url = "https://" + base_url
        await self._check_reachable("apexBaseUrl", base_url)
        # Both given explicitly: RemoteApex must not fall back to the server's own key.
        remote = RemoteApex(
            base_url,
            config.apex_api_key,
            timeout=self.settings.timeout,
            public_only=not self.settings.allow_private_addresses,
        )
        self._remotes[key] = remote
        self._open.add(remote)
        if len(self._remotes) > MAX_REMOTE_CLIENTS:
            _, oldest = self._remotes.popitem(last=False)
            self._tasks.start_soon(self._close_later, oldest)
        return remote

    def _miners_http(self) -> httpx2.AsyncClient | None:
        """The HTTP client of sessions' miners (None: the engine's own, when allowed)."""
        if self.settings.allow_private_addresses:
            return None
        return self._public_http()

    async def _check_reachable(self, setting: str, url: str) -> None:
        """Refuse a private endpoint early, with a clear message. (Not what keeps it out:
        that is every connection's own check.)"""
        if self.settings.allow_private_addresses:
            return
        try:
            await check_public_url(url)
        except NotPublic as error:
            raise ApexError(
                Code.PERMISSION_DENIED,
                f"the session's {setting} is refused: {error}; a hosted server only reaches "
                "public endpoints",
            ) from None

    async def _close_later(self, remote: RemoteApex) -> None:
        await anyio.sleep(self.settings.timeout)  # its calls in flight end by their deadline
        await self._close(remote)

    async def _close(self, remote: RemoteApex) -> None:
        if remote in self._open:
            self._open.discard(remote)
            await remote.aclose()

    async def aclose(self) -> None:
        for remote in list(self._open):
            await self._close(remote)
        await self._public_http.aclose()


def _public_http() -> httpx2.AsyncClient:
    """Sessions' miners' client: it connects only to public addresses, each checked as its
    connection is made."""
    from .. import __version__

    limits = httpx2.Limits(max_connections=64, max_keepalive_connections=16)
    return httpx2.AsyncClient(
        headers={"user-agent": f"apex-mcp/{__version__}"},
        limits=limits,
        transport=public_transport(limits=limits),
    )
