"""Chat with history: load a stored chat, record the turn, stream the answer, save it.

All of it through the ApexClient, so it works the same on the embedded engine and on any Apex
server: the stored chat is the conversation's memory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

import anyio

from ..apex import models as m
from ..apex.client import ApexClient
from ..apex.errors import ApexError

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
