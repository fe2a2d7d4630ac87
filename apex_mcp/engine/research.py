"""Deep research: the orchestrator that writes a cited report, and the runner of durable jobs.

``Researcher`` does one job's research with the miners and the web retriever, and reports its
progress as it goes through an ``emit`` callback:

1. plan: a miner breaks the question into web searches (a JSON list; a model that answers
   badly leaves the question itself as the one search);
2. for each search, retrieval, then for each new source (URLs deduplicated across searches,
   at most ``max_sources`` per job) a miner notes what the source says about the question;
3. a miner drafts a markdown report from the notes, citing the sources as [1], [2]…; the
   "Sources" list that names their URLs is added here, not trusted to the model.

Chunks, in the Apex format (``json.dumps([{"content": ...}])``): ``## Generating Research
Plan``, the plan, ``## Searching: <query>``, ``### Reading: <title> (<url>)``, the notes,
``## Drafting report``, and last the report, which is the final answer.

``ResearchRunner`` runs jobs in the background of the process that owns the engine, in a task
group of its own (``async with``), and keeps them durable and bounded:

- ``submit`` creates the job, pending, in the store and returns. A dispatcher claims pending
  jobs, fairly across users (see ``Store.claim_next_job``), while fewer than
  ``max_concurrent_jobs`` run here; the store's claim is atomic, so runners of several
  processes on one database share the queue and never run a job twice.
- a job reads at most ``max_sources`` sources and runs at most ``max_seconds`` from its start
  (then it fails, saying so). ``cancel`` marks it cancelled and stops its task at once (in
  another process: at its next chunk or heartbeat); a finished job takes no more chunks.
- a stopping runner hands its running jobs back to the queue: the next runner re-runs them
  from the start, appending after what they wrote (a chunk says it starts over), so seq_ids
  go on without gaps.
- a process that dies cannot hand anything back. A running job's updated_at is its heartbeat,
  bumped every ``heartbeat_seconds``; one silent for ``STALE_HEARTBEATS`` beats lost its
  process, and any runner marks it failed with a reason ("interrupted: ... a restart or a
  crash"). It is not re-run: a job that crashed its process must not crash the next one.
- a job runs on the engine's miners, or on a set named at submit (a hosted session's own,
  see ``use_miners``): only the name is stored, so such a job waits, pending, for a runner
  that holds the set, and after a restart, for its session to come back, at most
  ``session_job_wait_seconds`` (then it fails, saying so);
- the completions linked to a job (``metadata."deep-researcher".jobId``) follow its status,
  and on completion get the report as their text; ``get`` also brings them up to date, for
  a link made after the job had moved on.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import anyio
from anyio.abc import TaskGroup

from ..apex.errors import ApexError, Code, invalid_argument
from ..apex.models import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    GetDeepResearcherJobResponse,
    SamplingParameters,
    SubmitDeepResearcherJobResponse,
    WebRetrievalRequest,
    WebRetrievalResponse,
    WebSearchResult,
    format_timestamp,
)
from .store.base import FINISHED_JOB_STATUSES, Job, JobStatus, Store

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

STALE_HEARTBEATS = 6  # beats missed before a running job counts as orphaned
MAX_SOURCE_CHARS = 12_000  # of a page's text shown to the note taker
MAX_QUERY_CHARS = 300
FALLBACK_NOTES_CHARS = 1_500

RESTART_CHUNK = "## Starting over: the engine stopped while this job ran\n"

# The SDK's sampling for deep research (see the shared Apex README).
DEFAULT_SAMPLING = SamplingParameters(
    temperature=0.7, top_p=0.95, max_new_tokens=8192, do_sample=False
)

PLAN_PROMPT = """\
You plan web research. Break the user's question into at most {count} focused web search \
queries that together find what is needed to answer it well. Answer with a JSON list of \
strings and nothing else, for example: ["first query", "second query"]"""

NOTES_PROMPT = """\
You take notes for a research report. From the source below, note briefly, as bullet points, \
the facts that help answer the question. Use only what the source says. If it says nothing \
useful, answer "Nothing relevant." """

