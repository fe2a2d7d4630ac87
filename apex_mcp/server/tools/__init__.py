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

from ...apex.client import ApexClient
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
    def description(self) -> str:
        """The docstring as one paragraph: indentation costs a model tokens and says nothing."""
        return " ".join((self.fn.__doc__ or "").split())

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


async def apex(ctx: Context[AppState]) -> ApexClient:
    """The server's ApexClient (inside ``apex_errors``: it may not have opened)."""
    return await ctx.request_context.lifespan_context.apex()


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


def compact_schema(schema: Any, *, output: bool = False) -> Any:
    """A tool schema without what costs a model tokens and tells it nothing: generated titles
    ("User Prompt" for user_prompt), ``anyOf [X, null]`` with ``default: null`` for an
    optional X (leaving it out says the same; arguments are still validated in full), and in
    an output schema, defaults (an answer has values, not defaults)."""
    if isinstance(schema, list):
        return [compact_schema(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    options = schema.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        (kept,) = [option for option in options if option != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if "default" in rest and rest["default"] is None:
            del rest["default"]
        schema = {**kept, **rest}
    # A property named "title" maps to a schema (a dict), so only generated titles go.
    return {
        key: compact_schema(value, output=output)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str))
        and not (output and key == "default" and not isinstance(value, dict))
    }


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
