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
for each piece of it (a stream may take long as long as it keeps coming).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

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

    def __init__(self, miner: str, reason: str, *, rejected: bool = False) -> None:
        super().__init__(f"{miner}: {reason}")
        self.miner = miner
        self.reason = reason
        self.rejected = rejected  # the miner called the request itself bad (400, 413, 422)


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
        client, which stays its owner's to close: a cheap pool per session."""
        return MinerPool(miners, discover_local=False, http=http or self._http)

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

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        _require_messages(request)
        if _is_mixture(request):
            return await self._complete_mixture(request)
        _, response = await self._complete_first(await self._route(request.model), request)
        return response

    async def stream(
        self, request: ChatCompletionRequest
    ) -> AsyncGenerator[ChatCompletionChunkResponse, None]:
        _require_messages(request)
        if _is_mixture(request):
            mixture = await self._propose(request)
            synthesis = self._stream_first(mixture.synthesizers, mixture.request)
            async with aclosing(synthesis):
                async for miner, chunk in synthesis:
                    chunk.system_fingerprint = mixture.fingerprint(miner)
                    if chunk.usage is not None:
                        chunk.usage = _sum_usage([*mixture.usages, chunk.usage])
                    yield chunk
            return
        answer = self._stream_first(await self._route(request.model), request)
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
        self, candidates: list[Candidate], request: ChatCompletionRequest
    ) -> tuple[MinerConfig, ChatCompletionResponse]:
        failures: list[_MinerFailure] = []
        for miner, model in candidates:
            try:
                return miner, await self._complete_on(miner, model, request)
            except _MinerFailure as failure:
                _log_failure(failure)
                failures.append(failure)
        raise _every_miner_failed(failures)

    async def _stream_first(
        self, candidates: list[Candidate], request: ChatCompletionRequest
    ) -> AsyncGenerator[tuple[MinerConfig, ChatCompletionChunkResponse], None]:
        failures: list[_MinerFailure] = []
        for miner, model in candidates:
            started = False
            try:
                async with aclosing(self._stream_on(miner, model, request)) as chunks:
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
                failures.append(failure)
        raise _every_miner_failed(failures)

    # --- mixture of agents ----------------------------------------------------------------

    async def _complete_mixture(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        mixture = await self._propose(request)
        miner, response = await self._complete_first(mixture.synthesizers, mixture.request)
        response.system_fingerprint = mixture.fingerprint(miner)
        if response.usage is not None or mixture.usages:
            response.usage = _sum_usage([*mixture.usages, response.usage])
        return response

    async def _propose(self, request: ChatCompletionRequest) -> _Mixture:
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

        async def ask(i: int, candidate: Candidate, proposal: ChatCompletionRequest) -> None:
            miner, model = candidate
            try:
                results[i] = (candidate, await self._complete_on(miner, model, proposal))
            except _MinerFailure as failure:
                _log_failure(failure)
                results[i] = failure

        async with anyio.create_task_group() as tg:
            for i, (candidate, proposal) in enumerate(asks):
                tg.start_soon(ask, i, candidate, proposal)

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
        key = miner.resolved_api_key()
        if key is None:
            if miner.api_key_env:
                raise _MinerFailure(miner.name, f"no API key: set {miner.api_key_env}")
            return {}
        return {"authorization": f"Bearer {key.get_secret_value()}"}

    async def _complete_on(
        self, miner: MinerConfig, model: str | None, request: ChatCompletionRequest
    ) -> ChatCompletionResponse:
        body = _openai_body(request, miner, model, stream=False)
        headers = self._headers(miner)
        response: httpx2.Response | None = None
        # httpx's timeout is per read; this bounds the whole answer, however slowly it drips.
        with anyio.move_on_after(miner.timeout):
            try:
                response = await self._http.post(
                    f"{miner.base_url}/chat/completions",
                    json=body,
                    headers=headers,
                    timeout=_timeout(miner),
                )
            except httpx2.TimeoutException:
                pass
            except httpx2.HTTPError as exc:
                raise _transport_failure(miner, exc) from None
        if response is None:
            raise _MinerFailure(miner.name, f"no answer within {miner.timeout:g}s")
        if response.status_code != 200:
            raise _http_failure(miner, response.status_code, response.content)
        return _parse_completion(miner, model, response.content)

    async def _stream_on(
        self, miner: MinerConfig, model: str | None, request: ChatCompletionRequest
    ) -> AsyncGenerator[ChatCompletionChunkResponse, None]:
        body = _openai_body(request, miner, model, stream=True)
        headers = self._headers(miner)
        defaults = _ChunkDefaults(model)
        # Chunks without text (the opening role chunk) are held back until text comes, so that
        # a stream which breaks before saying anything can still fall back to another miner.
        held: list[ChatCompletionChunkResponse] = []
        done = finished = speaking = False
        try:
            async with self._http.stream(
                "POST",
                f"{miner.base_url}/chat/completions",
                json=body,
                headers=headers,
                timeout=_timeout(miner),
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _http_failure(miner, response.status_code, response.content)
                async with aclosing(_sse_data(response)) as events:
                    async for data in events:
                        if data.strip() == "[DONE]":
                            done = True
                            break
                        chunk = _parse_chunk(miner, defaults, data)
                        finished = finished or any(c.finish_reason for c in chunk.choices)
                        held.append(chunk)
                        speaking = speaking or _has_text(chunk)
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
            response = await self._http.get(
                f"{miner.base_url}/models", headers=self._headers(miner), timeout=timeout
            )
        except httpx2.TimeoutException:
            raise _MinerFailure(miner.name, f"no answer within {timeout:g}s") from None
        except httpx2.HTTPError as exc:
            raise _transport_failure(miner, exc) from None
        if response.status_code != 200:
            raise _http_failure(miner, response.status_code, response.content)
        try:
            data = json.loads(response.content)["data"]
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


async def _sse_data(response: httpx2.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event (its ``data:`` lines joined)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value.removeprefix(" "))
        # other fields (event, id, retry) and ": comments" (keep-alives) carry nothing for us
    if lines:
        yield "\n".join(lines)


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
        return _MinerFailure(miner.name, f"unreachable at {miner.base_url}")
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
    key = miner.resolved_api_key()
    if key is not None:
        text = text.replace(key.get_secret_value(), "***")
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def _every_miner_failed(failures: list[_MinerFailure]) -> ApexError:
    listing = "; ".join(str(f) for f in failures)
    if failures and all(f.rejected for f in failures):
        return ApexError(Code.INVALID_ARGUMENT, f"every miner rejected the request: {listing}")
    return ApexError(
        Code.UNAVAILABLE,
        f"no miner could answer: {listing}",
        hint="check that the miners are up and their keys are set: run `apex-mcp doctor`",
    )


def _log_failure(failure: _MinerFailure) -> None:
    log.warning("miner %s failed: %s", failure.miner, failure.reason)
