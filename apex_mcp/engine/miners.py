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

Hostile or broken miners: what a miner sends is bounded as it arrives (see
``openai_compat``, the wire this pool calls miners over).

Fair sharing: each user (``user`` of ``complete`` and ``stream``) has at most
``calls_per_user`` miner calls running at once; more wait their turn up to ``queue_seconds``,
then fail with ``RESOURCE_EXHAUSTED``. One user's calls to a miner that never answers hold
only that user's turns, never another's.

A miner's credentials (``basic_auth``) are sent as HTTP basic auth; its URL never holds them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx2

from .. import __version__
from .._http import LazyClient
from ..apex.errors import ApexError, Code
from ..apex.models import (
    ChatCompletionChunkResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    CompletionUsage,
)
from . import openai_compat as wire
from .config import DEFAULT_CALLS_PER_USER, DEFAULT_QUEUE_SECONDS, LOCAL_PROBE, MinerConfig
from .openai_compat import MinerFailure, Problem, clock, problem_of

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 0.5  # local servers answer at once or are not there
CHECK_TIMEOUT = 10.0
MIXTURE_SIZE = 3
MIXTURE_MODES = frozenset({"mixture-of-agents", "mixture"})
# Local servers found by probing take top_k, as the presets of the same names say.
_TOP_K_LOCAL = frozenset({"ollama", "lmstudio", "vllm", "llamacpp"})

SYNTHESIS_PROMPT = """\
Several assistants answered the last message of this conversation independently; their answers \
are below. Write the single best answer to that message: keep what is correct and useful in \
them, correct or leave out what is wrong, and where they disagree, work out which is right. \
Answer the user directly, as your own answer: do not mention these answers or that there \
were several."""


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


def _make_http() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        headers={"user-agent": f"apex-mcp/{__version__}"},
        limits=httpx2.Limits(max_connections=64, max_keepalive_connections=16),
        trust_env=True,
    )


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
        # A pool made with a client (a sibling) uses it and leaves closing it to its owner.
        self._owns_http = http is None
        self._http = LazyClient(_make_http if http is None else lambda: http)

    def sibling(
        self, miners: Sequence[MinerConfig], *, http: httpx2.AsyncClient | None = None
    ) -> MinerPool:
        """A pool of just ``miners`` (no discovery) on ``http`` or else this pool's HTTP
        client, which stays its owner's to close: a cheap pool per session. The users' turns
        at the miners are shared too."""
        return MinerPool(
            miners, discover_local=False, http=http or self._http(), traffic=self._traffic
        )

    def __repr__(self) -> str:
        names = [m.name for m in self._configured]
        return f"MinerPool(miners={names!r}, discover_local={self._discover_local})"

    async def __aenter__(self) -> MinerPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
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
        failures: dict[str, MinerFailure] = {}
        waited = False
        while candidates:
            for miner, model in candidates:
                try:
                    return miner, await self._complete_on(miner, model, request, user)
                except MinerFailure as failure:
                    _log_failure(failure)
                    failures[miner.name] = failure
            # One more round at most: a miner that asked for a rest, once it had it.
            candidates = [] if waited else await self._after_rest(candidates, failures)
            waited = True
        raise _every_miner_failed(list(failures.values()))

    async def _stream_first(
        self, candidates: list[Candidate], request: ChatCompletionRequest, user: str | None
    ) -> AsyncGenerator[tuple[MinerConfig, ChatCompletionChunkResponse], None]:
        failures: dict[str, MinerFailure] = {}
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
                except MinerFailure as failure:
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
        self, candidates: list[Candidate], failures: dict[str, MinerFailure]
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
        results: list[tuple[Candidate, ChatCompletionResponse] | MinerFailure | None]
        results = [None] * len(asks)
        refused: list[ApexError] = []  # not the miners' failure: the user's turns ran out

        async def ask(i: int, candidate: Candidate, proposal: ChatCompletionRequest) -> None:
            miner, model = candidate
            try:
                results[i] = (candidate, await self._complete_on(miner, model, proposal, user))
            except MinerFailure as failure:
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
            raise _every_miner_failed([r for r in results if isinstance(r, MinerFailure)])
        texts = [_answer_text(response) for _, response in proposals]
        synthesizers = list({c[0].name: c for c, _ in proposals}.values())  # healthy, in order
        return _Mixture(
            request=plain.model_copy(update={"messages": _synthesis_messages(plain, texts)}),
            synthesizers=synthesizers,
            proposers=[c[0].name for c, _ in proposals],
            usages=[r.usage for _, r in proposals if r.usage is not None],
        )

    # --- one miner ------------------------------------------------------------------------

    def _may_call(self, miner: MinerConfig) -> None:
        resting = self._traffic.resting(miner)
        if resting is not None:
            raise MinerFailure(
                miner.name,
                f"rate limited: it asked not to be called before {clock(resting)}",
                retry_after=resting,
            )

    async def _complete_on(
        self,
        miner: MinerConfig,
        model: str | None,
        request: ChatCompletionRequest,
        user: str | None,
    ) -> ChatCompletionResponse:
        self._may_call(miner)
        headers = wire.auth_headers(miner)
        async with self._traffic.turn(user):
            try:
                return await wire.complete(self._http(), miner, model, request, headers)
            except MinerFailure as failure:
                self._note_rest(miner, failure)
                raise

    async def _stream_on(
        self,
        miner: MinerConfig,
        model: str | None,
        request: ChatCompletionRequest,
        user: str | None,
    ) -> AsyncGenerator[ChatCompletionChunkResponse, None]:
        self._may_call(miner)
        headers = wire.auth_headers(miner)
        async with self._traffic.turn(user):
            try:
                answer = wire.stream(self._http(), miner, model, request, headers)
                async with aclosing(answer) as chunks:
                    async for chunk in chunks:
                        yield chunk
            except MinerFailure as failure:
                self._note_rest(miner, failure)
                raise

    def _note_rest(self, miner: MinerConfig, failure: MinerFailure) -> None:
        if failure.retry_after is not None:  # it answered 429 or 503 with Retry-After
            self._traffic.rest(miner, failure.retry_after)

    async def _check(self, miner: MinerConfig) -> MinerStatus:
        try:
            listed = await wire.list_models(self._http(), miner, min(miner.timeout, CHECK_TIMEOUT))
        except MinerFailure as failure:
            kind = problem_of(failure.reason)
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
        known = slug in _TOP_K_LOCAL
        probe = MinerConfig(
            name=slug, base_url=url, supports_top_k=known, preset=slug if known else None
        )
        try:
            listed = await wire.list_models(self._http(), probe, PROBE_TIMEOUT)
        except MinerFailure as failure:
            problem = problem_of(failure.reason)
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


