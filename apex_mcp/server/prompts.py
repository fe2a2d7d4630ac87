"""Prompts: ready-made starts for the things people do with apex-mcp."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from mcp import MCPError
from mcp.server.mcpserver import Context, UserMessage
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.prompts.base import Message
from mcp_types import INVALID_PARAMS, InputRequiredResult
from pydantic import Field

from ..apex.errors import ApexError
from .conversation import read_chat
from .inventory import Offer, Toolset, declare
from .state import AppState
from .views import transcript


class ArgumentsCheckedPrompt(Prompt):
    """A prompt that refuses a missing or blank required argument as invalid params, naming it
    (the SDK's own check answers an internal error)."""

    async def render(
        self, arguments: dict[str, Any] | None, context: Context[Any, Any]
    ) -> list[Message] | InputRequiredResult:
        given = arguments or {}
        for argument in self.arguments or []:
            if argument.required and not str(given.get(argument.name) or "").strip():
                raise MCPError(code=INVALID_PARAMS, message=f"{argument.name} is required")
        return await super().render(arguments, context)


def prompt(toolset: Toolset, title: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a prompt (they only read)."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        declare(
            Offer("prompt", fn.__name__, toolset),
            lambda mcp: mcp.add_prompt(ArgumentsCheckedPrompt.from_function(fn, title=title)),
        )
        return fn

    return add


@prompt("research", "Deep research")
def deep_research(
    topic: Annotated[str, Field(description="what to research")],
) -> list[UserMessage]:
    """Research a topic in depth with a cited report, using the deep research tools."""
    return [
        UserMessage(
            f"Research this topic in depth: {topic}\n\n"
            "Use the deep research tools: call deep_research_start with the topic as "
            "user_prompt, then call deep_research_status with its job_id and "
            "wait_seconds 50, passing next_seq_id back as last_seq_id each time, until the "
            "status is completed or failed. Tell me briefly what the job is doing as it "
            "goes. When it completes, give me the report with its numbered sources; if it "
            "fails, tell me why."
        )
    ]


@prompt("history", "Continue a chat")
async def continue_chat(
    ctx: Context[AppState],
    chat_id: Annotated[str, Field(description="the stored chat to continue")],
) -> list[UserMessage]:
    """Bring a stored chat's transcript into the conversation, to carry it on."""
    try:
        client = await ctx.request_context.lifespan_context.apex()
        stored = await read_chat(client, chat_id)
    except ApexError as error:
        raise MCPError(code=INVALID_PARAMS, message=error.explain()) from None
    text = transcript(stored.chat, stored.completions)
    return [
        UserMessage(
            f"Here is a stored chat. Continue it with me; to keep it stored, use the chat "
            f'tool with chat_id "{chat_id}".\n\n{text}'
        )
    ]