REPORT_PROMPT = """\
You write a research report in markdown that answers the user's question from the numbered \
sources below. Cite each claim taken from a source with the source's number in square \
brackets, e.g. [1] or [2][3], using only the numbers given. Where the sources are silent, say \
so rather than guess. Do not end with a list of sources: it is added for you."""

# What to do when a part of a job fails, named in the job's error. A job runs in the engine:
# none of its failures is the remote Apex server's, whose advice a code gives by default.
SEARCH_HINT = "check the web search: the network, APEX_SEARCH_PROVIDER and APEX_SEARXNG_URL"
ENGINE_MINERS_HINT = (
    "check the miners and their keys (APEX_MINER, APEX_MINER_API_KEY and APEX_MINER_MODEL, or "
    "[[miners]] in the config file): `apex-mcp doctor` tries each"
)
SESSION_MINERS_HINT = "check the miner, its API key and its model in this session's settings"
STORE_HINT = "the engine's database failed: check APEX_DB and the disk it is on"

NO_SOURCES_PROMPT = """\
You write a research report in markdown that answers the user's question. The web search \
found no sources, so answer from what you know and say plainly, at the start, that the report \
is not backed by web sources."""


# --- what the orchestrator needs --------------------------------------------------------------


class Completer(Protocol):
    """Answers a chat completion (``MinerPool``)."""

    async def complete(
        self, request: ChatCompletionRequest, *, user: str | None = None
    ) -> ChatCompletionResponse: ...


class Retriever(Protocol):
    """Searches the web and reads the pages found (``WebRetriever``)."""

    async def retrieve(self, request: WebRetrievalRequest) -> WebRetrievalResponse: ...


@dataclass(frozen=True)
class ResearchLimits:
    """The bounds of deep research: per runner, per job, per search."""

    max_concurrent_jobs: int = 2
    max_sources: int = 12
    max_seconds: float = 1800.0
    max_searches: int = 5
    results_per_search: int = 3
    heartbeat_seconds: float = 10.0
    session_job_wait_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ResearchLimits:
        return cls(
            max_concurrent_jobs=settings.research_max_concurrent_jobs,
            max_sources=settings.research_max_sources,
            max_seconds=settings.research_max_seconds,
            heartbeat_seconds=settings.research_heartbeat_seconds,
            session_job_wait_seconds=settings.research_session_job_wait_seconds,
        )


@dataclass(frozen=True)
class Source:
    """A source read, with the number the report cites it by and the notes taken on it."""

    number: int
    url: str
    title: str
    notes: str


# --- the orchestrator -----------------------------------------------------------------------


Emit = Callable[[str], Awaitable[None]]


