"""The ``chat`` tool: a conversation with an open model, saved as a stored chat."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from ...apex import models as m
from ..conversation import Turn, converse
from ..outputs import ChatAnswer
from ..state import AppState
from . import apex, apex_errors, reply, tool


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


@tool("chat", "Chat with an open LLM", read_only=False, open_world=True)
async def chat(
    ctx: Context[AppState],
    user_prompt: Annotated[str | None, Field(description="what to ask")] = None,
    messages: Annotated[
        list[Message] | None,
        Field(description="a conversation to answer, instead of user_prompt"),
    ] = None,
    chat_id: Annotated[str | None, Field(description="a stored chat to continue")] = None,
    system_prompt: str | None = None,
    model: Annotated[
        str | None, Field(description='a model name; empty or "Default" for the default')
    ] = None,
    inference_mode: Annotated[
        Literal["Reasoning-Fast", "Chain-of-Thought", "Mixture-of-Agents"] | None,
        Field(description="Mixture-of-Agents: several models answer, one synthesizes"),
    ] = None,
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None,
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None,
    top_k: Annotated[int | None, Field(ge=1)] = None,
    max_new_tokens: Annotated[int | None, Field(ge=1, le=65536)] = None,
    seed: Annotated[int | None, Field(ge=0)] = None,
    json_format: Annotated[bool, Field(description="ask for a JSON answer")] = False,
    save: Annotated[bool, Field(description="store the turn in a chat")] = True,
) -> Annotated[CallToolResult, ChatAnswer]:
    """Ask an open LLM. With save (the default) the turn is stored in a new chat, or in
    chat_id, whose earlier turns are sent as history."""
    if bool(user_prompt) == bool(messages):
        raise ToolError("give either user_prompt or messages (not both)")
    turn_messages = (
        [m.ChatMessage(role=msg.role, content=msg.content) for msg in messages]
        if messages
        else [m.ChatMessage(role="user", content=user_prompt or "")]
    )
    sampling = None
    if any(v is not None for v in (temperature, top_p, top_k, max_new_tokens)):
        # The Apex SDK's chat defaults, for whatever the caller leaves out.
        sampling = m.SamplingParameters(
            temperature=0.7 if temperature is None else temperature,
            top_p=0.95 if top_p is None else top_p,
            top_k=top_k,
            max_new_tokens=max_new_tokens or 4096,
            do_sample=True,
        )
    turn = Turn(
        messages=turn_messages,
        chat_id=chat_id,
        system_prompt=system_prompt,
        model=model,
        inference_mode=inference_mode,
        sampling=sampling,
        seed=seed,
        json_format=json_format or None,
        save=save,
    )

    async def progress(received: int, message: str) -> None:
        await ctx.report_progress(received, None, message)

    with apex_errors():
        client = await apex(ctx)
        answer = await converse(client, turn, progress)
    output = ChatAnswer(
        answer=answer.text,
        model=answer.model,
        miner=answer.miner,
        finish_reason=answer.finish_reason,
        chat_id=answer.chat_id,
        completion_id=answer.completion_id,
    )
    footer = f"\n\n— {answer.model or 'model'}"
    if answer.chat_id:
        footer += f" · chat_id {answer.chat_id}"
    return reply(output, answer.text + footer)
