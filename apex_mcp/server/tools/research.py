"""Deep research: start a job, follow it (waiting for news, not polling blindly), cancel it."""

from __future__ import annotations

import logging
import re
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from ...apex import models as m
from ...apex.client import ApexClient
from ...apex.errors import ApexError
from ..outputs import Completion, CompletionList, ResearchJob, ResearchStatus, page
from ..state import AppState
from . import apex, apex_errors, app_state, reply, tool

log = logging.getLogger(__name__)

MAX_WAIT = 50.0  # hosts commonly cut a tool call at 60 s
FINISHED = frozenset({"completed", "failed", "cancelled"})
URL = re.compile(r"https?://[^\s)\]>\"'<]+")


@tool("research", "Start a deep research job", read_only=False, open_world=True)
async def deep_research_start(
    ctx: Context[AppState],
    user_prompt: Annotated[str, Field(min_length=1, description="the research question")],
    system_prompt: str | None = None,
    model: Annotated[str | None, Field(description='empty or "Default" for the default')] = None,
    seed: Annotated[int | None, Field(ge=0)] = None,
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7,
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.95,
    max_new_tokens: Annotated[int, Field(ge=1, le=65536)] = 8192,
    save: Annotated[bool, Field(description="keep the report as a stored chat")] = True,
) -> Annotated[CallToolResult, ResearchJob]:
    """Start a deep research job and return its job_id at once. The job searches the web,
    reads sources and writes a cited report; follow it with deep_research_status."""
    state = app_state(ctx)
    system = [m.ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    # What the Apex SDK sent for deep research.
    request = m.ChatCompletionRequest(
        messages=[*system, m.ChatMessage(role="user", content=user_prompt)],
        seed=seed,
        model=model,
        task="InferenceTask",
        inference_mode="Chain-of-Thought",
        mixture=False,
        stream=True,
        sampling_parameters=m.SamplingParameters(
            temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, do_sample=False
        ),
    )
    with apex_errors():
        client = await apex(ctx)
        job = await client.submit_deep_researcher_job(request)
        chat_id = completion_id = None
        if save:
            chat_id, completion_id = await _record(client, user_prompt, job)
    state.watch_research(job.job_id, client)  # its resource's subscribers hear of each step
    output = ResearchJob(
        job_id=job.job_id,
        status=job.status,
        created_at=job.created_at,
        updated_at=job.updated_at,
        chat_id=chat_id,
        completion_id=completion_id,
    )
    return reply(
        output,
        f"Deep research job {job.job_id} is {job.status}. Follow it with deep_research_status "
        f'(job_id "{job.job_id}", wait_seconds up to 50).',
    )


async def _record(
    client: ApexClient, question: str, job: m.SubmitDeepResearcherJobResponse
) -> tuple[str | None, str | None]:
    """A stored chat for the job, its completion carrying the deep-researcher entry."""
    created = await client.create_chat_and_completion(
        m.CreateChatAndCompletionRequest(
            user_prompt=question, chat_type="apex", completion_type="chain-of-thought"
        )
    )
    if created.parsed_completion is None or created.parsed_chat is None:
        return None, None
    entry = {"createdAt": job.created_at, "jobId": job.job_id, "status": job.status}
    await client.update_completion_attributes(
        m.UpdateCompletionAttributesRequest(
            completion_id=created.parsed_completion.id, metadata={"deep-researcher": entry}
        )
    )
    return created.parsed_chat.id, created.parsed_completion.id


@tool("research", "Follow a deep research job", read_only=True, idempotent=True)
async def deep_research_status(
    ctx: Context[AppState],
    job_id: Annotated[str, Field(min_length=1)],
    last_seq_id: Annotated[
        int, Field(ge=0, description="the next_seq_id of the previous call; 0 at first")
    ] = 0,
    wait_seconds: Annotated[
        float,
        Field(ge=0, le=MAX_WAIT, description="wait up to this long for news before answering"),
    ] = 0,
) -> Annotated[CallToolResult, ResearchStatus]:
    """The job's status and the chunks after last_seq_id. With wait_seconds, returns as soon
    as there is something new (or the job ends). Once completed: the report and its sources."""
    state = app_state(ctx)
    deadline = anyio.current_time() + wait_seconds
    with apex_errors():
        client = await apex(ctx)
        while True:
            job = await client.get_deep_researcher_job(m.GetDeepResearcherJobRequest(job_id=job_id))
            new = [c for c in job.result if c.seq_id > last_seq_id]
            left = deadline - anyio.current_time()
            if new or job.status in FINISHED or left <= 0:
                break
            await ctx.report_progress(
                wait_seconds - left, wait_seconds, f"job {job.status}; waiting for news"
            )
            await anyio.sleep(min(state.research_poll_seconds, left))
    if job.status in FINISHED:
        await sync_research_entry(client, job)
    if new:
        await state.notify_research(job_id)
    output = status_of(job, new, last_seq_id)
    return reply(output, status_text(output))


def status_of(
    job: m.GetDeepResearcherJobResponse, new: list[m.DeepResearcherResultChunk], last_seq_id: int
) -> ResearchStatus:
    report = job.report
    return ResearchStatus(
        job_id=job.job_id,
        status=job.status,
        updated_at=job.updated_at,
        chunks=[c.text for c in new],
        next_seq_id=max([last_seq_id, *(c.seq_id for c in new)]),
        report=report,
        sources=list(dict.fromkeys(URL.findall(report))) if report else [],
        error=job.error or None,
    )


def status_text(status: ResearchStatus) -> str:
    if status.report is not None:
        return status.report
    head = f"Job {status.job_id}: {status.status}"
    if status.error:
        head += f": {status.error}"
    if status.status not in FINISHED:
        head += f". Next call: last_seq_id {status.next_seq_id}"
    return "\n\n".join([head + ".", *status.chunks])


async def sync_research_entry(client: ApexClient, job: m.GetDeepResearcherJobResponse) -> None:
    """Bring the deep-researcher entry of the job's stored completions up to date, for
    backends that do not do it themselves. Best effort: the status itself is the answer."""
    try:
        await _sync_research_entry(client, job)
    except ApexError as error:
        log.info("could not update the stored entry of job %s: %s", job.job_id, error)


async def _sync_research_entry(client: ApexClient, job: m.GetDeepResearcherJobResponse) -> None:
    listed = await client.get_completions_with_deep_researcher_entry(m.Empty())
    for completion in listed.completions:
        meta = dict(completion.metadata or {})
        entry = meta.get("deep-researcher")
        if not isinstance(entry, dict) or entry.get("jobId") != job.job_id:
            continue
        if entry.get("status") == job.status:
            continue
        meta["deep-researcher"] = {**entry, "status": job.status}
        report = job.report
        await client.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=completion.id,
                metadata=meta,
                completion_text=report if report and not completion.completion_text else None,
            )
        )