@dataclass
class Researcher:
    """One job's research. ``run`` returns the report; ``emit`` gets each progress chunk."""

    miners: Completer
    retriever: Retriever
    limits: ResearchLimits
    request: ChatCompletionRequest
    emit: Emit
    miners_hint: str = ENGINE_MINERS_HINT  # what to check when the miners fail
    user: str | None = None  # whose turns at the miners this research takes
    sources: list[Source] = field(default_factory=list)

    async def run(self) -> str:
        question = question_of(self.request)
        await self.emit("## Generating Research Plan\n")
        searches = await self.plan(question)
        await self.emit("".join(f"{i}. {q}\n" for i, q in enumerate(searches, 1)))

        seen: set[str] = set()
        failures: list[ApexError] = []
        for search in searches:
            room = self.limits.max_sources - len(self.sources)
            if room <= 0:
                break
            await self.emit(f"## Searching: {search}\n")
            try:
                found = await self.retriever.retrieve(
                    WebRetrievalRequest(
                        search_query=search, n_results=min(self.limits.results_per_search, room)
                    )
                )
            except ApexError as e:
                failures.append(e)
                await self.emit(f"The search failed: {e.message}\n")
                continue
            for result in found.results:
                if len(self.sources) >= self.limits.max_sources:
                    break
                if not result.url or result.url in seen:
                    continue
                seen.add(result.url)
                title, _ = _split_title(result.content, result.url)
                await self.emit(f"### Reading: {title} ({result.url})\n")
                notes = await self.notes(question, search, title, result)
                await self.emit(notes + "\n")
                self.sources.append(Source(len(self.sources) + 1, result.url, title, notes))

        if not self.sources and failures and len(failures) == len(searches):
            raise _every_search_failed(failures)
        await self.emit("## Drafting report\n")
        return await self.report(question)

    async def plan(self, question: str) -> list[str]:
        count = self.limits.max_searches
        answer = await self.ask(PLAN_PROMPT.format(count=count), question)
        return parse_plan(answer, question, count)

    async def notes(self, question: str, search: str, title: str, page: WebSearchResult) -> str:
        _, text = _split_title(page.content, page.url)
        prompt = (
            f"Question: {question}\nSearch: {search}\n\n"
            f"Source: {title}\nURL: {page.url}\n\n{text[:MAX_SOURCE_CHARS]}"
        )
        try:
            notes = await self.ask(NOTES_PROMPT, prompt)
        except ApexError as e:
            # One failed note should not sink a long job: keep the retriever's best passage.
            log.warning("notes on %s failed (%s); keeping the passage instead", page.url, e)
            notes = ""
        return notes.strip() or (page.relevant or text)[:FALLBACK_NOTES_CHARS].strip()

    async def report(self, question: str) -> str:
        if not self.sources:
            return (await self.ask(NO_SOURCES_PROMPT, question)).strip()
        listed = "\n\n".join(
            f"[{s.number}] {s.title} ({s.url})\nNotes:\n{s.notes}" for s in self.sources
        )
        body = await self.ask(REPORT_PROMPT, f"Question: {question}\n\nSources:\n\n{listed}")
        sources = "\n".join(f"- [{s.number}] [{s.title}]({s.url})" for s in self.sources)
        return f"{_without_sources_section(body).strip()}\n\n## Sources\n\n{sources}\n"

    async def ask(self, instructions: str, prompt: str) -> str:
        """One miner answer, with the request's model, seed and sampling."""
        request = ChatCompletionRequest(
            messages=[
                ChatMessage(role="system", content=instructions),
                ChatMessage(role="user", content=prompt),
            ],
            model=self.request.model,
            seed=self.request.seed,
            sampling_parameters=self.request.sampling_parameters or DEFAULT_SAMPLING,
        )
        try:
            response = await self.miners.complete(request, user=self.user)
        except ApexError as e:
            # Unless the error says already what to set (no miner at all), name the miners.
            raise e if "APEX_MINER" in e.message else e.with_hint(self.miners_hint) from None
        message = response.choices[0].message if response.choices else None
        return message.content if message is not None else ""


def _every_search_failed(failures: list[ApexError]) -> ApexError:
    last = failures[-1]
    said = "" if all(f.message == last.message for f in failures) else ", the last with"
    return ApexError(
        Code.UNAVAILABLE,
        f"every web search failed{said}: {last.message}",
        hint=last.with_hint(SEARCH_HINT, keep_given=True).hint,
    )


def question_of(request: ChatCompletionRequest) -> str:
    """The question a research request asks: its last user message."""
    for message in reversed(request.messages):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    raise invalid_argument("deep research needs a user message with the question")


_FENCE = re.compile(r"^```[\w-]*\s*|\s*```$")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$")


def parse_plan(answer: str, question: str, limit: int) -> list[str]:
    """The searches of a plan: a JSON list (or an object holding one), else a numbered or
    bulleted list; when neither is there, the question itself."""
    text = _FENCE.sub("", answer.strip())
    items: list[object] = []
    start, end = text.find("["), text.rfind("]")
    for candidate in (text, text[start : end + 1] if 0 <= start < end else ""):
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):  # {"queries": [...]}
            parsed = next((v for v in parsed.values() if isinstance(v, list)), [])
        if isinstance(parsed, list):
            items = parsed
            break
    if not items:
        items = [m.group(1) for line in text.splitlines() if (m := _LIST_ITEM.match(line))]
    searches: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):  # [{"query": "..."}]
            item = next((v for v in item.values() if isinstance(v, str)), "")
        if isinstance(item, str) and (query := " ".join(item.split())[:MAX_QUERY_CHARS]):
            searches.setdefault(query.lower(), query)
    return list(searches.values())[:limit] or [" ".join(question.split())[:MAX_QUERY_CHARS]]


