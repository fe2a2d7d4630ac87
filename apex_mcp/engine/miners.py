"""Miners: the OpenAI-compatible chat endpoints that answer the engine's chat completions.

In SN1 a validator sent each request to miners that had declared the model, streamed back the
first reliable answer, and for mixture-of-agents asked several and had one synthesize. Here a
miner is any OpenAI-compatible endpoint (a local Ollama, LM Studio, vLLM or llama.cpp server, a
hosted API, or a Bittensor inference subnet such as Chutes or Targon), and ``MinerPool`` plays
the validator:

- choice: ``model`` empty or ``"Default"`` goes to the first miner with its default model, then
  to the others with theirs; a named model goes to the miners that list it (a miner that lists
  none takes any model).
- fallback: a miner that fails (unreachable, timeout, HTTP 5xx/429/401/403/404, a malformed
  answer) hands the request to the next one. The call fails only when every candidate did:
  ``UNAVAILABLE``, naming each failure (``INVALID_ARGUMENT`` if every miner rejected the request
  as bad). A stream falls back only until its first chunk was yielded.
- mixture: up to three miners propose (one miner proposes three times with different seeds),
  the failures are dropped and the first healthy proposer synthesizes one answer.
- no miner configured: Ollama and LM Studio are looked for once on their usual local ports.

Which miner answered is reported in ``system_fingerprint``: ``miner:<name>``, or for a mixture
``mixture:<synthesizer>,<other proposers>``. apex.v1 has no field meant for it, and OpenAI
defines this one as "the backend configuration that produced the answer", which it is.
``usage`` of a mixture is the sum over the proposals and the synthesis: what the answer cost.

Timeouts: ``MinerConfig.timeout`` bounds a whole non-streamed answer, and for a stream the wait
for each piece of it (a stream may take long as long as it keeps coming); keep-alives (SSE
comments, empty lines) are not pieces. A miner answering 429 or 503 with ``Retry-After`` is
not called again before then: the others answer meanwhile, or, when none can, the call waits
for it if that fits the caller's deadline.

Hostile or broken miners: what a miner sends is bounded as it arrives (an SSE line or event,
a non-streamed body: ``MAX_MESSAGE_BYTES``; an answer: ``MAX_ANSWER_CHARS``, the contract's
limit of a completion), so that no answer can run the server out of memory.

Fair sharing: each user (``user`` of ``complete`` and ``stream``) has at most
``calls_per_user`` miner calls running at once; more wait their turn up to ``queue_seconds``,
then fail with ``RESOURCE_EXHAUSTED``. One user's calls to a miner that never answers hold
only that user's turns, never another's.

Credentials in a miner's URL (``https://user:password@host/v1``) are taken out of it at once:
they are sent as HTTP basic auth, and the URL that is shown, logged or stored is without them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .. import __version__
from ..apex.errors import ApexError, Code
from ..apex.models import (
    ChatCompletionChunkResponse,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
PROBE_TIMEOUT = 0.5  # local servers answer at once or are not there
CHECK_TIMEOUT = 10.0
MIXTURE_SIZE = 3
MIB = 1024 * 1024
# A JSON document from a miner (an SSE line or event, a non-streamed answer): the largest
# answer, 1M characters, fits even as UTF-8 of up to 4 bytes a character, with room to spare.
MAX_MESSAGE_BYTES = 8 * MIB
MAX_ANSWER_CHARS = 1_000_000  # of a completion's text: the contract's limit
MAX_ERROR_BYTES = 64 * 1024  # of an error's body: only its message is used
MAX_HELD_CHUNKS = 16  # chunks without text held back before the first text, at most
MAX_RETRY_AFTER = 24 * 3600.0  # a miner's Retry-After beyond a day is taken as a day
DEFAULT_CALLS_PER_USER = 8
DEFAULT_QUEUE_SECONDS = 60.0
LOCAL_PROBE: tuple[tuple[str, str], ...] = (
    ("Ollama", "http://127.0.0.1:11434/v1"),
    ("LM Studio", "http://127.0.0.1:1234/v1"),
)
MIXTURE_MODES = frozenset({"mixture-of-agents", "mixture"})

SYNTHESIS_PROMPT = """\
Several assistants answered the last message of this conversation independently; their answers \
are below. Write the single best answer to that message: keep what is correct and useful in \
them, correct or leave out what is wrong, and where they disagree, work out which is right. \
Answer the user directly, as your own answer: do not mention these answers or that there \
were several."""


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


class MinerConfig(BaseModel):
    """One OpenAI-compatible chat endpoint.

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
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0)
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
    def from_preset(cls, preset: str, **fields: Any) -> MinerConfig:
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
    def parse(cls, spec: str, **fields: Any) -> MinerConfig:
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


# What is wrong with a miner, for ``doctor`` to say what to do about it.
Problem = Literal[
    "no_key",  # it needs a key and none is set
    "key_refused",  # HTTP 401 or 403
    "unreachable",  # nothing answers at its address
    "timeout",
    "connection",  # the connection failed otherwise (TLS, a proxy, a reset)
    "not_found",  # HTTP 404: not an OpenAI-compatible API root
    "rate_limited",  # HTTP 429
    "server_error",  # HTTP 5xx
    "malformed",  # it answered, but not as an OpenAI-compatible API does
    "http",  # another HTTP status
    "model_missing",  # it answers, and does not list a model it was configured with
    "no_models",  # it answers, and lists no model at all
]


