"""Every setting of apex-mcp, in one class: environment variables, then an optional TOML file.

Precedence: arguments given in code or on the command line, then ``APEX_*`` environment
variables, then the TOML file (``APEX_CONFIG``, else ``config.toml`` in the user config
directory), then the defaults. Secrets are ``SecretStr`` from the moment they are read.

Miners are named here in the user's words (a preset, a one-line spec, a URL with
credentials: ``MinerSettings``). This module imports nothing of the engine: the engine's own
values are built from these by ``apex_mcp.serving.engine_config``.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ._dburl import is_database_url, redacted_url

APP_NAME = "apex-mcp"
GATEWAY_KEYS_FORMAT = 'a JSON object of user to API key, e.g. {"alice": "key-1", "bob": "key-2"}'
HTTP_TOKENS_FORMAT = 'a JSON object of user to token, e.g. {"alice": "token-1", "bob": "token-2"}'


# The engine's search providers: a copy of engine.search.PROVIDERS, since this module imports
# no engine (tests/engine/test_search_providers.py keeps the two equal).
SEARCH_PROVIDERS = ("duckduckgo", "searxng", "brave", "tavily", "exa")


class DatabaseUrl(SecretStr):
    """``APEX_DB`` as a PostgreSQL URL: shown (str, repr, logs, doctor) without its password;
    ``get_secret_value()`` is the URL itself, for the store alone."""

    def _display(self) -> str:
        return redacted_url(self.get_secret_value())


def user_data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def default_config_file() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False) / "config.toml"


@dataclass(frozen=True)
class Preset:
    """A well-known OpenAI-compatible endpoint."""

    base_url: str
    api_key_env: str | None = None
    supports_top_k: bool = True


PRESETS: dict[str, Preset] = {
    "ollama": Preset("http://127.0.0.1:11434/v1"),
    "lmstudio": Preset("http://127.0.0.1:1234/v1"),
    "vllm": Preset("http://127.0.0.1:8000/v1"),
    "llamacpp": Preset("http://127.0.0.1:8080/v1"),
    "openai": Preset("https://api.openai.com/v1", "OPENAI_API_KEY", supports_top_k=False),
    "openrouter": Preset("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "together": Preset("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "chutes": Preset("https://llm.chutes.ai/v1", "CHUTES_API_KEY"),  # Bittensor SN64
    "targon": Preset("https://api.targon.com/v1", "TARGON_API_KEY"),  # Bittensor SN4
}


class MinerSettings(BaseModel):
    """One OpenAI-compatible chat endpoint, as the user configures it (the engine's
    ``MinerConfig`` is built from it).

    ``models`` lists the models it serves, its default first; empty means it takes whatever
    model is asked for and, for the default, lets the server choose. The API key is
    ``api_key``, else the environment variable ``api_key_env`` read when the miner is used.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    # "user:password" for HTTP basic auth; taken out of base_url when it holds them.
    basic_auth: SecretStr | None = None
    models: list[str] = Field(default_factory=list)
    timeout: float = Field(120.0, gt=0)
    supports_top_k: bool = False  # strict APIs (OpenAI) reject an unknown top_k
    preset: str | None = None

    @field_validator("name")
    @classmethod
    def _name_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a miner needs a name")
        return value.strip()

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_the_url(cls, data: Any) -> Any:
        # From here on the URL can be shown anywhere: its credentials are a secret of their own.
        if isinstance(data, dict) and isinstance(data.get("base_url"), str):
            url, credentials = split_credentials(data["base_url"])
            if credentials is not None:
                data = {**data, "base_url": url}
                data.setdefault("basic_auth", credentials)
        return data

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"a miner's base_url must start with http:// or https://: {value!r}")
        return value

    @classmethod
    def from_preset(cls, preset: str, **fields: Any) -> MinerSettings:
        """A miner for a known endpoint, e.g. ``from_preset("ollama", models=["llama3.2"])``."""
        key = preset.strip().lower()
        known = PRESETS.get(key)
        if known is None:
            raise ValueError(f"unknown miner preset {preset!r}: use one of {', '.join(PRESETS)}")
        values: dict[str, Any] = {
            "name": key,
            "base_url": known.base_url,
            "api_key_env": known.api_key_env,
            "supports_top_k": known.supports_top_k,
            "preset": key,
        }
        return cls.model_validate(values | fields)

    @classmethod
    def parse(cls, spec: str, **fields: Any) -> MinerSettings:
        """A miner from a one-line spec: ``ollama``, ``ollama:llama3.2:3b``,
        ``openrouter:model-a,model-b`` or an endpoint URL such as ``https://host/v1``.

        ``fields`` set or override anything else (``api_key``, ``models``, ``timeout``...).
        """
        text = spec.strip()
        if "://" in text:
            text, credentials = split_credentials(text)
            if credentials is not None:
                fields.setdefault("basic_auth", credentials)
            parts = urlsplit(text)
            host = parts.hostname or text
            name = f"{host}:{parts.port}" if parts.port else host
            return cls.model_validate({"name": name, "base_url": text} | fields)
        # Split at the first colon only: Ollama model tags have colons of their own.
        preset, _, models = text.partition(":")
        if models.strip() and "models" not in fields:
            fields["models"] = [m.strip() for m in models.split(",") if m.strip()]
        return cls.from_preset(preset, **fields)

    def resolved_api_key(self) -> SecretStr | None:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key
        if self.api_key_env:
            value = os.environ.get(self.api_key_env, "").strip()
            return SecretStr(value) if value else None
        return None