# --- mixture ---------------------------------------------------------------------------------


def _require_messages(request: ChatCompletionRequest) -> None:
    if not request.messages:
        raise ApexError(
            Code.INVALID_ARGUMENT, "messages is empty: a chat completion needs at least one"
        )


def _is_mixture(request: ChatCompletionRequest) -> bool:
    mode = (request.inference_mode or "").strip().lower()
    return bool(request.mixture) or mode in MIXTURE_MODES


def _synthesis_messages(request: ChatCompletionRequest, answers: list[str]) -> list[ChatMessage]:
    listed = "\n\n".join(f"### Answer {i}\n{text}" for i, text in enumerate(answers, 1))
    instructions = f"{SYNTHESIS_PROMPT}\n\n{listed}"
    messages = list(request.messages)
    # One system message, first: several, or one further down, break some chat templates.
    if messages and messages[0].role == "system":
        instructions = f"{messages.pop(0).content}\n\n{instructions}"
    return [ChatMessage(role="system", content=instructions), *messages]


def _answer_text(response: ChatCompletionResponse) -> str:
    message = response.choices[0].message if response.choices else None
    return message.content if message is not None else ""


def _sum_usage(usages: Sequence[CompletionUsage | None]) -> CompletionUsage:
    present = [u for u in usages if u is not None]
    return CompletionUsage(
        prompt_tokens=sum(u.prompt_tokens for u in present),
        completion_tokens=sum(u.completion_tokens for u in present),
        total_tokens=sum(u.total_tokens for u in present),
    )


def _every_miner_failed(failures: list[MinerFailure]) -> ApexError:
    listing = "; ".join(str(f) for f in failures)
    if failures and all(f.rejected for f in failures):
        return ApexError(Code.INVALID_ARGUMENT, f"every miner rejected the request: {listing}")
    resting = [f.retry_after for f in failures if f.retry_after is not None]
    if failures and len(resting) == len(failures):
        return ApexError(
            Code.RESOURCE_EXHAUSTED,
            f"every miner is rate limited: {listing}",
            hint=f"retry after {clock(min(resting))}",
        )
    return ApexError(
        Code.UNAVAILABLE,
        f"no miner could answer: {listing}",
        hint="check that the miners are up and their keys are set: run `apex-mcp doctor`",
    )


def _log_failure(failure: MinerFailure) -> None:
    log.warning("miner %s failed: %s", failure.miner, failure.reason)
