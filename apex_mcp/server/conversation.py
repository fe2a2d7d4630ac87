"""The use cases behind the tools, resources and prompts, written once.

Chat with history (load a stored chat, record the turn, stream the answer, save it); list,
search and read stored chats; start a deep research job and keep its stored completion's entry
in step with it. All of it through the ApexClient, so it works the same on the embedded engine
and on any Apex server: the stored chat is the conversation's memory. Where the backend has a
capability beyond apex.v1 (``PagesChats``, ``RecordsChats``), the use case takes it: the same
answer for a page's cost instead of a whole listing's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

import anyio

from ..apex import models as m
from ..apex.client import (
    ApexClient,
    CancelsResearch,
    FiltersResearch,
    PagesChats,
    RecordsChats,
    research_news,
)
from ..apex.errors import ApexError, Code
from .outputs import Chat, Completion, page
from .state import FINISHED
from .views import job_state

log = logging.getLogger(__name__)

Progress = Callable[[int, str], Awaitable[None]]

CANCELLED = "cancelled before the answer was complete"
RECORD_SECONDS = 3.0  # to record a cancelled turn, shielded: it must not hold up a shutdown

COMPLETION_TYPE_OF_MODE = {
    "reasoning-fast": "reasoning",
    "chain-of-thought": "chain-of-thought",
    "mixture-of-agents": "combined",
    "mixture": "combined",
}


@dataclass
class Turn:
    """What the user asked for in one chat call."""

    messages: list[m.ChatMessage]  # the new messages (normally one user prompt)
    chat_id: str | None = None
    system_prompt: str | None = None
    model: str | None = None
    inference_mode: str | None = None
    sampling: m.SamplingParameters | None = None
    seed: int | None = None
    json_format: bool | None = None
    save: bool = True
    title: str | None = None


@dataclass
class Answer:
    text: str
    model: str
    miner: str
    finish_reason: str
    chat_id: str | None
    completion_id: str | None


async def history(client: ApexClient, chat_id: str) -> list[m.ChatMessage]:
    """The stored chat as messages: each answered turn's prompt and answer, oldest first."""
    stored = await client.get_stored_chat_completions(
        m.GetStoredChatCompletionsRequest(chat_id=chat_id)
    )
    messages: list[m.ChatMessage] = []
    for completion in stored.chat_completions:
        if not completion.completion_text:
            continue  # a turn that failed or is still being written
        messages.append(m.ChatMessage(role="user", content=completion.user_prompt_text))
        messages.append(m.ChatMessage(role="assistant", content=completion.completion_text))
    return messages


async def converse(client: ApexClient, turn: Turn, progress: Progress | None = None) -> Answer:
    """Run one turn: history in, completion recorded, answer streamed and saved."""
    past = await history(client, turn.chat_id) if turn.chat_id else []
    prompt = "\n\n".join(msg.content for msg in turn.messages if msg.role == "user")
    completion_type = COMPLETION_TYPE_OF_MODE.get((turn.inference_mode or "").lower(), "basic")

    chat_id, completion_id = turn.chat_id, None
    if turn.save and turn.chat_id:
        created = await client.create_completion(
            m.CreateCompletionRequest(
                chat_id=turn.chat_id, user_prompt=prompt, completion_type=completion_type
            )
        )
        completion_id = created.parsed_completion.id if created.parsed_completion else None
    elif turn.save:
        new = await client.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(
                user_prompt=prompt,
                chat_type="apex",
                completion_type=completion_type,
                title=turn.title,
            )
        )
        chat_id = new.parsed_chat.id if new.parsed_chat else None
        completion_id = new.parsed_completion.id if new.parsed_completion else None

    system = (
        [m.ChatMessage(role="system", content=turn.system_prompt)] if turn.system_prompt else []
    )
    request = m.ChatCompletionRequest(
        messages=[*system, *past, *turn.messages],
        model=turn.model,
        inference_mode=turn.inference_mode,
        sampling_parameters=turn.sampling,
        seed=turn.seed,
        json_format=turn.json_format,
        stream=True,
    )
    # A turn that fails stays on record, never half-answered: with its error, for the
    # transcripts (get_chat, the chat resource) to show where the answer would be.
    try:
        answer = await _stream(client, request, progress)
    except ApexError as error:
        await _record_failure(client, completion_id, error.explain())
        raise
    except anyio.get_cancelled_exc_class():
        with anyio.move_on_after(RECORD_SECONDS, shield=True):
            await _record_failure(client, completion_id, CANCELLED)
        raise
    except Exception as error:
        await _record_failure(client, completion_id, f"internal error ({type(error).__name__})")
        raise
    if completion_id:
        await client.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=completion_id,
                completion_text=answer.text,
                metadata={
                    "model": answer.model,
                    "miner": answer.miner,
                    "finishReason": answer.finish_reason,
                },
            )
        )
    answer.chat_id, answer.completion_id = chat_id, completion_id
    return answer


