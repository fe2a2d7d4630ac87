"""What the tools return: typed structured output, and the text block a person reads beside it.

These are the shapes a model sees (the tools' output schemas). They are smaller than the wire
messages on purpose: what an assistant needs, with the Apex field names.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ..apex import models as m


class Chat(BaseModel):
    id: str
    title: str
    chat_type: str
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, chat: m.ChatSession | m.ParsedChat) -> Chat:
        updated = chat.updated_at if isinstance(chat, m.ChatSession) else None
        return cls(
            id=chat.id,
            title=chat.title,
            chat_type=chat.chat_type,
            created_at=chat.created_at,
            updated_at=updated,
        )


class Completion(BaseModel):
    id: str
    chat_id: str
    completion_type: str
    user_prompt_text: str
    completion_text: str
    created_at: datetime | None = None
    completed_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, c: m.StoredChatCompletion | m.ParsedCompletion) -> Completion:
        return cls(
            id=c.id,
            chat_id=c.chat_id,
            completion_type=c.completion_type,
            user_prompt_text=c.user_prompt_text,
            completion_text=c.completion_text,
            created_at=c.created_at,
            completed_at=c.completed_at if isinstance(c, m.StoredChatCompletion) else None,
            metadata=c.metadata or {},
        )


class ChatAnswer(BaseModel):
    answer: str
    model: str = Field(description="the model that answered")
    miner: str = Field("", description="the endpoint that served it, if known")
    finish_reason: str = ""
    chat_id: str | None = Field(None, description="pass it to continue the chat")
    completion_id: str | None = None


class SearchResult(BaseModel):
    url: str
    title: str = ""
    relevant: str = Field(description="the passage of the page that best answers the query")
    content: str | None = Field(None, description="the page's main text, when asked for")


class SearchResults(BaseModel):
    search_query: str
    results: list[SearchResult]


class ResearchJob(BaseModel):
    job_id: str
    status: str
    created_at: str = ""
    updated_at: str = ""
    chat_id: str | None = None
    completion_id: str | None = None


class ResearchStatus(BaseModel):
    job_id: str
    status: str = Field(description="pending, running, completed, failed or cancelled")
    updated_at: str = ""
    chunks: list[str] = Field(description="new chunks' text, in order")
    next_seq_id: int = Field(description="pass as last_seq_id next time")
    report: str | None = Field(None, description="the final report, once completed")
    sources: list[str] = Field(default_factory=list, description="URLs the report cites")
    error: str | None = None


class ChatList(BaseModel):
    chats: list[Chat]
    next_cursor: str | None = Field(None, description="pass as cursor for the next page")


class ChatWithCompletions(BaseModel):
    chat: Chat
    completions: list[Completion]
    next_cursor: str | None = None


class CreatedChat(BaseModel):
    chat: Chat
    completion: Completion


class CompletionList(BaseModel):
    completions: list[Completion]
    next_cursor: str | None = None


class Deleted(BaseModel):
    success: bool
    deleted: list[str]


# --- pagination -----------------------------------------------------------------------------


def page(items: list[Any], cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """A page of ``items`` after ``cursor`` and the cursor of the next page (None at the end).

    The Apex API returns whole lists; the cursor is an opaque offset into them.
    """
    start = decode_cursor(cursor)
    end = start + limit
    return items[start:end], (encode_cursor(end) if end < len(items) else None)


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    from ..apex.errors import invalid_argument

    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, offset = text.partition(":")
        value = int(offset)
        if kind != "o" or value < 0:
            raise ValueError
    except ValueError:
        raise invalid_argument(
            "the cursor is not one this listing gave: pass next_cursor as it was returned, or"
            " start again from the first page, without a cursor"
        ) from None
    return value