def split_credentials(url: str) -> tuple[str, SecretStr | None]:
    """``url`` without the ``user:password@`` it may hold, and those (``user:password``)."""
    parts = urlsplit(url.strip())
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    clean = urlunsplit(parts._replace(netloc=host))
    if not userinfo:
        return clean, None
    user, _, password = userinfo.partition(":")
    return clean, SecretStr(f"{unquote(user)}:{unquote(password)}")


class Settings(BaseSettings):
    """apex-mcp's configuration. See the README's "Configuration" for every entry."""

    model_config = SettingsConfigDict(
        env_prefix="APEX_",
        extra="ignore",
        validate_default=True,
        populate_by_name=True,
        # A bad value is not repeated in the error: it may be a key (APEX_HTTP_TOKENS...).
        hide_input_in_errors=True,
    )

    # Which Apex serves the tools: remote when a key or base URL is set, else the engine.
    backend: Literal["auto", "local", "remote"] = "auto"
    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("APEX_API_KEY", "MACROCOSMOS_API_KEY")
    )
    base_url: str | None = Field(
        None, validation_alias=AliasChoices("APEX_BASE_URL", "MACROCOSMOS_BASE_URL")
    )
    timeout: float = Field(300.0, gt=0, description="default deadline of a remote call, seconds")
    # How often a waiting deep_research_status or a research subscription asks for news;
    # default 0.5 s on the embedded engine, 3 s on a remote server.
    research_poll_seconds: float | None = Field(None, gt=0, le=60)

    # The embedded engine.
    # A SQLite file, or a PostgreSQL database (its URL shown without the password).
    db: Path | DatabaseUrl = Field(default_factory=lambda: user_data_dir() / "apex.db")
    miners: list[MinerSettings] = Field(default_factory=list)
    miner: str | None = None  # shorthand for one miner: a preset ("ollama") or an endpoint URL
    miner_api_key: SecretStr | None = None
    miner_model: str | None = None
    discover_local_miners: bool = True
    # Fair sharing of the miners: calls one user may have running at once, and how long one
    # more waits for its turn before it fails (resource_exhausted).
    miner_calls_per_user: int = Field(8, ge=1, le=1000)
    miner_queue_seconds: float = Field(60.0, gt=0, le=3600)

    # Web retrieval and deep research.
    # One search provider or several, tried in order (the next when one fails):
    # duckduckgo, searxng, brave, tavily, exa; e.g. "brave,duckduckgo".
    search_provider: str = "duckduckgo"
    searxng_url: str | None = None  # e.g. http://127.0.0.1:8888, for search_provider searxng
    brave_api_key: SecretStr | None = None  # the Brave Search API's subscription token
    tavily_api_key: SecretStr | None = None
    exa_api_key: SecretStr | None = None
    # How web_search orders pages and picks passages (bench.quality measures each).
    search_ranking: Literal["auto", "provider", "bm25", "embedding", "fusion"] = "auto"
    # At most this many requests a second to each search provider; by default none to
    # SearXNG and one to each keyed API (a free tier's pace).
    search_requests_per_second: float | None = Field(None, gt=0, le=1000)
    # Pages read and extracted are kept in the store this long for searches and research to
    # reuse (0: not kept), the newest this many of them.
    search_cache_seconds: float = Field(24 * 3600.0, ge=0, le=30 * 24 * 3600)
    search_cache_pages: int = Field(10_000, ge=1, le=1_000_000)
    allow_private_addresses: bool = False  # let retrieval read LAN / loopback pages (tests)
    research_max_concurrent_jobs: int = Field(2, ge=1, description="jobs run at once")
    research_max_sources: int = Field(12, ge=1, le=100, description="sources read per job")
    research_max_seconds: float = Field(1800.0, gt=0, description="time limit of a job")
    # How often a runner proves its running jobs alive; silent for 6 beats means orphaned.
    research_heartbeat_seconds: float = Field(2.0, gt=0)
    # How long a job on a session's miners waits, pending, for a runner that holds them (its
    # session may not come back after a restart) before it fails saying so.
    research_session_job_wait_seconds: float = Field(600.0, gt=0)

    # The gateway: user id -> API key. Each key sees only its user's chats.
    # NoDecode: read as text by our validator, which says what is wrong (never the keys).
    gateway_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)

    # The MCP server over HTTP: a bearer token, required when listening beyond loopback, and
    # the Host / Origin values to accept besides the address it listens on (behind a proxy).
    http_token: SecretStr | None = None
    # Behind a platform that authenticates clients and passes each session's configuration in
    # the query string (Smithery): sessions choose their miner or Apex server and are users
    # of their own, and no token is required beyond loopback. See server/sessions.py.
    http_session_config: bool = False
    # Streamable HTTP without server-side sessions, so that replicas behind a round-robin
    # balancer answer 2025-era (handshake) clients without sticky sessions. 2026-07-28 clients
    # need no session either way.
    http_stateless: bool = False
    http_allowed_hosts: list[str] = Field(default_factory=list)
    http_allowed_origins: list[str] = Field(default_factory=list)
    # Several static bearer tokens, user id -> token, each user with their own history (as
    # the gateway's keys). NoDecode: read by our validator, which never echoes a token.
    http_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)

    # OAuth 2.1 over HTTP, the server a resource server (see server/auth.py): access tokens
    # of this issuer, checked as JWTs against its keys (or by introspection), each person's
    # history their own.
    oauth_issuer: str | None = None  # the authorization server, e.g. https://id.example.com
    # This server's public URL (its /mcp endpoint): the resource the tokens are for (RFC 8707).
    oauth_resource_url: str | None = None
    oauth_audience: str | None = None  # the tokens' aud, when not the resource URL (Entra)
    oauth_required_scopes: list[str] = Field(default_factory=list)  # every token needs these
    oauth_scope_prefix: str = "apex:"  # the scopes are <prefix>read, <prefix>write, ...
    oauth_user_claim: str = "sub"  # the claim that names the user (scoped by issuer)
    oauth_jwks_cache_seconds: float = Field(300.0, ge=0, le=86400)
    # "introspection": ask the issuer about each token (RFC 7662), for opaque tokens; the
    # server authenticates as oauth_client_id / oauth_client_secret.
    oauth_token_check: Literal["jwt", "introspection"] = "jwt"
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    # How long an introspected token's "active" answer is taken again without asking (never
    # past its exp); 0, the default, asks each time, so a revoked token stops at once.
    oauth_introspection_cache_seconds: float = Field(0.0, ge=0, le=3600)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = config_file_path()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("db", mode="before")
    @classmethod
    def _expand_db(cls, value: Any) -> Any:
        if is_database_url(value):
            return DatabaseUrl(value)
        if isinstance(value, str):
            value = _sqlite_path(value)
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @field_validator("search_provider")
    @classmethod
    def _search_providers(cls, value: str) -> str:
        aliases = {"ddg": "duckduckgo", "ddgs": "duckduckgo"}
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        names = [aliases.get(n, n) for n in names]
        for name in names:
            if name not in SEARCH_PROVIDERS:
                raise ValueError(
                    f"unknown search provider {name!r}: use {', '.join(SEARCH_PROVIDERS)}, "
                    "or several in the order to try them (brave,duckduckgo)"
                )
        if len(set(names)) != len(names):
            raise ValueError("a search provider is named twice")
        return ",".join(names) or "duckduckgo"

    @field_validator("brave_api_key", "tavily_api_key", "exa_api_key", mode="before")
    @classmethod
    def _empty_search_key_is_none(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @field_validator("api_key", "miner_api_key", "http_token", "oauth_client_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: Any) -> Any:
        # APEX_HTTP_TOKEN="" must not mean "a token that is the empty string" (anyone would
        # pass), nor an empty key mean a key: unset is unset.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @field_validator("gateway_keys", mode="before")
    @classmethod
    def _read_gateway_keys(cls, value: Any) -> Any:
        return _user_secrets(value, GATEWAY_KEYS_FORMAT, "API key")

    @field_validator("http_tokens", mode="before")
    @classmethod
    def _read_http_tokens(cls, value: Any) -> Any:
        return _user_secrets(value, HTTP_TOKENS_FORMAT, "token")

    @field_validator("oauth_issuer", "oauth_resource_url", "oauth_audience")
    @classmethod
    def _oauth_url(cls, value: str | None) -> str | None:
        return value.strip() or None if value else None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _strip_url(cls, value: str | None) -> str | None:
        return value.strip().rstrip("/") or None if value else None

    @model_validator(mode="after")
    def _shorthand_miner(self) -> Settings:
        # APEX_MINER=ollama (or a URL) is one more miner, first: the default one.
        if self.miner:
            fields: dict[str, Any] = {}
            if self.miner_api_key is not None:
                fields["api_key"] = self.miner_api_key
            if self.miner_model:
                fields["models"] = [m.strip() for m in self.miner_model.split(",") if m.strip()]
            shorthand = MinerSettings.parse(self.miner, **fields)
            if all(m.name != shorthand.name for m in self.miners):
                self.miners = [shorthand, *self.miners]
            # Credentials in the URL now live in the miner's basic_auth, never shown.
            self.miner = split_credentials(self.miner)[0]
        return self

    @model_validator(mode="after")
    def _sessions_on_the_engine(self) -> Settings:
        if self.http_session_config and self.resolved_backend == "remote":
            raise ValueError(
                "APEX_HTTP_SESSION_CONFIG serves sessions from the embedded engine, and this "
                "server's backend is a remote Apex server, whose account every session "
                "without a key of its own would share: unset APEX_API_KEY / APEX_BASE_URL "
                "(sessions can still name their own with apexBaseUrl and apexApiKey)"
            )
        return self

    @model_validator(mode="after")
    def _users_on_the_engine(self) -> Settings:
        if not self.serves_users:
            return self
        if self.resolved_backend == "remote":
            raise ValueError(
                "APEX_OAUTH_ISSUER and APEX_HTTP_TOKENS give each person a history of their "
                "own on the embedded engine, and this server's backend is a remote Apex "
                "server, whose one account they would all share: unset APEX_API_KEY / "
                "APEX_BASE_URL, or use one APEX_HTTP_TOKEN"
            )
        if self.http_session_config:
            raise ValueError(
                "APEX_HTTP_SESSION_CONFIG trusts the platform in front to authenticate, and "
                "APEX_OAUTH_ISSUER / APEX_HTTP_TOKENS authenticate here: choose one"
            )
        if self.oauth_token_check == "introspection" and (
            self.oauth_client_id is None or self.oauth_client_secret is None
        ):
            raise ValueError(
                "APEX_OAUTH_TOKEN_CHECK=introspection needs APEX_OAUTH_CLIENT_ID and "
                "APEX_OAUTH_CLIENT_SECRET, the credentials this server introspects with"
            )
        return self

    @property
    def serves_users(self) -> bool:
        """Whether HTTP callers are users of their own (OAuth, or several static tokens)."""
        return self.oauth_issuer is not None or bool(self.http_tokens)

    @property
    def resolved_backend(self) -> Literal["local", "remote"]:
        if self.backend != "auto":
            return self.backend
        return "remote" if (self.api_key or self.base_url) else "local"

    @property
    def store_target(self) -> str | Path:
        """What the engine opens its store at: the SQLite file, or the whole PostgreSQL URL
        (password included: for the store alone, never to show)."""
        return self.db.get_secret_value() if isinstance(self.db, DatabaseUrl) else self.db

    @cached_property
    def _gateway_secrets(self) -> list[tuple[bytes, str]]:
        return [(key.get_secret_value().encode(), user) for user, key in self.gateway_keys.items()]

    def gateway_user(self, token: str | None) -> str | None:
        """The user a gateway API key belongs to; compared in constant time."""
        if not token:
            return None
        given = token.encode()
        found = None
        for secret, user in self._gateway_secrets:
            if hmac.compare_digest(secret, given):
                found = user
        return found


def _user_secrets(value: Any, expected: str, what: str) -> Any:
    """User -> secret, from a JSON object; never a secret in an error."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ValueError(f"not valid JSON: expected {expected}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected {expected}")
    secrets = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value.values()]
    if any(isinstance(secret, str) and not secret.strip() for secret in secrets):
        raise ValueError(f"a user has an empty {what}: expected {expected}")
    if len(set(map(str, secrets))) < len(secrets):
        raise ValueError(f"two users have the same {what}: give each user one of their own")
    return value


_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")


def _sqlite_path(value: str) -> str:
    """A file path, or ``sqlite:///path`` (as SQLAlchemy writes it); another URL is refused,
    not taken for a folder named ``postgresql:``. The value is never echoed: it may hold a
    password."""
    scheme = _URL_SCHEME.match(value)
    if scheme is None:
        return value
    if scheme.group(1).lower() == "sqlite":
        path = value[scheme.end() :].partition("?")[0]
        if path.startswith("/") and path != "/":
            return path[1:]  # sqlite:///apex.db is relative, sqlite:////data/apex.db absolute
    raise ValueError(
        f"a {scheme.group(1)}:// URL is not a store apex-mcp can use: give a PostgreSQL URL "
        "(postgresql://user@host:5432/database), a SQLite file path, or "
        "sqlite:///relative/path.db or sqlite:////absolute/path.db"
    )


def config_file_path() -> Path | None:
    """The TOML file to read: ``APEX_CONFIG``, else the user's, when it exists."""
    explicit = os.environ.get("APEX_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"APEX_CONFIG names {path}, which is not a file")
        return path
    path = default_config_file()
    return path if path.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """The settings, with ``overrides`` (e.g. from the command line) on top; None is skipped."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