async def _record_failure(client: ApexClient, completion_id: str | None, error: str) -> None:
    """Put the turn's failure in its completion's metadata (``error``); best effort: the
    failure itself is what the caller must hear of."""
    if not completion_id:
        return
    try:
        await client.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=completion_id, metadata={"error": error}
            )
        )
    except ApexError as also:
        log.warning("could not record the failure of completion %s: %s", completion_id, also)


async def _stream(
    client: ApexClient, request: m.ChatCompletionRequest, progress: Progress | None
) -> Answer:
    parts: list[str] = []
    model = miner = finish = ""
    received = 0
    async with aclosing(client.chat_completion_stream(request)) as chunks:  # type: ignore[type-var]
        async for chunk in chunks:
            model = chunk.model or model
            miner = chunk.system_fingerprint or miner
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    parts.append(choice.delta.content)
                    received += len(choice.delta.content)
                finish = choice.finish_reason or finish
            if progress is not None and chunk.choices:
                await progress(received, f"{received} characters from {model or 'the model'}")
    return Answer("".join(parts), model, miner, finish, None, None)


# --- stored chats ---------------------------------------------------------------------------


async def chat_sessions(client: ApexClient, chat_type: str | None = None) -> list[m.ChatSession]:
    """Every chat of the user, newest first."""
    listed = await client.get_chat_sessions(m.GetChatSessionsRequest(chat_type=chat_type or ""))
    return listed.chat_sessions


async def chats_page(
    client: ApexClient, chat_type: str | None, cursor: str | None, limit: int
) -> m.ChatPage:
    """A page of the user's chats, newest first, after ``cursor`` (a previous page's
    ``next_cursor``). An Apex server lists them all, and the page is cut from that list."""
    if isinstance(client, PagesChats):
        return await client.list_chats_page(chat_type=chat_type, cursor=cursor, limit=limit)
    chats, next_cursor = page(await chat_sessions(client, chat_type), cursor, limit)
    return m.ChatPage(chats, next_cursor)


async def search_page(
    client: ApexClient, search_term: str, cursor: str | None, limit: int
) -> m.ChatPage:
    """A page of the chats whose prompts or answers hold the words of ``search_term``, with
    their titles. In the order the backend finds them: an Apex server gives ids only, most
    recently updated first, and the titles come from its whole listing."""
    if isinstance(client, PagesChats):
        return await client.search_chats_page(search_term, cursor=cursor, limit=limit)
    found = await client.search_chat_ids_by_prompt_and_completion_text(
        m.SearchChatIdsByPromptAndCompletionTextRequest(search_term=search_term)
    )
    ids, next_cursor = page(found.chat_ids, cursor, limit)
    by_id = {c.id: c for c in await chat_sessions(client)} if ids else {}
    return m.ChatPage([by_id.get(i) or m.ChatSession(id=i) for i in ids], next_cursor)


async def find_chat(client: ApexClient, chat_id: str) -> m.ChatSession:
    """A chat by id. apex.v1 has no GetChat: without ``PagesChats``, look it up in the
    user's list."""
    if isinstance(client, PagesChats):
        return await client.get_chat(chat_id)
    for chat in await chat_sessions(client):
        if chat.id == chat_id:
            return chat
    # Let the backend judge the id (a malformed one is invalid_argument, not not_found).
    await client.get_stored_chat_completions(m.GetStoredChatCompletionsRequest(chat_id=chat_id))
    raise ApexError(Code.NOT_FOUND, f"no chat {chat_id}")


@dataclass
class StoredChat:
    chat: Chat
    completions: list[Completion]  # oldest first


async def read_chat(client: ApexClient, chat_id: str) -> StoredChat:
    """A stored chat and all its completions."""
    chat = await find_chat(client, chat_id)
    stored = await client.get_stored_chat_completions(
        m.GetStoredChatCompletionsRequest(chat_id=chat_id)
    )
    return StoredChat(Chat.of(chat), [Completion.of(c) for c in stored.chat_completions])


async def read_completion(client: ApexClient, completion_id: str) -> Completion:
    got = await client.get_chat_completion(m.GetChatCompletionRequest(completion_id=completion_id))
    return Completion.of(got)


async def research_states(client: ApexClient, completions: list[Completion]) -> dict[str, str]:
    """For each completion without an answer that holds a research job: the job as it is now,
    in words (how far it got, or why it failed). A job that cannot be read is left out: its
    completion's entry says what it can."""
    states: dict[str, str] = {}
    for c in completions:
        entry = m.ResearchEntry.from_metadata(c.metadata)
        if c.completion_text or entry is None:
            continue
        try:
            job = await client.get_deep_researcher_job(
                m.GetDeepResearcherJobRequest(job_id=entry.job_id)
            )
        except ApexError:
            continue
        states[c.id] = job_state(job)
    return states


# --- deep research --------------------------------------------------------------------------