def _split_title(content: str, url: str) -> tuple[str, str]:
    # The retriever's content is the page's title line, then its main text.
    title, _, text = content.strip().partition("\n")
    title = " ".join(title.split())[:200]
    return (title or url), (text.strip() or content)


_SOURCES_HEADING = re.compile(
    r"\n\s*(?:#{1,6}\s*|\*\*)(?:sources|references|bibliography)\b[^\n]*(?:\n|$)"
    r"(?!.*\n#{1,6}\s)",
    re.IGNORECASE | re.DOTALL,
)


def _without_sources_section(report: str) -> str:
    # Models add their own list of sources despite being told not to; ours replaces it.
    match = _SOURCES_HEADING.search("\n" + report)
    return report[: max(match.start() - 1, 0)] if match else report


def chunk(text: str) -> str:
    """A result chunk in the Apex format: a JSON list of one message delta."""
    return json.dumps([{"content": text}])


# --- the runner -----------------------------------------------------------------------------


class _JobGone(Exception):
    """The job was finished by someone else (cancelled, or failed as orphaned)."""


class ResearchRunner:
    """Runs deep-research jobs in the background; ``async with`` starts and stops it."""

    def __init__(
        self, store: Store, miners: Completer, retriever: Retriever, limits: ResearchLimits
    ) -> None:
        self.store = store
        self.miners = miners
        self.retriever = retriever
        self.limits = limits
        # Sets of miners other than the engine's, by name (a session's, see ``use_miners``).
        self._miner_sets: dict[str, Completer] = {}
        self._running: dict[str, anyio.CancelScope] = {}  # job id -> its task's scope, here
        self._slots = anyio.Semaphore(limits.max_concurrent_jobs)
        self._wake = anyio.Event()
        self._tasks: TaskGroup | None = None

    @property
    def running_here(self) -> frozenset[str]:
        """Ids of the jobs this runner is running now."""
        return frozenset(self._running)

    async def __aenter__(self) -> Self:
        self._tasks = await anyio.create_task_group().__aenter__()
        self._tasks.start_soon(self._dispatch)
        self._tasks.start_soon(self._keep_alive)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tasks, self._tasks = self._tasks, None
        if tasks is None:
            return None
        # Running jobs are cancelled; each marks itself failed on the way out.
        tasks.cancel_scope.cancel()
        return await tasks.__aexit__(exc_type, exc, tb)

    # --- calls ----------------------------------------------------------------------------

    def use_miners(self, name: str, miners: Completer) -> None:
        """Let this runner run the jobs that need the miners called ``name``.

        Only the name goes into a job's row: the miners (and their keys) live in memory, so
        such a job waits, pending, until a runner that holds them claims it; after a restart,
        until their session comes back.
        """
        if self._miner_sets.get(name) is not miners:
            self._miner_sets[name] = miners
            self._wake.set()

    def _miners_of(self, job: Job) -> Completer | None:
        return self.miners if job.miners is None else self._miner_sets.get(job.miners)

    def forget_miners(self, name: str) -> None:
        """Let go of the miners called ``name``: jobs running on them go on; pending ones wait
        until they are handed over again."""
        self._miner_sets.pop(name, None)

    async def submit(
        self, user_id: str, request: ChatCompletionRequest, *, miners: str | None = None
    ) -> Job:
        """A new pending job for ``request``, to run on the engine's miners or on those
        named ``miners`` (see ``use_miners``); it starts when a slot is free."""
        if self._tasks is None:
            raise ApexError(Code.UNAVAILABLE, "the deep-research runner is not running")
        if miners is not None and miners not in self._miner_sets:
            raise ApexError(Code.INTERNAL, f"no miners called {miners!r} were handed over")
        question_of(request)
        job = await self.store.create_job(user_id, request=request.to_wire(), miners=miners)
        self._wake.set()
        return job

    async def get(self, user_id: str, job_id: str) -> Job:
        """The job with all its chunks; its linked completions are brought up to date too
        (they may have been linked after it changed)."""
        job = await self.store.get_job(user_id, job_id)
        await self._sync_completions(job)
        return job

    async def cancel(self, user_id: str, job_id: str) -> Job:
        """Cancel a pending or running job: it stops now and takes no more chunks."""
        job = await self.store.get_job(user_id, job_id)
        if job.status in ("completed", "failed"):
            raise ApexError(Code.FAILED_PRECONDITION, f"job {job.id} is already {job.status}")
        # The store refuses a finished job's change: a job that finishes meanwhile stays so.
        job = await self.store.set_job_status(job.id, "cancelled")
        if (scope := self._running.get(job.id)) is not None:
            scope.cancel()
        await self._sync_completions(job)
        return job

    # --- background -----------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """Claim pending jobs while a slot is free; else wait for a submit or the next beat."""
        while True:
            await self._slots.acquire()
            self._wake = anyio.Event()  # before the claim: a submit after it wakes us
            # Shielded: a job claimed just as the runner stops is handed back, not orphaned.
            miners: Completer | None = None
            with anyio.CancelScope(shield=True):
                try:
                    job = await self.store.claim_next_job(list(self._miner_sets))
                    if job is not None and self._tasks is None:
                        await self.store.set_job_status(job.id, "pending")
                        return
                    miners = None if job is None else self._miners_of(job)
                    if job is not None and miners is None:  # let go of since the claim
                        await self.store.set_job_status(job.id, "pending")
                        job = None
                except Exception:  # a broken store must not take the engine's task group down
                    log.exception("cannot claim a deep-research job")
                    job = None
            if job is None or miners is None or self._tasks is None:
                self._slots.release()
                await self._wake.wait()
                continue
            scope = anyio.CancelScope()
            self._running[job.id] = scope
            self._tasks.start_soon(self._run, job, scope, miners)

    async def _keep_alive(self) -> None:
        """Each beat: the heartbeat of our running jobs, stop those finished elsewhere, fail
        the orphans of runners that are gone, and look for pending jobs of other processes."""
        stale_after = timedelta(seconds=self.limits.heartbeat_seconds * STALE_HEARTBEATS)
        waited = self.limits.session_job_wait_seconds
        wait_for_session = timedelta(seconds=waited)
        while True:
            try:
                ours = list(self._running)
                for job_id, status in (await self.store.touch_jobs(ours)).items():
                    if status in FINISHED_JOB_STATUSES and job_id in self._running:
                        self._running[job_id].cancel()
                orphans = await self.store.fail_stale_jobs(
                    datetime.now(UTC) - stale_after,
                    "interrupted: the engine running it stopped (a restart or a crash); "
                    "submit the job again",
                    keep=ours,
                )
                for job in orphans:
                    log.warning("deep-research job %s was orphaned: marked failed", job.id)
                    await self._sync_completions(job)
                abandoned = await self.store.fail_waiting_jobs(
                    datetime.now(UTC) - wait_for_session,
                    f"its session's miners were not back within {waited:g} s "
                    "(the server restarted, or the session ended): submit the job again",
                    held=list(self._miner_sets),
                )
                for job in abandoned:
                    log.warning("deep-research job %s waited for its session: failed", job.id)
                    await self._sync_completions(job)
            except Exception:  # try again at the next beat
                log.exception("deep-research upkeep failed")
            self._wake.set()
            await anyio.sleep(self.limits.heartbeat_seconds)

    async def _run(self, job: Job, scope: anyio.CancelScope, miners: Completer) -> None:
        try:
            with scope:
                await self._execute(job, miners)
        finally:
            del self._running[job.id]
            self._slots.release()
            self._wake.set()

    async def _execute(self, job: Job, miners: Completer) -> None:
        log.info("deep-research job %s started", job.id)

        async def emit(text: str) -> None:
            try:
                await self.store.append_chunk(job.id, chunk(text))
            except ApexError as e:
                if e.code is Code.FAILED_PRECONDITION:
                    raise _JobGone from None
                raise e.with_hint(STORE_HINT, keep_given=True) from None

        try:
            # Inside the try: a runner stopping even now hands the job back to the queue.
            await self._sync_completions(job)
            if job.chunks:  # run before, until a shutdown: start over, after what it wrote
                await emit(RESTART_CHUNK)
            request = ChatCompletionRequest.from_wire(job.request)
            hint = ENGINE_MINERS_HINT if job.miners is None else SESSION_MINERS_HINT
            researcher = Researcher(
                miners, self.retriever, self.limits, request, emit, hint, user=job.user_id
            )
            report = ""
            with anyio.move_on_after(self.limits.max_seconds) as deadline:
                report = await researcher.run()
                await emit(report)
            if deadline.cancelled_caught:
                limit = self.limits.max_seconds
                await self._finish(
                    job, "failed", error=f"the job ran over its time limit of {limit:g} s"
                )
            else:
                await self._finish(job, "completed", report=report)
        except _JobGone:
            log.info("deep-research job %s was finished elsewhere", job.id)
        except ApexError as e:
            await self._finish(job, "failed", error=e.explain())
        except anyio.get_cancelled_exc_class():
            # A job cancelled or finished elsewhere is marked so already (the store refuses
            # to change it); otherwise the runner is stopping: the job goes back to the queue.
            with anyio.CancelScope(shield=True):
                await self._requeue(job)
            raise
        except Exception as e:
            log.exception("deep-research job %s failed", job.id)
            await self._finish(job, "failed", error=f"internal error: {type(e).__name__}: {e}")

    async def _requeue(self, job: Job) -> None:
        try:
            pending = await self.store.set_job_status(job.id, "pending")
        except ApexError as e:
            if e.code is not Code.FAILED_PRECONDITION:
                log.warning("cannot hand deep-research job %s back: %s", job.id, e)
            return
        log.info("deep-research job %s handed back to the queue at shutdown", job.id)
        await self._sync_completions(pending)

    async def _finish(
        self, job: Job, status: JobStatus, *, error: str | None = None, report: str | None = None
    ) -> None:
        try:
            finished = await self.store.set_job_status(job.id, status, error=error)
        except ApexError as e:
            if e.code is not Code.FAILED_PRECONDITION:  # else: finished by someone else first
                log.warning("cannot mark deep-research job %s %s: %s", job.id, status, e)
            return
        level = logging.WARNING if status == "failed" else logging.INFO  # a failure is news
        log.log(level, "deep-research job %s %s%s", job.id, status, f": {error}" if error else "")
        await self._sync_completions(finished, report=report)

    async def _sync_completions(self, job: Job, *, report: str | None = None) -> None:
        if job.status == "completed" and report is None and job.chunks:
            report = job.chunks[-1].text  # the last chunk is the report
        try:
            await self.store.sync_job_completions(
                job.user_id, job.id, job.status, completion_text=report
            )
        except ApexError as e:
            log.warning("cannot update the completions of job %s: %s", job.id, e)


# --- Apex messages --------------------------------------------------------------------------


def submit_response(job: Job) -> SubmitDeepResearcherJobResponse:
    return SubmitDeepResearcherJobResponse(
        job_id=job.id,
        status=job.status,
        created_at=format_timestamp(job.created_at),
        updated_at=format_timestamp(job.updated_at),
    )


def job_response(job: Job) -> GetDeepResearcherJobResponse:
    return GetDeepResearcherJobResponse(
        job_id=job.id,
        status=job.status,
        created_at=format_timestamp(job.created_at),
        updated_at=format_timestamp(job.updated_at),
        result=job.chunks,
        error=job.error,
    )
