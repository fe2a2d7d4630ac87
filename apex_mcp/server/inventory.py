"""Everything the server can offer, in toolsets: tools, resources, resource templates and
prompts. Each module declares its own (``tools/*`` with ``@tool``, ``resources``, ``prompts``)
with its toolset, whether it writes, and any capability it needs of the backend beyond apex.v1;
``Selection`` decides, the same way for all four, what a server built with some toolsets, in
read-only mode or not, on some backend, serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from ..config import Settings
    from .state import AppState

Toolset = Literal["chat", "search", "research", "history"]
TOOLSETS: tuple[Toolset, ...] = ("chat", "search", "research", "history")

TOOLSET_DESCRIPTIONS: dict[Toolset, str] = {
    "chat": "chat with open LLMs, the turns kept as stored chats",
    "search": "web search with the relevant passage of each page",
    "research": "deep research jobs that write a cited report, and their reports as resources",
    "history": "the stored chats and completions: list, read, search, edit, delete; the chat "
    "resources and the continue_chat prompt",
}

Kind = Literal["tool", "resource", "template", "prompt"]


@dataclass(frozen=True)
class Offer:
    """One thing the server can offer."""

    kind: Kind
    name: str  # a tool's or prompt's name; a resource's URI or URI template
    toolset: Toolset
    writes: bool = False
    needs: type | None = None  # a capability protocol of apex/client.py the backend must have


@dataclass(frozen=True)
class Selection:
    """What a server serves: the offers of its toolsets, none that writes in read-only mode,
    and none that needs a capability its backend lacks."""

    toolsets: frozenset[Toolset] = frozenset(TOOLSETS)
    read_only: bool = False
    backend: type | None = None  # the class of the configured backend's client

    @classmethod
    def of(
        cls, settings: Settings, toolsets: Iterable[Toolset] | None = None, *, read_only: bool
    ) -> Selection:
        return cls(frozenset(toolsets or TOOLSETS), read_only, backend_class(settings))

    def serves(self, offer: Offer) -> bool:
        return (
            offer.toolset in self.toolsets
            and not (self.read_only and offer.writes)
            and (offer.needs is None or self.backend_has(offer.needs))
        )

    def backend_has(self, capability: type) -> bool:
        """Whether the configured backend has ``capability``. Hosted sessions may each choose
        another client; a tool checks the client it gets, too."""
        return self.backend is not None and issubclass(self.backend, capability)


def backend_class(settings: Settings) -> type:
    """The class of the ApexClient the settings configure (cheap to import: both import their
    heavy parts where first used)."""
    if settings.resolved_backend == "remote":
        from ..apex.remote import RemoteApex

        return RemoteApex
    from ..engine import LocalApex

    return LocalApex


Install = Callable[["MCPServer[AppState]"], None]

# The resources, templates and prompts declared, each with how to add it to a server; the
# tools are in tools.TOOLS (they are handed to the server as it is made).
DECLARED: list[tuple[Offer, Install]] = []


def declare(offer: Offer, install: Install) -> None:
    if any(known.name == offer.name for known, _ in DECLARED):
        raise ValueError(f"{offer.name} is declared twice")
    DECLARED.append((offer, install))


def offers() -> list[Offer]:
    """Every tool, resource, template and prompt, in the order a server lists them."""
    from . import prompts, resources  # noqa: F401  (they declare theirs)
    from .tools import all_tools

    return [spec.offer for spec in all_tools()] + [offer for offer, _ in DECLARED]


def install(mcp: MCPServer[AppState], selection: Selection) -> list[Offer]:
    """Add the selected resources, templates and prompts to ``mcp``; the ones added."""
    from . import prompts, resources  # noqa: F401

    added = []
    for offer, add in DECLARED:
        if selection.serves(offer):
            add(mcp)
            added.append(offer)
    return added


def toolsets_help() -> str:
    """The toolsets with what each holds, for ``--toolsets``'s help."""
    return "; ".join(f"{name}: {TOOLSET_DESCRIPTIONS[name]}" for name in TOOLSETS)
