"""Durable deep-research jobs. ``ResearchRunner`` runs them (each a ``Researcher``'s work) in
the background of the process that owns the engine, in a task group of its own
(``async with``), and keeps them durable and bounded:

- ``submit`` creates the job, pending, in the store and returns. A dispatcher claims pending
  jobs, fairly across users (see ``Store.claim_next_job``), while fewer than
  ``max_concurrent_jobs`` run here; the store's claim is atomic, so runners of several
  processes on one database share the queue and never run a job twice.
- a job reads at most ``max_sources`` sources and runs at most ``max_seconds`` from its start
  (then it fails, saying so). ``cancel`` marks it cancelled and stops its task at once (in
  another process: at its next chunk or heartbeat); a finished job takes no more chunks.
- a stopping runner hands its running jobs back to the queue: the next runner resumes them
  where they were, appending after what they wrote (a chunk says it resumes), so seq_ids go
  on without gaps. What a job wrote is its checkpoint: the plan and the sources it read
  with their notes are read back from its chunks (``Researcher.resume``), not done again.
- a process that dies cannot hand anything back. A claimed job is leased to its runner
  (``Job.attempt``, see ``Store``): the runner's heartbeat bumps its updated_at every
  ``heartbeat_seconds``; one silent for ``lease_heartbeats`` beats lost its process, and any
  runner hands it back to the queue (a chunk says it is taken over) to be resumed. The lease
  fences the runner that lost it: were it only stalled, its next write is refused and it
  stops. At most ``MAX_TAKEOVERS`` times: a job that keeps killing its process must not kill
  them all, so after that it fails, saying so.
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
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup

from ..apex.errors import ApexError, Code
from ..apex.models import (
    ChatCompletionRequest,
    GetDeepResearcherJobResponse,
    SearchFilters,
    SubmitDeepResearcherJobResponse,
    format_timestamp,
)
from .config import ResearchLimits
from .researcher import (
    ENGINE_MINERS_HINT,
    SESSION_MINERS_HINT,
    Completer,
    Researcher,
    Retriever,
    question_of,
)
from .store.base import Job, JobStatus, Store

# One name for deep research's log, the orchestrator's and the runner's: clients hear it so.
log = logging.getLogger("apex_mcp.engine.research")

RESTART_CHUNK = "## Resuming: the engine stopped while this job ran\n"
TAKEOVER_CHUNK = "## Taken over: the engine running this job was lost; resuming\n"
MAX_TAKEOVERS = 3  # takeovers of one job before it fails instead
STORE_HINT = "the engine's database failed: check APEX_DB and the disk it is on"


def chunk(text: str) -> str:
    """A result chunk in the Apex format: a JSON list of one message delta."""
    return json.dumps([{"content": text}])


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
        # Job id -> the attempt it runs under here, and its task's scope.
        self._running: dict[str, tuple[int, anyio.CancelScope]] = {}
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
        # Running jobs are cancelled; each hands itself back to the queue on the way out.
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
        self,
        user_id: str,
        request: ChatCompletionRequest,
        *,
        miners: str | None = None,
        filters: SearchFilters | None = None,
    ) -> Job:
        """A new pending job for ``request``, to run on the engine's miners or on those
        named ``miners`` (see ``use_miners``); it starts when a slot is free. ``filters``
        bound what its searches return, wherever it runs (they are stored with it)."""
        if self._tasks is None:
            raise ApexError(Code.UNAVAILABLE, "the deep-research runner is not running")
        if miners is not None and miners not in self._miner_sets:
            raise ApexError(Code.INTERNAL, f"no miners called {miners!r} were handed over")
        question_of(request)
        job = await self.store.create_job(
            user_id,
            request=request.to_wire(),
            miners=miners,
            search_filters=filters.to_json() if filters else None,
        )
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
        if (running := self._running.get(job.id)) is not None:
            _, scope = running
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
                        await self.store.set_job_status(job.id, "pending", attempt=job.attempt)
                        return
                    miners = None if job is None else self._miners_of(job)
                    if job is not None and miners is None:  # let go of since the claim
                        await self.store.set_job_status(job.id, "pending", attempt=job.attempt)
                        job = None
                except Exception:  # a broken store must not take the engine's task group down
                    log.exception("cannot claim a deep-research job")
                    job = None
            if job is None or miners is None or self._tasks is None:
                self._slots.release()
                await self._wake.wait()
                continue
            scope = anyio.CancelScope()
            if (older := self._running.get(job.id)) is not None:
                older[1].cancel()  # a run of ours that stalled past its lease, and lost it
            self._running[job.id] = (job.attempt, scope)
            self._tasks.start_soon(self._run, job, scope, miners)

    async def _keep_alive(self) -> None:
        """Each beat: the heartbeat of our running jobs, stop those we no longer hold (finished
        or taken over elsewhere), take over the jobs of runners that are gone, and look for
        pending jobs of other processes."""
        stale_after = timedelta(
            seconds=self.limits.heartbeat_seconds * self.limits.lease_heartbeats
        )
        waited = self.limits.session_job_wait_seconds
        wait_for_session = timedelta(seconds=waited)
        while True:
            try:
                leases = {job_id: attempt for job_id, (attempt, _) in self._running.items()}
                lost = await self.store.touch_jobs(leases)
                for job_id, (attempt, scope) in list(self._running.items()):
                    if job_id in lost and attempt == leases[job_id]:
                        scope.cancel()
                await self._take_over_orphans(datetime.now(UTC) - stale_after)
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

    async def _take_over_orphans(self, before: datetime) -> None:
        """Hand back to the queue the running jobs whose runner fell silent before ``before``
        (its process died); one taken over ``MAX_TAKEOVERS`` times already fails instead."""
        taken = await self.store.take_over_stale_jobs(
            before,
            chunk=chunk(TAKEOVER_CHUNK),
            max_takeovers=MAX_TAKEOVERS,
            error=f"interrupted: the engine running it was lost {MAX_TAKEOVERS + 1} times"
            " (a crash each time?); submit the job again",
        )
        for job in taken:
            if job.status == "failed":
                log.warning("deep-research job %s failed: %s", job.id, job.error)
            else:
                log.warning("deep-research job %s lost its runner: back in the queue", job.id)
            await self._sync_completions(job)

    async def _run(self, job: Job, scope: anyio.CancelScope, miners: Completer) -> None:
        try:
            with scope:
                await self._execute(job, miners)
        finally:
            if self._running.get(job.id, (None,))[0] == job.attempt:  # not a later run's
                del self._running[job.id]
            self._slots.release()
            self._wake.set()

    async def _execute(self, job: Job, miners: Completer) -> None:
        log.info("deep-research job %s started", job.id)

        async def emit(text: str) -> None:
            try:
                await self.store.append_chunk(job.id, chunk(text), attempt=job.attempt)
            except ApexError as e:
                if e.code is Code.FAILED_PRECONDITION:
                    raise _JobGone from None
                raise e.with_hint(STORE_HINT, keep_given=True) from None

        try:
            # Inside the try: a runner stopping even now hands the job back to the queue.
            await self._sync_completions(job)
            # Run before, until a shutdown: resume, after what it wrote (a takeover says so).
            if job.chunks and job.chunks[-1].text != TAKEOVER_CHUNK:
                await emit(RESTART_CHUNK)
            request = ChatCompletionRequest.from_wire(job.request)
            hint = ENGINE_MINERS_HINT if job.miners is None else SESSION_MINERS_HINT
            filters = SearchFilters.of(**job.search_filters) if job.search_filters else None
            researcher = Researcher(
                miners,
                self.retriever,
                self.limits,
                request,
                emit,
                hint,
                user=job.user_id,
                filters=filters,
            )
            researcher.resume(runs_of(job))
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
            pending = await self.store.set_job_status(job.id, "pending", attempt=job.attempt)
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
            finished = await self.store.set_job_status(
                job.id, status, error=error, attempt=job.attempt
            )
        except ApexError as e:
            if e.code is not Code.FAILED_PRECONDITION:  # else: finished or taken over elsewhere
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


def runs_of(job: Job) -> list[list[str]]:
    """The texts of a job's chunks, run by run: a resumed run starts at its restart or
    takeover chunk."""
    runs: list[list[str]] = [[]]
    for text in (c.text for c in job.chunks):
        if text in (RESTART_CHUNK, TAKEOVER_CHUNK):
            runs.append([])
        else:
            runs[-1].append(text)
    return runs


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
