"""Prompts: ready-made starts for the things people do with apex-mcp."""

from __future__ import annotations

from typing import Annotated

from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.mcpserver import Context, UserMessage
from mcp_types import INVALID_PARAMS
from pydantic import Field

from ..apex import models as m
from ..apex.errors import ApexError
from .outputs import Chat
from .outputs import Completion as CompletionOut
from .state import AppState
from .tools.history import find_chat, transcript


def register(mcp: MCPServer[AppState]) -> None:
    @mcp.prompt(title="Deep research")
    def deep_research(
        topic: Annotated[str, Field(description="what to research")] = "",
    ) -> list[UserMessage]:
        """Research a topic in depth with a cited report, using the deep research tools."""
        if not topic.strip():
            raise MCPError(code=INVALID_PARAMS, message="topic is required")
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

    @mcp.prompt(title="Continue a chat")
    async def continue_chat(
        ctx: Context[AppState],
        chat_id: Annotated[str, Field(description="the stored chat to continue")] = "",
    ) -> list[UserMessage]:
        """Bring a stored chat's transcript into the conversation, to carry it on."""
        if not chat_id.strip():
            raise MCPError(code=INVALID_PARAMS, message="chat_id is required")
        try:
            client = await ctx.request_context.lifespan_context.apex()
            chat = await find_chat(client, chat_id)
            stored = await client.get_stored_chat_completions(
                m.GetStoredChatCompletionsRequest(chat_id=chat_id)
            )
        except ApexError as error:
            raise MCPError(code=INVALID_PARAMS, message=error.explain()) from None
        text = transcript(Chat.of(chat), [CompletionOut.of(c) for c in stored.chat_completions])
        return [
            UserMessage(
                f"Here is a stored chat. Continue it with me; to keep it stored, use the chat "
                f'tool with chat_id "{chat_id}".\n\n{text}'
            )
        ]
