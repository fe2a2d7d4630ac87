"""The MCP tools, in toolsets. Each module declares its tools with ``@tool``; ``app`` picks
which to serve (see ``inventory.Selection``) and adds them to the server.

A tool translates its arguments to a use case (``conversation``) or ApexClient calls, and the
answer to typed output (``outputs``) and text (``views``); it holds no HTTP, SQL or prompt
engineering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from ...apex.client import ApexClient
from ...apex.errors import ApexError
from ..inventory import TOOLSETS as TOOLSETS
from ..inventory import Offer
from ..inventory import Toolset as Toolset

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from ..state import AppState


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    toolset: Toolset
    title: str
    annotations: ToolAnnotations
    needs: type | None = None  # a capability beyond apex.v1 (apex/client.py) it calls

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

    @property
    def offer(self) -> Offer:
        return Offer("tool", self.name, self.toolset, not self.read_only, self.needs)


TOOLS: list[ToolSpec] = []


def all_tools() -> list[ToolSpec]:
    """Every tool declared, chat first (the order of TOOLSETS)."""
    from . import chat, history, research, search  # noqa: F401  (they declare the tools)

    return sorted(TOOLS, key=lambda spec: TOOLSETS.index(spec.toolset))


def tool(
    toolset: Toolset,
    title: str,
    *,
    read_only: bool,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    needs: type | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a tool; its docstring is the description a model reads."""

    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        # Hints left out mean what the spec says they default to (read-only false, idempotent
        # false); destructive means something only for a tool that changes data.
        annotations = ToolAnnotations(
            read_only_hint=read_only or None,
            destructive_hint=None if read_only else destructive,
            idempotent_hint=idempotent or None,
            open_world_hint=open_world,
        )
        TOOLS.append(ToolSpec(fn, toolset, title, annotations, needs))
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


MAX_PROBLEM_LINES = 10  # of an argument error: a list of 1,000 bad ids is not 1,000 lines


class ApexTool(Tool):
    """A tool as a strict-mode caller may call it: a null argument is as good as none (so a
    caller that must send every field sends null for the ones it leaves alone), and arguments
    that fail validation are told one line per field, in plain words, without their values."""

    async def run(
        self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False
    ) -> Any:
        given = {name: value for name, value in arguments.items() if value is not None}
        try:
            return await super().run(given, context, convert_result)
        except ToolError as error:
            cause = error.__cause__
            if type(error) is not ToolError or not isinstance(cause, ValidationError):
                raise
            # Only the arguments' validation leaves its ValidationError as the cause.
            from ...apex.connect import field_problems  # the codec is not needed to start

            lines = field_problems(cause, "arguments")
            shown = lines[:MAX_PROBLEM_LINES]
            if len(lines) > len(shown):
                shown.append(f"and {len(lines) - len(shown)} more")
            raise ToolError("\n".join(shown)) from cause


def build_tool(spec: ToolSpec) -> Tool:
    """The served tool: its schemas compacted, every optional argument nullable."""
    tool = ApexTool.from_function(
        spec.fn, title=spec.title, description=spec.description, annotations=spec.annotations
    )
    tool.parameters = compact_schema(tool.parameters)
    tool.fn_metadata.output_schema = compact_schema(tool.fn_metadata.output_schema, output=True)
    return tool


def compact_schema(schema: Any, *, output: bool = False) -> Any:
    """A tool schema as a model reads it best, and as strict function calling accepts it.

    ``$ref``s are inlined (strict converters and some hosts do not follow them). What costs a
    model tokens and tells it nothing goes: generated titles ("User Prompt" for user_prompt),
    ``anyOf [X, null]`` with ``default: null``, and in an output schema, defaults (an answer
    has values, not defaults). In an input schema every optional property then accepts null,
    in the cheapest form (``"type": ["string", "null"]``): callers in strict mode must send
    every field, and null is how they leave one out (``ApexTool`` treats it so).
    """
    if not isinstance(schema, dict):
        return schema
    inlined = _inline_refs(schema, schema.get("$defs", {}), ())
    return _compact(inlined, output)


def _inline_refs(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline_refs(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:
            raise ValueError(f"{name} refers to itself: a tool schema cannot inline it")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _inline_refs({**defs[name], **siblings}, defs, (*seen, name))
    return {k: _inline_refs(v, defs, seen) for k, v in node.items() if k != "$defs"}


def _compact(node: Any, output: bool) -> Any:
    if isinstance(node, list):
        return [_compact(item, output) for item in node]
    if not isinstance(node, dict):
        return node
    options = node.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        (kept,) = [option for option in options if option != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if "default" in rest and rest["default"] is None:
            del rest["default"]
        node = {**kept, **rest}
    compacted = {
        # A property named "title" maps to a schema (a dict), so only generated titles go.
        key: _compact(value, output)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
        and not (output and key == "default" and not isinstance(value, dict))
        and not (key == "additionalProperties" and value is True)  # what JSON Schema assumes
    }
    properties = compacted.get("properties")
    if not output and isinstance(properties, dict):
        required = set(compacted.get("required", ()))
        for name, prop in properties.items():
            if name not in required:
                properties[name] = _nullable(prop)
    return compacted


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, accepting null too."""
    schema = dict(schema)
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    if isinstance(schema.get("anyOf"), list) and {"type": "null"} not in schema["anyOf"]:
        schema["anyOf"] = [*schema["anyOf"], {"type": "null"}]
    return schema