@tool(
    "research",
    "Cancel a deep research job",
    read_only=False,
    destructive=True,
    idempotent=True,
    local_only=True,
)
async def deep_research_cancel(
    ctx: Context[AppState], job_id: Annotated[str, Field(min_length=1)]
) -> Annotated[CallToolResult, ResearchJob]:
    """Stop a running or pending deep research job; what it wrote so far is kept."""
    with apex_errors():
        cancel = getattr(await apex(ctx), "cancel_deep_researcher_job", None)
        if cancel is None:
            raise ToolError("this Apex backend cannot cancel jobs")
        job = await cancel(job_id)
    output = ResearchJob(
        job_id=job.job_id, status=job.status, created_at=job.created_at, updated_at=job.updated_at
    )
    return reply(output, f"Job {job.job_id} is {job.status}.")


@tool("research", "List deep research chats", read_only=True, idempotent=True)
async def list_research(
    ctx: Context[AppState],
    cursor: str | None = None,
    limit: Annotated[int, Field(ge=1, le=100)] = 20,
) -> Annotated[CallToolResult, CompletionList]:
    """The stored completions that hold a deep research job, with its job id and status."""
    with apex_errors():
        client = await apex(ctx)
        listed = await client.get_completions_with_deep_researcher_entry(m.Empty())
        items, next_cursor = page(listed.completions, cursor, limit)
    output = CompletionList(completions=[Completion.of(c) for c in items], next_cursor=next_cursor)
    lines = []
    for c in output.completions:
        entry = c.metadata.get("deep-researcher") or {}
        lines.append(
            f"- {c.user_prompt_text[:80]!r}: job {entry.get('jobId')} {entry.get('status')}"
            f" (chat {c.chat_id})"
        )
    more = f"\n(more: cursor {next_cursor})" if next_cursor else ""
    return reply(output, ("\n".join(lines) or "No deep research yet.") + more)


def report_markdown(job: m.GetDeepResearcherJobResponse) -> str:
    """The job as a document: its report once completed, else what it has written so far."""
    head = f"<!-- deep research job {job.job_id}: {job.status} -->"
    if job.report is not None:
        return f"{head}\n\n{job.report}\n"
    body = "".join(c.text for c in job.result) or "_nothing written yet_"
    error = f"\n\n**Failed:** {job.error}" if job.error else ""
    return f"{head}\n\n{body}{error}\n"