@dataclass
class StartedResearch:
    job: m.SubmitDeepResearcherJobResponse
    chat_id: str | None = None  # of the stored chat keeping the report, when saved
    completion_id: str | None = None


async def start_research(
    client: ApexClient,
    request: m.ChatCompletionRequest,
    question: str,
    *,
    save: bool,
    filters: m.SearchFilters | None = None,
) -> StartedResearch:
    """Submit a research job; with ``save``, a stored chat for it whose completion carries the
    job's entry (``ResearchEntry``), for the report to land in. ``filters`` bound every search
    of the job; only a service that applies them takes them (never silently dropped)."""
    if filters and isinstance(client, FiltersResearch):
        job = await client.submit_deep_researcher_job_filtered(request, filters)
    elif filters:
        raise ApexError(
            Code.INVALID_ARGUMENT,
            "include_domains, exclude_domains and recency for deep research need the embedded "
            "engine: an Apex server cannot apply them (leave them out)",
        )
    else:
        job = await client.submit_deep_researcher_job(request)
    started = StartedResearch(job)
    if not save:
        return started
    chat = m.CreateChatAndCompletionRequest(
        user_prompt=question, chat_type="apex", completion_type="chain-of-thought"
    )
    entry = m.ResearchEntry(job.job_id, job.status, job.created_at).to_metadata()
    # One write where the backend can; else the entry goes in as the completion's first edit.
    if isinstance(client, RecordsChats):
        created, recorded = await client.create_chat_with_metadata(chat, entry), True
    else:
        created, recorded = await client.create_chat_and_completion(chat), False
    if created.parsed_completion is None or created.parsed_chat is None:
        return started
    if not recorded:
        await client.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=created.parsed_completion.id, metadata=entry
            )
        )
    started.chat_id, started.completion_id = created.parsed_chat.id, created.parsed_completion.id
    return started


Waiting = Callable[[float, str], Awaitable[None]]  # seconds waited so far, the job's status


async def follow_research(
    client: ApexClient,
    job_id: str,
    *,
    after_seq: int,
    wait_seconds: float,
    poll_seconds: float,
    waiting: Waiting | None = None,
) -> tuple[m.GetDeepResearcherJobResponse, list[m.DeepResearcherResultChunk]]:
    """The job and its chunks after ``after_seq``, as soon as there are some, the job ends, or
    ``wait_seconds`` pass (``waiting`` hears of each wait). A job that ended has its stored
    entry brought in step."""
    deadline = anyio.current_time() + wait_seconds
    while True:
        async with research_news(client, job_id) as news:
            request = m.GetDeepResearcherJobRequest(job_id=job_id)
            job = await client.get_deep_researcher_job(request)
            new = [c for c in job.result if c.seq_id > after_seq]
            left = deadline - anyio.current_time()
            if new or job.status in FINISHED or left <= 0:
                break
            if waiting is not None:
                await waiting(wait_seconds - left, job.status)
            with anyio.move_on_after(left):
                await news(poll_seconds)
    if job.status in FINISHED:
        await sync_research_entry(client, job)
    return job, new


async def research_completions(client: ApexClient) -> list[Completion]:
    """The stored completions holding a research job's entry, newest first."""
    listed = await client.get_completions_with_deep_researcher_entry(m.Empty())
    return [Completion.of(c) for c in listed.completions]


async def research_job_ids(client: ApexClient) -> list[str]:
    entries = [
        m.ResearchEntry.from_metadata(c.metadata) for c in await research_completions(client)
    ]
    return [entry.job_id for entry in entries if entry is not None]


async def sync_research_entry(client: ApexClient, job: m.GetDeepResearcherJobResponse) -> None:
    """Bring the research entry of the job's stored completions up to date (and give them its
    report), for backends that do not do it themselves. Best effort: the job's status itself is
    the answer."""
    try:
        await _sync_research_entry(client, job)
    except ApexError as error:
        log.info("could not update the stored entry of job %s: %s", job.job_id, error)


async def _sync_research_entry(client: ApexClient, job: m.GetDeepResearcherJobResponse) -> None:
    for completion in await research_completions(client):
        entry = m.ResearchEntry.from_metadata(completion.metadata)
        if entry is None or entry.job_id != job.job_id or entry.status == job.status:
            continue
        report = job.report
        await client.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=completion.id,
                metadata=entry.with_status(job.status).to_metadata(completion.metadata),
                completion_text=report if report and not completion.completion_text else None,
            )
        )


async def cancel_research(client: ApexClient, job_id: str) -> m.GetDeepResearcherJobResponse:
    """Stop a job, on a backend that can (the server offers the tool only on such a backend;
    a hosted session may still have chosen one that cannot)."""
    if not isinstance(client, CancelsResearch):
        raise ApexError(
            Code.UNIMPLEMENTED,
            "this Apex backend cannot cancel jobs",
            hint="the embedded engine can; an Apex server offers no way to",
        )
    return await client.cancel_deep_researcher_job(job_id)
