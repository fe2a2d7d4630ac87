"""Deep research: start a job, follow it (waiting for news, not polling blindly), cancel it."""

from __future__ import annotations

import re
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from ...apex import models as m
from ...apex.client import CancelsResearch
from ...apex.models import Recency
from ..conversation import cancel_research, follow_research, research_completions, start_research
from ..outputs import CompletionList, ResearchJob, ResearchStatus, page
from ..state import AppState
from ..views import research_lines, status_text
from . import apex, apex_errors, app_state, reply, tool

MAX_WAIT = 50.0  # hosts commonly cut a tool call at 60 s
MAX_DOMAINS = 50  # per list, as web_search
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
    include_domains: list[str] | None = None,  # as web_search's (their bound is checked here)
    exclude_domains: list[str] | None = None,
    recency: Recency | None = None,
) -> Annotated[CallToolResult, ResearchJob]:
    """Start a deep research job; returns its job_id at once. It searches the web, reads
    sources and writes a cited report: follow it with deep_research_status."""
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
    for name, domains in (
        ("include_domains", include_domains),
        ("exclude_domains", exclude_domains),
    ):
        if domains and len(domains) > MAX_DOMAINS:
            raise ToolError(f"{name} has {len(domains)} domains: give at most {MAX_DOMAINS}")
    try:
        filters = m.SearchFilters.of(include_domains, exclude_domains, recency)
    except ValueError as e:
        raise ToolError(str(e)) from None
    with apex_errors():
        client = await apex(ctx)
        started = await start_research(client, request, user_prompt, save=save, filters=filters)
    job = started.job
    state.watch_research(job.job_id, client)  # its resource's subscribers hear of each step
    output = ResearchJob(
        job_id=job.job_id,
        status=job.status,
        created_at=job.created_at,
        updated_at=job.updated_at,
        chat_id=started.chat_id,
        completion_id=started.completion_id,
    )
    return reply(
        output,
        f"Deep research job {job.job_id} is {job.status}. Follow it with deep_research_status "
        f'(job_id "{job.job_id}", wait_seconds up to 50).',
    )


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

    async def waiting(waited: float, status: str) -> None:
        await ctx.report_progress(waited, wait_seconds, f"job {status}; waiting for news")

    with apex_errors():
        client = await apex(ctx)
        job, new = await follow_research(
            client,
            job_id,
            after_seq=last_seq_id,
            wait_seconds=wait_seconds,
            poll_seconds=state.research_poll_seconds,
            waiting=waiting,
        )
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


@tool(
    "research",
    "Cancel a deep research job",
    read_only=False,
    destructive=True,
    idempotent=True,
    needs=CancelsResearch,
)
async def deep_research_cancel(
    ctx: Context[AppState], job_id: Annotated[str, Field(min_length=1)]
) -> Annotated[CallToolResult, ResearchJob]:
    """Stop a running or pending deep research job; what it wrote so far is kept."""
    with apex_errors():
        job = await cancel_research(await apex(ctx), job_id)
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
        items, next_cursor = page(await research_completions(client), cursor, limit)
    output = CompletionList(completions=items, next_cursor=next_cursor)
    return reply(output, research_lines(output.completions, next_cursor))
