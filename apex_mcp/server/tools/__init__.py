"""The MCP tools, in toolsets. Each module declares its tools with ``@tool``; ``app`` picks
which to serve (``--toolsets``, ``--read-only``) and adds them to the server.

A tool translates its arguments to ApexClient calls and the answers to typed output; it holds
no HTTP, SQL or prompt engineering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

from ...apex.errors import ApexError

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from ..state import AppState

Toolset = Literal["chat", "search", "research", "history"]
TOOLSETS: tuple[Toolset, ...] = ("chat", "search", "research", "history")


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    toolset: Toolset
    title: str
    annotations: ToolAnnotations
    local_only: bool = False  # needs a backend method outside the Apex contract

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.read_only_hint)


TOOLS: list[ToolSpec] = []


def tool(
    toolset: Toolset,
    title: str,
    *,
    read_only: bool,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    local_only: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a tool; its docstring is the description a model reads."""

    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        annotations = ToolAnnotations(
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=open_world,
        )
        TOOLS.append(ToolSpec(fn, toolset, title, annotations, local_only))
        return fn

    return declare


def app_state(ctx: Context[AppState]) -> AppState:
    return ctx.request_context.lifespan_context


@contextmanager
def apex_errors() -> Iterator[None]:
    """An ApexError becomes a tool error saying what happened and what to do."""
    try:
        yield
    except ApexError as error:
        raise ToolError(f"{error.code.value}: {error.explain()}") from None


def reply(output: BaseModel, text: str) -> CallToolResult:
    """Structured output with a readable text block beside it."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=output.model_dump(mode="json", exclude_none=True),
    )


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
