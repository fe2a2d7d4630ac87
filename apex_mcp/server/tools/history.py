"""Stored chats and completions: create, list, read, update, delete, search."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from ...apex import models as m
from ..conversation import chats_page, read_chat, read_completion, research_states, search_page
from ..outputs import (
    Chat,
    ChatList,
    ChatWithCompletions,
    Completion,
    CreatedChat,
    Deleted,
    page,
)
from ..state import AppState
from ..views import chat_lines, completion_markdown, transcript
from . import apex, apex_errors, reply, tool

ChatType = Literal["apex", "gravity"]
CompletionType = Literal["basic", "combined", "web-search", "chain-of-thought", "reasoning"]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page")]
Limit = Annotated[int, Field(ge=1, le=100)]
Ids = Annotated[list[str], Field(min_length=1, max_length=1000)]


def _kept(text: str) -> str:
    # A strict-mode caller must send every field: null, not "", leaves one as it is.
    if not text.strip():
        raise ValueError("must not be empty (null keeps it as it is)")
    return text


def _json_object(value: Any) -> Any:
    """A JSON object, sent as such or as a string (strict function calling cannot describe
    a free-form object, so the schema says string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"must be a JSON object (not valid JSON: {error.msg})") from None
        except RecursionError:
            raise ValueError("must be a JSON object (this one is nested too deeply)") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    if not value:
        raise ValueError("must not be empty (null keeps it as it is)")
    return value


Kept = Annotated[str, AfterValidator(_kept)]
JsonObject = Annotated[
    dict[str, Any],
    BeforeValidator(_json_object),
    WithJsonSchema(
        {"type": "string", "description": "a JSON object, as a string; replaces the stored one"}
    ),
]


@tool("history", "Create a stored chat", read_only=False)
async def create_chat(
    ctx: Context[AppState],
    user_prompt: Annotated[str, Field(min_length=1)],
    chat_type: ChatType = "apex",
    completion_type: CompletionType = "basic",
    title: str | None = None,
) -> Annotated[CallToolResult, CreatedChat]:
    """Create a chat and its first completion (with empty completion_text, to fill in with
    update_completion). The chat tool does this for you when it saves a conversation."""
    with apex_errors():
        client = await apex(ctx)
        created = await client.create_chat_and_completion(
            m.CreateChatAndCompletionRequest(
                user_prompt=user_prompt,
                chat_type=chat_type,
                completion_type=completion_type,
                title=title,
            )
        )
    if created.parsed_chat is None or created.parsed_completion is None:
        raise ToolError("the Apex server answered without the new chat")
    output = CreatedChat(
        chat=Chat.of(created.parsed_chat), completion=Completion.of(created.parsed_completion)
    )
    return reply(
        output,
        f"Created chat {output.chat.id} ({output.chat.title!r}) "
        f"with completion {output.completion.id}.",
    )


