"""Rendering, for people and models alike: transcripts, reports, status lines, listings.

The text blocks beside the tools' structured output and the markdown of the resources and
prompts are written here, once, from the typed outputs and models.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..apex import models as m
from .outputs import Chat, Completion, ResearchStatus
from .state import FINISHED

TRANSCRIPT_CHARS = 200_000


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def one_line(text: str) -> str:
    return clip(" ".join(text.split()), 1000)


# --- chats ----------------------------------------------------------------------------------


def chat_lines(chats: list[Chat], next_cursor: str | None) -> str:
    lines = [f"- {c.title or '(untitled)'} · {c.chat_type} · chat_id {c.id}" for c in chats]
    if next_cursor:
        lines.append(f"(more: cursor {next_cursor})")
    return "\n".join(lines)


def chats_index(chats: list[m.ChatSession], *, more: bool = False) -> str:
    """The stored chats as a markdown list of links to their resources; ``more``: older chats
    are left out."""
    lines = [f"- [{c.title or 'Untitled'}](apex://chats/{c.id}) · {c.chat_type}" for c in chats]
    if more:
        lines.append(
            f"\n_The newest {len(chats)} are shown: the list_chats tool pages through all._"
        )
    return "# Stored chats\n\n" + ("\n".join(lines) or "_none yet_") + "\n"


def completion_markdown(c: Completion, state: str | None = None) -> str:
    """A prompt and its answer; without an answer, why not: the turn's failure, or its research
    job's state (``state``, the job as it is now, when known; else what the entry says)."""
    answer = c.completion_text or state or stored_state(c)
    return f"**User:** {c.user_prompt_text}\n\n**Assistant:** {answer}"


def transcript(
    chat: Chat,
    completions: list[Completion],
    next_cursor: str | None = None,
    states: Mapping[str, str] | None = None,
) -> str:
    """A chat as markdown; ``states`` holds, by completion id, its research job's state
    (``conversation.research_states``)."""
    parts = [f"# {chat.title or 'Untitled chat'}", f"chat_id {chat.id} · {chat.chat_type}"]
    parts += [completion_markdown(c, (states or {}).get(c.id)) for c in completions]
    if next_cursor:
        parts.append(f"(more: cursor {next_cursor})")
    return clip("\n\n".join(parts), TRANSCRIPT_CHARS)


def stored_state(c: Completion) -> str:
    """What a completion without an answer records of why: the failure of its chat turn (see
    conversation.py), or the status of its research job as last synced."""
    error = c.metadata.get("error")
    if isinstance(error, str) and error:
        return f"_(failed)_ {one_line(error)}"
    entry = m.ResearchEntry.from_metadata(c.metadata)
    if entry is not None:
        status = entry.status or "pending"
        return f"_(research {status})_ job {entry.job_id}: follow it with deep_research_status"
    return "_(no answer yet)_"


# --- research -------------------------------------------------------------------------------


def job_state(job: m.GetDeepResearcherJobResponse) -> str:
    """A research job without its report, in one line: ``_(research running)_ step 3:
    Searching: ...``, ``_(research failed)_ <why>``..."""
    head = f"_(research {job.status or 'pending'})_"
    if job.status == "failed" and job.error:
        return f"{head} {one_line(job.error)}"
    if job.report is not None:  # completed; its completion not synced yet
        return job.report
    # The steps of a job are its headed chunks ("## Searching: ...", "### Reading: ...").
    steps = [c.text.strip() for c in job.result if c.text.lstrip().startswith("#")]
    if steps:
        return f"{head} step {len(steps)}: {one_line(steps[-1].lstrip('# '))}"
    if job.result:
        return f"{head} {len(job.result)} chunk(s) written"
    return head


def report_markdown(job: m.GetDeepResearcherJobResponse) -> str:
    """The job as a document: its report once completed, else what it has written so far."""
    head = f"<!-- deep research job {job.job_id}: {job.status} -->"
    if job.report is not None:
        return f"{head}\n\n{job.report}\n"
    body = "".join(c.text for c in job.result) or "_nothing written yet_"
    error = f"\n\n**Failed:** {job.error}" if job.error else ""
    return f"{head}\n\n{body}{error}\n"


def status_text(status: ResearchStatus) -> str:
    if status.report is not None:
        return status.report
    head = f"Job {status.job_id}: {status.status}"
    if status.error:
        head += f": {status.error}"
    if status.status not in FINISHED:
        head += f". Next call: last_seq_id {status.next_seq_id}"
    return "\n\n".join([head + ".", *status.chunks])


def research_lines(completions: list[Completion], next_cursor: str | None) -> str:
    """The completions holding research jobs, one line each."""
    lines = []
    for c in completions:
        entry = m.ResearchEntry.from_metadata(c.metadata)
        job = f"job {entry.job_id} {entry.status or None}" if entry else "no job"
        lines.append(f"- {c.user_prompt_text[:80]!r}: {job} (chat {c.chat_id})")
    more = f"\n(more: cursor {next_cursor})" if next_cursor else ""
    return ("\n".join(lines) or "No deep research yet.") + more
