"""What the engine is built from: plain values, made by whoever assembles it.

The engine never reads the user's settings itself: ``apex_mcp.serving.engine_config`` turns
``Settings`` into an ``EngineConfig``, and tests build one directly. This module imports
nothing of the project, so that anything may import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_USER = "local"  # the one user of a single-user (stdio) install
DEFAULT_TIMEOUT = 120.0
DEFAULT_CALLS_PER_USER = 8
DEFAULT_QUEUE_SECONDS = 60.0
# Looked for, when no miner is configured, on their usual local ports.
LOCAL_PROBE: tuple[tuple[str, str], ...] = (
    ("Ollama", "http://127.0.0.1:11434/v1"),
    ("LM Studio", "http://127.0.0.1:1234/v1"),
)


class MinerConfig(BaseModel):
    """One OpenAI-compatible chat endpoint, as the engine calls it.

    ``models`` lists the models it serves, its default first; empty means it takes whatever
    model is asked for and, for the default, lets the server choose. The API key is
    ``api_key``, else the environment variable ``api_key_env`` read when the miner is used.
    Credentials never sit in ``base_url``: they are ``basic_auth``, a secret of their own.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    basic_auth: SecretStr | None = None  # "user:password" for HTTP basic auth
    models: list[str] = Field(default_factory=list)
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0)
    supports_top_k: bool = False  # strict APIs (OpenAI) reject an unknown top_k
    preset: str | None = None

    @field_validator("name")
    @classmethod
    def _name_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a miner needs a name")
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"a miner's base_url must start with http:// or https://: {value!r}")
        if "@" in urlsplit(value).netloc:  # never echo it: it holds a password
            raise ValueError("a miner's base_url must not hold credentials: give basic_auth")
        return value

    @property
    def default_model(self) -> str | None:
        return self.models[0] if self.models else None

    def serves(self, model: str) -> bool:
        return not self.models or model in self.models

    def resolved_api_key(self) -> SecretStr | None:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key
        if self.api_key_env:
            value = os.environ.get(self.api_key_env, "").strip()
            return SecretStr(value) if value else None
        return None


@dataclass(frozen=True)
class MinerSet:
    """A hosted session's own miners, and the name the engine knows them by: only the name is
    stored with a job, so it must say nothing of what the miners hold (their keys)."""

    name: str
    miners: tuple[MinerConfig, ...]


@dataclass(frozen=True)
class ResearchLimits:
    """The bounds of deep research: per runner, per job, per search."""

    max_concurrent_jobs: int = 2
    max_sources: int = 12
    max_seconds: float = 1800.0
    max_searches: int = 5
    results_per_search: int = 3
    # A running job's lease: its runner renews it each beat; one not renewed for
    # ``lease_heartbeats`` beats is taken over by another runner (seconds, not minutes).
    heartbeat_seconds: float = 2.0
    lease_heartbeats: int = 5
    session_job_wait_seconds: float = 600.0


@dataclass(frozen=True)
class EngineConfig:
    """Everything ``LocalApex.open`` builds the engine from."""

    # A SQLite file, or a postgresql:// URL: not in the repr, which would show its password.
    db: str | Path = field(repr=False)
    miners: tuple[MinerConfig, ...] = ()
    discover_local_miners: bool = True
    # Fair sharing of the miners: calls one user may have running at once, and how long one
    # more waits for its turn before it fails (resource_exhausted).
    miner_calls_per_user: int = DEFAULT_CALLS_PER_USER
    miner_queue_seconds: float = DEFAULT_QUEUE_SECONDS
    search_provider: str = "duckduckgo"  # or several in order: "brave,duckduckgo"
    searxng_url: str | None = None
    # The keyed search APIs' keys by provider name (brave, tavily, exa): never in the repr.
    search_api_keys: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)
    search_ranking: str = "auto"  # see retrieval.rank_pages
    search_requests_per_second: float | None = None
    search_cache_seconds: float = 24 * 3600.0  # pages kept in the store for reuse; 0: none
    search_cache_pages: int = 10_000
    allow_private_addresses: bool = False  # let retrieval read LAN / loopback pages (tests)
    research: ResearchLimits = field(default_factory=ResearchLimits)