@tool("history", "List stored chats", read_only=True, idempotent=True)
async def list_chats(
    ctx: Context[AppState],
    chat_type: ChatType | None = None,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Annotated[CallToolResult, ChatList]:
    """The stored chats, newest first, a page at a time."""
    with apex_errors():
        client = await apex(ctx)
        found = await chats_page(client, chat_type, cursor, limit)
    output = ChatList(chats=[Chat.of(c) for c in found.chats], next_cursor=found.next_cursor)
    return reply(output, chat_lines(output.chats, found.next_cursor) or "No stored chats.")


@tool("history", "Read a stored chat", read_only=True, idempotent=True)
async def get_chat(
    ctx: Context[AppState],
    chat_id: Annotated[str, Field(min_length=1)],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Annotated[CallToolResult, ChatWithCompletions]:
    """A stored chat and its completions (prompts and answers), oldest first."""
    with apex_errors():
        client = await apex(ctx)
        stored = await read_chat(client, chat_id)
        items, next_cursor = page(stored.completions, cursor, limit)
    output = ChatWithCompletions(chat=stored.chat, completions=items, next_cursor=next_cursor)
    states = await research_states(client, output.completions)
    return reply(output, transcript(output.chat, output.completions, next_cursor, states))


@tool("history", "Rename or retype a chat", read_only=False, destructive=True, idempotent=True)
async def update_chat(
    ctx: Context[AppState],
    chat_id: Annotated[str, Field(min_length=1)],
    title: Annotated[str, Field(max_length=200), AfterValidator(_kept)] | None = None,
    chat_type: ChatType | None = None,
) -> Annotated[CallToolResult, Chat]:
    """Change a chat's title and/or chat_type (the only attributes that can change). null
    keeps a field as it is; an empty title is refused."""
    attributes = {k: v for k, v in (("title", title), ("chat_type", chat_type)) if v is not None}
    if not attributes:
        raise ToolError("give a title or a chat_type to change")
    with apex_errors():
        client = await apex(ctx)
        updated = await client.update_chat_attributes(
            m.UpdateChatAttributesRequest(chat_id=chat_id, attributes=attributes)
        )
    if updated.chat is None:
        raise ToolError("the Apex server answered without the chat")
    output = Chat.of(updated.chat)
    return reply(output, f"Chat {output.id} is now {output.title!r} ({output.chat_type}).")


@tool("history", "Delete stored chats", read_only=False, destructive=True, idempotent=True)
async def delete_chats(ctx: Context[AppState], chat_ids: Ids) -> Annotated[CallToolResult, Deleted]:
    """Delete chats and all their completions. This cannot be undone."""
    with apex_errors():
        client = await apex(ctx)
        done = await client.delete_chats(m.DeleteChatsRequest(chat_ids=chat_ids))
    output = Deleted(success=done.success, deleted=chat_ids if done.success else [])
    return reply(output, f"Deleted {len(output.deleted)} chat(s).")


@tool("history", "Search stored chats", read_only=True, idempotent=True)
async def search_chats(
    ctx: Context[AppState],
    search_term: Annotated[str, Field(min_length=1, max_length=1000)],
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Annotated[CallToolResult, ChatList]:
    """Find chats whose prompts or answers contain the words of search_term."""
    with apex_errors():
        client = await apex(ctx)
        found = await search_page(client, search_term, cursor, limit)
    output = ChatList(chats=[Chat.of(c) for c in found.chats], next_cursor=found.next_cursor)
    text = chat_lines(output.chats, found.next_cursor) or f"No chat mentions {search_term!r}."
    return reply(output, text)


@tool("history", "Add a completion to a chat", read_only=False)
async def create_completion(
    ctx: Context[AppState],
    chat_id: Annotated[str, Field(min_length=1)],
    user_prompt: Annotated[str, Field(min_length=1)],
    completion_type: CompletionType = "basic",
) -> Annotated[CallToolResult, Completion]:
    """Append a completion (a prompt, its answer to fill in later) to a stored chat."""
    with apex_errors():
        client = await apex(ctx)
        created = await client.create_completion(
            m.CreateCompletionRequest(
                chat_id=chat_id, user_prompt=user_prompt, completion_type=completion_type
            )
        )
    if created.parsed_completion is None:
        raise ToolError("the Apex server answered without the new completion")
    output = Completion.of(created.parsed_completion)
    return reply(output, f"Added completion {output.id} to chat {output.chat_id}.")


@tool("history", "Read a completion", read_only=True, idempotent=True)
async def get_completion(
    ctx: Context[AppState], completion_id: Annotated[str, Field(min_length=1)]
) -> Annotated[CallToolResult, Completion]:
    """One stored completion: its prompt, answer and metadata."""
    with apex_errors():
        client = await apex(ctx)
        output = await read_completion(client, completion_id)
    states = await research_states(client, [output])
    return reply(output, completion_markdown(output, states.get(output.id)))


@tool("history", "Edit a completion", read_only=False, destructive=True, idempotent=True)
async def update_completion(
    ctx: Context[AppState],
    completion_id: Annotated[str, Field(min_length=1)],
    completion_text: Kept | None = None,
    user_prompt_text: Kept | None = None,
    metadata: JsonObject | None = None,
) -> Annotated[CallToolResult, Completion]:
    """Change a completion's completion_text, user_prompt_text and/or metadata. null keeps a
    field as it is; an empty value is refused."""
    if completion_text is None and user_prompt_text is None and metadata is None:
        raise ToolError("give completion_text, user_prompt_text or metadata to change")
    with apex_errors():
        client = await apex(ctx)
        updated = await client.update_completion_attributes(
            m.UpdateCompletionAttributesRequest(
                completion_id=completion_id,
                completion_text=completion_text,
                user_prompt_text=user_prompt_text,
                metadata=metadata,
            )
        )
    if updated.completion is None:
        raise ToolError("the Apex server answered without the completion")
    output = Completion.of(updated.completion)
    return reply(output, f"Updated completion {output.id}.")


@tool("history", "Delete completions", read_only=False, destructive=True, idempotent=True)
async def delete_completions(
    ctx: Context[AppState], completion_ids: Ids
) -> Annotated[CallToolResult, Deleted]:
    """Delete completions from their chats. This cannot be undone."""
    with apex_errors():
        client = await apex(ctx)
        done = await client.delete_completions(
            m.DeleteCompletionsRequest(completion_ids=completion_ids)
        )
    output = Deleted(success=done.success, deleted=completion_ids if done.success else [])
    return reply(output, f"Deleted {len(output.deleted)} completion(s).")