@dataclass(frozen=True)
class MinerStatus:
    """Whether a miner answers ``GET /models``, for ``doctor``; ``problem`` says what is wrong
    (also when it answers: a configured model it does not list, no model at all)."""

    name: str
    base_url: str
    ok: bool
    detail: str
    models: tuple[str, ...] = ()
    discovered: bool = False  # found by probing the local ports rather than configured
    problem: Problem | None = None


class _MinerFailure(Exception):
    """One miner failed; another may still answer. Its text never holds a key."""

    def __init__(
        self, miner: str, reason: str, *, rejected: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{miner}: {reason}")
        self.miner = miner
        self.reason = reason
        self.rejected = rejected  # the miner called the request itself bad (400, 413, 422)
        self.retry_after = retry_after  # seconds until it said it would answer again


def _account(miner: MinerConfig) -> tuple[str, int]:
    """Whom a miner's rate limit is for: its endpoint and the key it is called with (sessions
    with keys of their own to one endpoint are limited each on its own)."""
    secret = miner.resolved_api_key() or miner.basic_auth
    return miner.base_url, hash(secret.get_secret_value()) if secret is not None else 0


class _Traffic:
    """What a pool shares with its siblings besides the HTTP client: each user's turns at
    calling miners, and the miners that asked (Retry-After) not to be called for a while."""

    def __init__(self, calls_per_user: int, queue_seconds: float) -> None:
        if calls_per_user < 1:
            raise ValueError("calls_per_user must be at least 1")
        self.calls_per_user = calls_per_user
        self.queue_seconds = queue_seconds
        self._turns: dict[str, anyio.Semaphore] = {}  # only users with calls running or waiting
        self._resting: dict[tuple[str, int], float] = {}  # _account -> until (anyio's clock)

    @asynccontextmanager
    async def turn(self, user: str | None) -> AsyncIterator[None]:
        """Hold one of ``user``'s turns for a miner call (None: the server's own, unlimited)."""
        if user is None:
            yield
            return
        turns = self._turns.setdefault(user, anyio.Semaphore(self.calls_per_user))
        acquired = False
        try:
            with anyio.move_on_after(self.queue_seconds):
                await turns.acquire()
                acquired = True
        finally:
            if not acquired:
                self._forget(user, turns)
        if not acquired:
            raise ApexError(
                Code.RESOURCE_EXHAUSTED,
                f"this user already has {self.calls_per_user} calls to the miners running, "
                f"and this one waited {self.queue_seconds:g}s for one of them to end",
                hint="wait for your running chats or research jobs to finish, or cancel "
                "some, then try again (APEX_MINER_CALLS_PER_USER sets how many run at once)",
            )
        try:
            yield
        finally:
            turns.release()
            self._forget(user, turns)

    def _forget(self, user: str, turns: anyio.Semaphore) -> None:
        # A user with nothing running or waiting costs nothing: thousands of sessions may pass.
        idle = turns.value == self.calls_per_user and not turns.statistics().tasks_waiting
        if idle and self._turns.get(user) is turns:
            del self._turns[user]

    def rest(self, miner: MinerConfig, seconds: float) -> None:
        """``miner`` asked not to be called for ``seconds``."""
        now = anyio.current_time()
        for account, until in list(self._resting.items()):  # forget the rests that are over
            if until <= now:
                del self._resting[account]
        self._resting[_account(miner)] = now + seconds

    def resting(self, miner: MinerConfig) -> float | None:
        """How many seconds ``miner`` still asked not to be called for; None: it may be."""
        until = self._resting.get(_account(miner))
        left = until - anyio.current_time() if until is not None else 0.0
        return left if left > 0 else None


Candidate = tuple[MinerConfig, str | None]  # a miner and the model to ask it for


class MinerPool:
    """Answers chat completions with the configured miners: choice, fallback, mixture.

    Owns one pooled HTTP client: ``aclose()`` it (or use ``async with``). ``sibling`` makes
    a pool of other miners that borrows it.
    """

    def __init__(
        self,
        miners: Sequence[MinerConfig] = (),
        *,
        discover_local: bool = True,
        local_probe: Sequence[tuple[str, str]] = LOCAL_PROBE,
        http: httpx2.AsyncClient | None = None,
        calls_per_user: int = DEFAULT_CALLS_PER_USER,
        queue_seconds: float = DEFAULT_QUEUE_SECONDS,
        traffic: _Traffic | None = None,
    ) -> None:
        names = [m.name for m in miners]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two miners are named {name!r}: give each a distinct name")
        self._configured = list(miners)
        self._discover_local = discover_local
        self._local_probe = list(local_probe)
        self._discovered: list[MinerConfig] | None = None  # probed once, kept for the pool's life
        self._probe_statuses: list[MinerStatus] = []
        self._probe_lock = anyio.Lock()
        self._traffic = traffic or _Traffic(calls_per_user, queue_seconds)
        self._owns_http = http is None
        if http is not None:
            self.__dict__["_http"] = http

    @cached_property
    def _http(self) -> httpx2.AsyncClient:
        # Made on first use: a TLS context costs tens of milliseconds at start-up.
        return httpx2.AsyncClient(
            headers={"user-agent": f"apex-mcp/{__version__}"},
            limits=httpx2.Limits(max_connections=64, max_keepalive_connections=16),
            trust_env=True,
        )

    def sibling(
        self, miners: Sequence[MinerConfig], *, http: httpx2.AsyncClient | None = None
    ) -> MinerPool:
        """A pool of just ``miners`` (no discovery) on ``http`` or else this pool's HTTP
        client, which stays its owner's to close: a cheap pool per session. The users' turns
        at the miners are shared too."""
        return MinerPool(
            miners, discover_local=False, http=http or self._http, traffic=self._traffic
        )

    def __repr__(self) -> str:
        names = [m.name for m in self._configured]
        return f"MinerPool(miners={names!r}, discover_local={self._discover_local})"

    async def __aenter__(self) -> MinerPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http and "_http" in self.__dict__:
            await self._http.aclose()

    # --- the calls ------------------------------------------------------------------------

    async def complete(
        self, request: ChatCompletionRequest, *, user: str | None = None
    ) -> ChatCompletionResponse:
        """The answer to ``request``; ``user`` is who asks, whose turns it takes (None: the
        server itself, which has no limit)."""
        _require_messages(request)
        if _is_mixture(request):
            return await self._complete_mixture(request, user)
        candidates = await self._route(request.model)
        _, response = await self._complete_first(candidates, request, user)
        return response

    async def stream(
        self, request: ChatCompletionRequest, *, user: str | None = None
    ) -> AsyncGenerator[ChatCompletionChunkResponse, None]:
        _require_messages(request)
        if _is_mixture(request):
            mixture = await self._propose(request, user)
            synthesis = self._stream_first(mixture.synthesizers, mixture.request, user)
            async with aclosing(synthesis):
                async for miner, chunk in synthesis:
                    chunk.system_fingerprint = mixture.fingerprint(miner)
                    if chunk.usage is not None:
                        chunk.usage = _sum_usage([*mixture.usages, chunk.usage])
                    yield chunk
            return
        answer = self._stream_first(await self._route(request.model), request, user)
        async with aclosing(answer):  # a reader that stops early frees the connection now
            async for _, chunk in answer:
                yield chunk

    async def check(self) -> list[MinerStatus]:
        """Whether each configured miner answers; without any, what the local probe found."""
        if not self._configured:
            if not self._discover_local:
                return []
            await self._discover()
            return list(self._probe_statuses)
        statuses: list[MinerStatus | None] = [None] * len(self._configured)

        async def check_one(i: int, miner: MinerConfig) -> None:
            statuses[i] = await self._check(miner)

        async with anyio.create_task_group() as tg:
            for i, miner in enumerate(self._configured):
                tg.start_soon(check_one, i, miner)
        return [s for s in statuses if s is not None]

    # --- choice and fallback --------------------------------------------------------------

    async def _miners(self) -> list[MinerConfig]:
        if self._configured:
            return self._configured
        if self._discover_local:
            found = await self._discover()
            if found:
                return found
        raise ApexError(Code.FAILED_PRECONDITION, self._no_miner_message())

    async def _route(self, model: str | None) -> list[Candidate]:
        miners = await self._miners()
        wanted = (model or "").strip()
        if not wanted or wanted.lower() == "default":
            return [(m, m.default_model) for m in miners]
        chosen: list[Candidate] = [(m, wanted) for m in miners if m.serves(wanted)]
        if not chosen:
            available = list(dict.fromkeys(name for m in miners for name in m.models))
            raise ApexError(
                Code.INVALID_ARGUMENT,
                f"no miner serves the model {wanted!r}; the models available are "
                f"{', '.join(available)} (or Default)",
            )
        return chosen

    async def _complete_first(
        self, candidates: list[Candidate], request: ChatCompletionRequest, user: str | None
    ) -> tuple[MinerConfig, ChatCompletionResponse]:
        failures: dict[str, _MinerFailure] = {}
        waited = False
        while candidates:
            for miner, model in candidates:
                try:
                    return miner, await self._complete_on(miner, model, request, user)
                except _MinerFailure as failure:
                    _log_failure(failure)
                    failures[miner.name] = failure
            # One more round at most: a miner that asked for a rest, once it had it.
            candidates = [] if waited else await self._after_rest(candidates, failures)
            waited = True
        raise _every_miner_failed(list(failures.values()))

    async def _stream_first(
        self, candidates: list[Candidate], request: ChatCompletionRequest, user: str | None
    ) -> AsyncGenerator[tuple[MinerConfig, ChatCompletionChunkResponse], None]:
        failures: dict[str, _MinerFailure] = {}
        waited = False
        while candidates:
            for miner, model in candidates:
                started = False
                try:
                    async with aclosing(self._stream_on(miner, model, request, user)) as chunks:
                        async for chunk in chunks:
                            started = True
                            yield miner, chunk
                    return
                except _MinerFailure as failure:
                    if started:  # the user already has part of this answer: no one can finish it
                        raise ApexError(
                            Code.UNAVAILABLE,
                            f"miner {failure}, after it had started answering; "
                            "the answer is incomplete",
                        ) from None
                    _log_failure(failure)
                    failures[miner.name] = failure
            # One more round at most: a miner that asked for a rest, once it had it.
            candidates = [] if waited else await self._after_rest(candidates, failures)
            waited = True
        raise _every_miner_failed(list(failures.values()))

    async def _after_rest(
        self, candidates: list[Candidate], failures: dict[str, _MinerFailure]
    ) -> list[Candidate]:
        """When every candidate failed and some only asked for a rest (Retry-After), wait for
        the first of them to be ready if that fits the caller's deadline (and the miner's
        timeout), and return it to try again; else nothing more to try."""
        resting = [
            (self._traffic.resting(miner) or 0.0, (miner, model))  # what is left of the rest
            for miner, model in candidates
            if failures[miner.name].retry_after is not None
        ]
        if not resting:
            return []
        seconds, (miner, model) = min(resting, key=lambda item: item[0])
        left = anyio.current_effective_deadline() - anyio.current_time()
        if seconds > min(left - 1.0, miner.timeout):
            return []
        log.info(
            "every miner failed; %s asked for %.1fs of rest: waiting for it", miner.name, seconds
        )
        await anyio.sleep(seconds)
        return [(miner, model)]

    # --- mixture of agents ----------------------------------------------------------------

    async def _complete_mixture(
        self, request: ChatCompletionRequest, user: str | None
    ) -> ChatCompletionResponse:
        mixture = await self._propose(request, user)
        miner, response = await self._complete_first(mixture.synthesizers, mixture.request, user)
        response.system_fingerprint = mixture.fingerprint(miner)
        if response.usage is not None or mixture.usages:
            response.usage = _sum_usage([*mixture.usages, response.usage])
        return response

    async def _propose(self, request: ChatCompletionRequest, user: str | None) -> _Mixture:
        """Ask the proposers concurrently and build the synthesis request from their answers."""
        candidates = await self._route(request.model)
        plain = request.model_copy(update={"mixture": None, "inference_mode": None})
        if len(candidates) == 1:
            # One miner: three samples of it, which only differ if their seeds do.
            base = request.seed if request.seed is not None else random.randrange(65536)
            asks = [
                (candidates[0], plain.model_copy(update={"seed": base + i}))
                for i in range(MIXTURE_SIZE)
            ]
        else:
            asks = [(candidate, plain) for candidate in candidates[:MIXTURE_SIZE]]
        results: list[tuple[Candidate, ChatCompletionResponse] | _MinerFailure | None]
        results = [None] * len(asks)
        refused: list[ApexError] = []  # not the miners' failure: the user's turns ran out

        async def ask(i: int, candidate: Candidate, proposal: ChatCompletionRequest) -> None:
            miner, model = candidate
            try:
                results[i] = (candidate, await self._complete_on(miner, model, proposal, user))
            except _MinerFailure as failure:
                _log_failure(failure)
                results[i] = failure
            except ApexError as error:
                refused.append(error)

        async with anyio.create_task_group() as tg:
            for i, (candidate, proposal) in enumerate(asks):
                tg.start_soon(ask, i, candidate, proposal)
        if refused:
            raise refused[0]

        proposals = [r for r in results if isinstance(r, tuple)]
        if not proposals:
            raise _every_miner_failed([r for r in results if isinstance(r, _MinerFailure)])
        texts = [_answer_text(response) for _, response in proposals]
        synthesizers = list({c[0].name: c for c, _ in proposals}.values())  # healthy, in order
        return _Mixture(
            request=plain.model_copy(update={"messages": _synthesis_messages(plain, texts)}),
            synthesizers=synthesizers,
            proposers=[c[0].name for c, _ in proposals],
            usages=[r.usage for _, r in proposals if r.usage is not None],
        )

    # --- one miner ------------------------------------------------------------------------

    def _headers(self, miner: MinerConfig) -> dict[str, str]:
        headers: dict[str, str] = {}
        key = miner.resolved_api_key()
        if key is not None:
            headers["authorization"] = f"Bearer {key.get_secret_value()}"
        elif miner.api_key_env:
            raise _MinerFailure(miner.name, f"no API key: set {miner.api_key_env}")
        elif miner.basic_auth is not None:
            token = base64.b64encode(miner.basic_auth.get_secret_value().encode()).decode()
            headers["authorization"] = f"Basic {token}"
        return headers

    def _may_call(self, miner: MinerConfig) -> None:
        resting = self._traffic.resting(miner)
        if resting is not None:
            raise _MinerFailure(
                miner.name,
                f"rate limited: it asked not to be called before {_clock(resting)}",
                retry_after=resting,
            )

    def _refused(self, miner: MinerConfig, response: httpx2.Response, body: bytes) -> _MinerFailure:
        failure = _http_failure(miner, response.status_code, body)
        if response.status_code in (429, 503):
            seconds = _retry_after(response.headers.get("retry-after"))
            if seconds is not None and seconds > 0:
                self._traffic.rest(miner, seconds)
                failure = _MinerFailure(
                    miner.name,
                    f"{failure.reason}; it asked not to be called before {_clock(seconds)}",
                    retry_after=seconds,
                )
        return failure

    async def _complete_on(
        self,
        miner: MinerConfig,
        model: str | None,
        request: ChatCompletionRequest,
        user: str | None,
    ) -> ChatCompletionResponse:
        self._may_call(miner)
        body = _openai_body(request, miner, model, stream=False)
        headers = self._headers(miner)
        content: bytes | None = None
        async with self._traffic.turn(user):
            # httpx's timeout is per read; this bounds the whole answer, however slowly it drips.
            with anyio.move_on_after(miner.timeout):
                try:
                    async with self._http.stream(
                        "POST",
                        f"{miner.base_url}/chat/completions",
                        json=body,
                        headers=headers,
                        timeout=_timeout(miner),
                    ) as response:
                        if response.status_code != 200:
                            error = await _read_body(miner, response, MAX_ERROR_BYTES, cut=True)
                            raise self._refused(miner, response, error)
                        content = await _read_body(miner, response, MAX_MESSAGE_BYTES)
                except httpx2.TimeoutException:
                    pass
                except httpx2.HTTPError as exc:
                    raise _transport_failure(miner, exc) from None
        if content is None:
            raise _MinerFailure(miner.name, f"no answer within {miner.timeout:g}s")
        return _parse_completion(miner, model, content)

    async def _stream_on(
        self,
        miner: MinerConfig,
        model: str | None,
        request: ChatCompletionRequest,
        user: str | None,
    ) -> AsyncGenerator[ChatCompletionChunkResponse, None]:
        self._may_call(miner)
        body = _openai_body(request, miner, model, stream=True)
        headers = self._headers(miner)
        defaults = _ChunkDefaults(model)
        # Chunks without text (the opening role chunk) are held back until text comes, so that
        # a stream which breaks before saying anything can still fall back to another miner.
        held: list[ChatCompletionChunkResponse] = []
        done = finished = speaking = False
        said = 0  # characters of the answer so far
        try:
            async with (
                self._traffic.turn(user),
                self._http.stream(
                    "POST",
                    f"{miner.base_url}/chat/completions",
                    json=body,
                    headers=headers,
                    timeout=_timeout(miner),
                ) as response,
            ):
                if response.status_code != 200:
                    error = await _read_body(miner, response, MAX_ERROR_BYTES, cut=True)
                    raise self._refused(miner, response, error)
                async with aclosing(_sse_data(miner, response)) as events:
                    while True:
                        # Only data counts as answering: keep-alives do not hold the wait open.
                        data: str | None = None
                        with anyio.move_on_after(miner.timeout) as idle:
                            data = await anext(events, None)
                        if idle.cancelled_caught:
                            raise httpx2.ReadTimeout("no data")
                        if data is None:
                            break
                        if data.strip() == "[DONE]":
                            done = True
                            break
                        chunk = _parse_chunk(miner, defaults, data)
                        finished = finished or any(c.finish_reason for c in chunk.choices)
                        said += _text_length(chunk)
                        if said > MAX_ANSWER_CHARS:
                            raise _MinerFailure(miner.name, _TOO_LONG)
                        if _has_text(chunk):
                            speaking = True
                        elif not speaking and len(held) >= MAX_HELD_CHUNKS:
                            # Bounded, whatever a miner sends before its text: empty chunks
                            # go; others push out one from the middle, so that the first ones
                            # (the role) and the last (finish, usage) stay.
                            if not _carries_nothing(chunk):
                                del held[MAX_HELD_CHUNKS // 2]
                                held.append(chunk)
                            continue
                        held.append(chunk)
                        if speaking:
                            for ready in held:
                                yield ready
                            held.clear()
        except httpx2.TimeoutException:
            raise _MinerFailure(
                miner.name, f"stopped answering (nothing for {miner.timeout:g}s)"
            ) from None
        except httpx2.HTTPError as exc:
            raise _transport_failure(miner, exc) from None
        if not (done or finished):
            raise _MinerFailure(miner.name, "the stream ended before the answer did")
        for ready in held:
            yield ready

    async def _list_models(self, miner: MinerConfig, timeout: float) -> list[str]:
        try:
            async with self._http.stream(
                "GET", f"{miner.base_url}/models", headers=self._headers(miner), timeout=timeout
            ) as response:
                limit = MAX_MESSAGE_BYTES if response.status_code == 200 else MAX_ERROR_BYTES
                content = await _read_body(miner, response, limit, cut=response.status_code != 200)
        except httpx2.TimeoutException:
            raise _MinerFailure(miner.name, f"no answer within {timeout:g}s") from None
        except httpx2.HTTPError as exc:
            raise _transport_failure(miner, exc) from None
        if response.status_code != 200:
            raise _http_failure(miner, response.status_code, content)
        try:
            data = json.loads(content)["data"]
            return [str(item["id"]) for item in data]
        except (ValueError, KeyError, TypeError):
            raise _MinerFailure(miner.name, "malformed model list") from None

    async def _check(self, miner: MinerConfig) -> MinerStatus:
        try:
            listed = await self._list_models(miner, min(miner.timeout, CHECK_TIMEOUT))
        except _MinerFailure as failure:
            kind = _problem_of(failure.reason)
            return MinerStatus(miner.name, miner.base_url, False, failure.reason, problem=kind)
        detail = f"answers; lists {len(listed)} model(s)"
        # Ollama lists "llama3.2:latest" for what people call "llama3.2".
        missing = [m for m in miner.models if m not in listed and f"{m}:latest" not in listed]
        problem: Problem | None = None
        if listed and missing:
            detail += f"; does not list {', '.join(missing)}"
            problem = "model_missing"
        return MinerStatus(miner.name, miner.base_url, True, detail, tuple(listed), problem=problem)

    # --- local discovery ------------------------------------------------------------------

    async def _discover(self) -> list[MinerConfig]:
        async with self._probe_lock:
            if self._discovered is None:
                found: list[tuple[MinerConfig | None, MinerStatus] | None]
                found = [None] * len(self._local_probe)

                async def probe(i: int, label: str, url: str) -> None:
                    found[i] = await self._probe(label, url)

                async with anyio.create_task_group() as tg:
                    for i, (label, url) in enumerate(self._local_probe):
                        tg.start_soon(probe, i, label, url)
                results = [f for f in found if f is not None]
                self._probe_statuses = [status for _, status in results]
                self._discovered = [miner for miner, _ in results if miner is not None]
                for miner in self._discovered:
                    log.info("using the local LLM server %s at %s", miner.name, miner.base_url)
            return self._discovered

    async def _probe(self, label: str, url: str) -> tuple[MinerConfig | None, MinerStatus]:
        slug = "".join(ch for ch in label.lower() if ch.isalnum()) or "local"
        fields = {"base_url": url, "name": slug}
        probe = (
            MinerConfig.from_preset(slug, **fields)
            if slug in PRESETS
            else MinerConfig.model_validate(fields)
        )
        try:
            listed = await self._list_models(probe, PROBE_TIMEOUT)
        except _MinerFailure as failure:
            problem = _problem_of(failure.reason)
            return None, MinerStatus(
                label, url, False, failure.reason, discovered=True, problem=problem
            )
        # The default is the first chat model: Ollama also lists embedding models.
        chat = [m for m in listed if "embed" not in m.lower()]
        models = chat + [m for m in listed if m not in chat]
        miner = probe.model_copy(update={"models": models})
        status = MinerStatus(
            label,
            url,
            True,
            f"answers; lists {len(listed)} model(s)",
            tuple(listed),
            True,
            problem=None if listed else "no_models",
        )
        return miner, status

    def _no_miner_message(self) -> str:
        how = (
            "set APEX_MINER=ollama (or APEX_MINER=https://your-endpoint/v1 with "
            "APEX_MINER_API_KEY and APEX_MINER_MODEL), or add [[miners]] entries to the "
            "config file"
        )
        if not (self._discover_local and self._local_probe):
            return f"no LLM miner is configured: {how}"
        places = [f"{urlsplit(url).netloc} ({label})" for label, url in self._local_probe]
        where = places[0] if len(places) == 1 else f"{', '.join(places[:-1])} or {places[-1]}"
        return f"no LLM miner is configured and none answers on {where}: {how}"


def _problem_of(reason: str) -> Problem:
    """The kind of a failure of ``GET /models``, from the reason this module gave it."""
    status = re.match(r"HTTP (\d+)", reason)
    if status is not None:
        code = int(status.group(1))
        if code in (401, 403):
            return "key_refused"
        if code == 404:
            return "not_found"
        if code == 429:
            return "rate_limited"
        return "server_error" if code >= 500 else "http"
    for start, problem in _REASON_PROBLEMS:
        if reason.startswith(start):
            return problem
    return "malformed"


_REASON_PROBLEMS: tuple[tuple[str, Problem], ...] = (
    ("no API key", "no_key"),
    ("unreachable", "unreachable"),
    ("no answer within", "timeout"),
    ("the connection failed", "connection"),
)


@dataclass
class _Mixture:
    """The proposals' outcome: who proposed, and the request that synthesizes them."""

    request: ChatCompletionRequest
    synthesizers: list[Candidate]
    proposers: list[str]
    usages: list[CompletionUsage]

    def fingerprint(self, synthesizer: MinerConfig) -> str:
        others = list(self.proposers)
        if synthesizer.name in others:
            others.remove(synthesizer.name)
        return "mixture:" + ",".join([synthesizer.name, *others])


# --- Apex -> OpenAI ---------------------------------------------------------------------------


def _require_messages(request: ChatCompletionRequest) -> None:
    if not request.messages:
        raise ApexError(
            Code.INVALID_ARGUMENT, "messages is empty: a chat completion needs at least one"
        )


def _is_mixture(request: ChatCompletionRequest) -> bool:
    mode = (request.inference_mode or "").strip().lower()
    return bool(request.mixture) or mode in MIXTURE_MODES


def _openai_body(
    request: ChatCompletionRequest, miner: MinerConfig, model: str | None, *, stream: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": m.role or "user", "content": m.content} for m in request.messages]
    }
    if model:  # no model: the server answers with its own default
        body["model"] = model
    sampling = request.sampling_parameters
    if sampling is not None:
        # proto3 floats cannot be "unset": 0 means "not given", except that no sampling is greedy.
        if not sampling.do_sample:
            body["temperature"] = 0.0
        elif sampling.temperature > 0:
            body["temperature"] = sampling.temperature
        if sampling.top_p > 0:
            body["top_p"] = sampling.top_p
        if miner.supports_top_k and sampling.top_k is not None and sampling.top_k > 0:
            body["top_k"] = int(sampling.top_k)
        if sampling.max_new_tokens > 0:
            body["max_tokens"] = sampling.max_new_tokens
    if request.seed is not None:
        body["seed"] = request.seed
    if request.json_format:
        body["response_format"] = {"type": "json_object"}
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _synthesis_messages(request: ChatCompletionRequest, answers: list[str]) -> list[ChatMessage]:
    listed = "\n\n".join(f"### Answer {i}\n{text}" for i, text in enumerate(answers, 1))
    instructions = f"{SYNTHESIS_PROMPT}\n\n{listed}"
    messages = list(request.messages)
    # One system message, first: several, or one further down, break some chat templates.
    if messages and messages[0].role == "system":
        instructions = f"{messages.pop(0).content}\n\n{instructions}"
    return [ChatMessage(role="system", content=instructions), *messages]


# --- OpenAI -> Apex ---------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _WireMessage(_Wire):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None


class _WireChoice(_Wire):
    index: int = 0
    finish_reason: str | None = None
    message: _WireMessage | None = None
    delta: _WireMessage | None = None


class _WireCompletion(_Wire):
    id: str | None = None
    created: float | None = None
    model: str | None = None
    choices: list[_WireChoice] = Field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: Any = None


def _read_wire(miner: MinerConfig, data: str | bytes) -> _WireCompletion:
    try:
        wire = _WireCompletion.model_validate_json(data)
    except ValidationError:
        raise _MinerFailure(miner.name, "malformed answer") from None
    if wire.error is not None:  # some servers report errors inside a 200 or a stream
        raise _MinerFailure(miner.name, f"error: {_error_text(miner, wire.error)}")
    return wire


def _parse_completion(
    miner: MinerConfig, model: str | None, content: bytes
) -> ChatCompletionResponse:
    wire = _read_wire(miner, content)
    if not wire.choices or any(c.message is None for c in wire.choices):
        raise _MinerFailure(miner.name, "malformed answer (no message)")
    said = sum(
        len(c.message.content or "") + len(c.message.refusal or "")
        for c in wire.choices
        if c.message
    )
    if said > MAX_ANSWER_CHARS:
        raise _MinerFailure(miner.name, _TOO_LONG)
    return ChatCompletionResponse(
        id=wire.id or _new_id(),
        created=int(wire.created or time.time()),
        model=wire.model or model or "",
        object="chat.completion",
        choices=[
            Choice(
                index=c.index,
                finish_reason=c.finish_reason or "",
                message=ChatCompletionMessage(
                    role=c.message.role or "assistant",
                    content=c.message.content or "",
                    refusal=c.message.refusal or "",
                ),
            )
            for c in wire.choices
            if c.message is not None
        ],
        system_fingerprint=f"miner:{miner.name}",
        usage=_usage(wire.usage),
    )


def _new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@dataclass
class _ChunkDefaults:
    """What a stream's chunks say where the server is silent: the same for every chunk."""

    model: str | None
    id: str = field(default_factory=_new_id)
    created: int = field(default_factory=lambda: int(time.time()))


def _parse_chunk(
    miner: MinerConfig, defaults: _ChunkDefaults, data: str
) -> ChatCompletionChunkResponse:
    wire = _read_wire(miner, data)
    return ChatCompletionChunkResponse(
        id=wire.id or defaults.id,
        created=int(wire.created or defaults.created),
        model=wire.model or defaults.model or "",
        object="chat.completion.chunk",
        choices=[
            ChunkChoice(
                index=c.index,
                finish_reason=c.finish_reason or "",
                delta=ChoiceDelta(
                    role=c.delta.role or "",
                    content=c.delta.content or "",
                    refusal=c.delta.refusal or "",
                )
                if c.delta is not None
                else None,
            )
            for c in wire.choices
        ],
        system_fingerprint=f"miner:{miner.name}",
        usage=_usage(wire.usage),
    )


async def _sse_lines(miner: MinerConfig, response: httpx2.Response) -> AsyncGenerator[str, None]:
    """The lines of a stream (ended by CRLF, LF or CR), none longer than ``MAX_MESSAGE_BYTES``:
    a line is refused while it arrives, not once it is all in memory."""
    buffer = bytearray()
    async for piece in response.aiter_bytes():
        buffer += piece
        if b"\n" in piece or b"\r" in piece:
            # A CR at the very end may be half a CRLF: it waits for the next piece.
            cut = len(buffer) - 1 if buffer.endswith(b"\r") else len(buffer)
            text = bytes(buffer[:cut])
            if b"\r" in text:
                text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *lines, rest = text.split(b"\n")
            del buffer[: cut - len(rest)]
            for line in lines:
                yield line.decode("utf-8", "replace")
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise _MinerFailure(miner.name, f"sent an SSE line over {MAX_MESSAGE_BYTES // MIB} MiB")
    if buffer:  # the last line, unended (or a CR's, held back above)
        text = bytes(buffer).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        for line in text.removesuffix(b"\n").split(b"\n"):
            yield line.decode("utf-8", "replace")


async def _sse_data(miner: MinerConfig, response: httpx2.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event (its ``data:`` lines joined)."""
    lines: list[str] = []
    size = 0
    async with aclosing(_sse_lines(miner, response)) as stream:
        async for line in stream:
            if not line:
                if lines:
                    yield "\n".join(lines)
                    lines, size = [], 0
                continue
            name, _, value = line.partition(":")
            if name == "data":
                lines.append(value.removeprefix(" "))
                size += len(lines[-1])
                if size > MAX_MESSAGE_BYTES:
                    raise _MinerFailure(
                        miner.name, f"sent an SSE event over {MAX_MESSAGE_BYTES // MIB} MiB"
                    )
            # other fields (event, id, retry) and ": comments" (keep-alives) carry nothing for us
    if lines:
        yield "\n".join(lines)


async def _read_body(
    miner: MinerConfig, response: httpx2.Response, limit: int, *, cut: bool = False
) -> bytes:
    """The body of ``response``, refused once over ``limit`` bytes (with ``cut``: cut there)."""
    declared = response.headers.get("content-length", "")
    if not cut and declared.isdigit() and int(declared) > limit:
        raise _MinerFailure(miner.name, _too_big(limit))
    pieces: list[bytes] = []
    size = 0
    async for piece in response.aiter_bytes():
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            if cut:
                break
            raise _MinerFailure(miner.name, _too_big(limit))
    return b"".join(pieces)[:limit]


def _too_big(limit: int) -> str:
    return f"answered with over {limit // MIB} MiB, more than an answer may be"


_TOO_LONG = (
    f"its answer went over {MAX_ANSWER_CHARS:,} characters, the limit of a completion; "
    "ask for a shorter one (max_new_tokens)"
)


def _text_length(chunk: ChatCompletionChunkResponse) -> int:
    return sum(
        len(c.delta.content) + len(c.delta.refusal) for c in chunk.choices if c.delta is not None
    )


def _carries_nothing(chunk: ChatCompletionChunkResponse) -> bool:
    """No text, role, finish reason or usage: a chunk the answer loses nothing without."""
    return chunk.usage is None and not any(
        c.finish_reason or (c.delta is not None and (c.delta.role or _has_text_delta(c.delta)))
        for c in chunk.choices
    )


def _has_text_delta(delta: ChoiceDelta) -> bool:
    return bool(delta.content or delta.refusal)


def _has_text(chunk: ChatCompletionChunkResponse) -> bool:
    return any(c.delta is not None and (c.delta.content or c.delta.refusal) for c in chunk.choices)


def _answer_text(response: ChatCompletionResponse) -> str:
    message = response.choices[0].message if response.choices else None
    return message.content if message is not None else ""


def _usage(data: dict[str, Any] | None) -> CompletionUsage | None:
    if not data:
        return None
    try:
        return CompletionUsage.model_validate(data)
    except ValidationError:  # odd usage is no reason to throw the answer away
        return None


def _sum_usage(usages: Sequence[CompletionUsage | None]) -> CompletionUsage:
    present = [u for u in usages if u is not None]
    return CompletionUsage(
        prompt_tokens=sum(u.prompt_tokens for u in present),
        completion_tokens=sum(u.completion_tokens for u in present),
        total_tokens=sum(u.total_tokens for u in present),
    )


# --- failures ---------------------------------------------------------------------------------


def _timeout(miner: MinerConfig) -> httpx2.Timeout:
    return httpx2.Timeout(miner.timeout, connect=min(miner.timeout, 10.0))


def _transport_failure(miner: MinerConfig, exc: Exception) -> _MinerFailure:
    if isinstance(exc, httpx2.ConnectError):
        from ..netguard import refusal  # not at the top: it loads httpcore2, costly at start-up

        refused = refusal(exc)  # a guarded client (hosted sessions) refused a private address
        return _MinerFailure(miner.name, refused or f"unreachable at {miner.base_url}")
    return _MinerFailure(miner.name, f"the connection failed ({type(exc).__name__})")


def _http_failure(miner: MinerConfig, status: int, content: bytes) -> _MinerFailure:
    reason = f"HTTP {status}"
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if error:
        reason += f" ({_error_text(miner, error)})"
    if status in (401, 403):
        reason += f"; check its API key{f' ({miner.api_key_env})' if miner.api_key_env else ''}"
    return _MinerFailure(miner.name, reason, rejected=status in (400, 413, 422))


def _error_text(miner: MinerConfig, error: Any) -> str:
    text = str(error.get("message") or error) if isinstance(error, dict) else str(error)
    # A server may echo the key it was sent ("Incorrect API key provided: sk-...").
    for secret in (miner.resolved_api_key(), miner.basic_auth):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    if miner.basic_auth is not None:  # the password alone, too
        password = miner.basic_auth.get_secret_value().partition(":")[2]
        if password:
            text = text.replace(password, "***")
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def _retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number or an HTTP date); None if it
    says nothing usable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _clock(seconds: float) -> str:
    """The time ``seconds`` from now, as a person reads it: ``05:42:10 UTC (in 30s)``."""
    when = datetime.fromtimestamp(time.time() + seconds, UTC)
    return f"{when:%H:%M:%S} UTC (in {max(1, round(seconds))}s)"


def _every_miner_failed(failures: list[_MinerFailure]) -> ApexError:
    listing = "; ".join(str(f) for f in failures)
    if failures and all(f.rejected for f in failures):
        return ApexError(Code.INVALID_ARGUMENT, f"every miner rejected the request: {listing}")
    resting = [f.retry_after for f in failures if f.retry_after is not None]
    if failures and len(resting) == len(failures):
        return ApexError(
            Code.RESOURCE_EXHAUSTED,
            f"every miner is rate limited: {listing}",
            hint=f"retry after {_clock(min(resting))}",
        )
    return ApexError(
        Code.UNAVAILABLE,
        f"no miner could answer: {listing}",
        hint="check that the miners are up and their keys are set: run `apex-mcp doctor`",
    )


def _log_failure(failure: _MinerFailure) -> None:
    log.warning("miner %s failed: %s", failure.miner, failure.reason)
