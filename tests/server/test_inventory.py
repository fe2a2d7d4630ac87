"""What a server offers: toolsets and read-only mode filter tools, resources, templates and
prompts alike; capabilities beyond apex.v1 decide the tools that need them; the layers."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from mcp import Client
from mcp_types import PromptReference, ResourceTemplateReference

import apex_mcp.server
from apex_mcp.apex import models as m
from apex_mcp.apex.client import CancelsResearch
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.config import Settings
from apex_mcp.engine.local import LocalApex
from apex_mcp.gateway import create_gateway_app
from apex_mcp.server.app import build_server
from apex_mcp.server.inventory import TOOLSETS, Offer, Selection, offers, toolsets_help
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import Backend, backend, connect, text_of
from tests.server.test_hosted_sessions import hosting, session
from tests.servers import serve_asgi

pytestmark = pytest.mark.anyio

SERVER = Path(apex_mcp.server.__file__).parent
KINDS = ("tool", "resource", "template", "prompt")


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Backend]:
    with backend("local", tmp_path) as b:
        yield b


async def served(client: Client) -> dict[str, set[str]]:
    """What the client is offered, by kind (as the inventory names them)."""
    return {
        "tool": {t.name for t in (await client.list_tools()).tools},
        "resource": {str(r.uri) for r in (await client.list_resources()).resources},
        "template": {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        },
        "prompt": {p.name for p in (await client.list_prompts()).prompts},
    }


def by_kind(chosen: list[Offer]) -> dict[str, set[str]]:
    kinds: dict[str, set[str]] = {
        "tool": set(),
        "resource": set(),
        "template": set(),
        "prompt": set(),
    }
    for offer in chosen:
        kinds[offer.kind].add(offer.name)
    return kinds


async def test_serve_toolsets_search_offers_nothing_of_another_toolset(local: Backend) -> None:
    async with connect("stdio", local.env, "--toolsets", "search") as client:
        offered = await served(client)
    assert offered == {
        "tool": {"web_search"},
        "resource": set(),
        "template": set(),
        "prompt": set(),
    }


async def test_read_only_hides_every_writing_tool_and_nothing_else(local: Backend) -> None:
    async with connect("stdio", local.env) as client:
        everything = await served(client)
    async with connect("stdio", local.env, "--read-only") as client:
        read_only = await served(client)
        tools = {t.name: t for t in (await client.list_tools()).tools}
        index = await client.read_resource("apex://chats")  # reading stays possible
    writing = {
        name
        for name in everything["tool"]
        if name not in tools  # hidden: each one must be a tool that writes
    }
    assert writing == {
        "chat",
        "deep_research_start",
        "deep_research_cancel",
        "create_chat",
        "update_chat",
        "delete_chats",
        "create_completion",
        "update_completion",
        "delete_completions",
    }
    assert all(t.annotations and t.annotations.read_only_hint for t in tools.values())
    assert {k: v for k, v in read_only.items() if k != "tool"} == {
        k: v for k, v in everything.items() if k != "tool"
    }
    assert everything["prompt"] and everything["template"] and everything["resource"]
    assert "Stored chats" in index.contents[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("toolset", TOOLSETS)
async def test_each_toolset_serves_exactly_its_own(local: Backend, toolset: str) -> None:
    async with Client(build_server(local.settings(), [toolset])) as client:  # type: ignore[list-item]
        offered = await served(client)
    own = by_kind([o for o in offers() if o.toolset == toolset])
    assert offered == own
    assert any(own.values())  # every toolset offers something


async def test_a_toolset_left_out_completes_nothing_of_it(local: Backend) -> None:
    async with Client(build_server(local.settings(), ["history", "research"])) as client:
        created = await client.call_tool("create_chat", {"user_prompt": "to complete"})
        assert created.structured_content is not None
        chat_id = created.structured_content["chat"]["id"]
        chat_ref = ResourceTemplateReference(uri="apex://chats/{chat_id}")
        completed = await client.complete(chat_ref, {"name": "chat_id", "value": ""})
        assert completed.completion.values == [chat_id]
    async with Client(build_server(local.settings(), ["chat", "research"])) as client:
        completion = await client.complete(
            PromptReference(name="continue_chat"), {"name": "chat_id", "value": ""}
        )
    assert completion.completion.values == []


async def test_tools_are_listed_by_toolset_chat_first(local: Backend) -> None:
    async with Client(build_server(local.settings())) as client:
        names = [t.name for t in (await client.list_tools()).tools]
    toolset_of = {offer.name: offer.toolset for offer in offers()}
    order = [TOOLSETS.index(toolset_of[name]) for name in names]
    assert names[0] == "chat" and order == sorted(order)


def test_the_inventory_declares_each_offer_once_in_a_known_toolset() -> None:
    everything = offers()
    names = [offer.name for offer in everything]
    assert len(names) == len(set(names))
    assert {offer.toolset for offer in everything} == set(TOOLSETS)
    # Only tools write: reading a resource or getting a prompt changes nothing.
    assert all(not offer.writes for offer in everything if offer.kind != "tool")


def test_toolsets_are_described() -> None:
    shown = toolsets_help()
    for name in TOOLSETS:
        assert f"{name}: " in shown
    assert "continue_chat" in shown  # says where the prompt went


# --- capabilities beyond apex.v1 ------------------------------------------------------------


def test_cancelling_is_offered_by_the_backend_that_can() -> None:
    assert issubclass(LocalApex, CancelsResearch)
    assert not issubclass(RemoteApex, CancelsResearch)
    cancel = next(offer for offer in offers() if offer.name == "deep_research_cancel")
    assert Selection(backend=LocalApex).serves(cancel)
    assert not Selection(backend=RemoteApex).serves(cancel)


async def test_a_hosted_session_on_an_apex_server_is_told_it_cannot_cancel(
    tmp_path: Path,
) -> None:
    """Hosted sessions choose their client per request: the tool is offered (the configured
    backend, the engine, can cancel), and a session on an Apex server of its own hears why it
    cannot."""
    with serve_openai(FakeOpenAI(models=["g1"])) as miner_url:
        gateway = Settings(
            db=tmp_path / "gateway.db",
            miners=[{"name": "g", "base_url": miner_url}],
            discover_local_miners=False,
            gateway_keys={"carol": "gk-carol-SECRET"},
        )
        with serve_asgi(create_gateway_app(gateway)) as gateway_url, hosting(tmp_path) as h:
            own = urlencode({"apexBaseUrl": gateway_url, "apexApiKey": "gk-carol-SECRET"})
            async with session(h.url, own) as carol:
                offered = {t.name for t in (await carol.list_tools()).tools}
                refused = await carol.call_tool("deep_research_cancel", {"job_id": "j-1"})
            async with session(h.url) as engine_user:
                unknown = await engine_user.call_tool(
                    "deep_research_cancel", {"job_id": "00000000-0000-4000-8000-000000000000"}
                )
    assert "deep_research_cancel" in offered
    assert refused.is_error
    assert "unimplemented: this Apex backend cannot cancel jobs" in text_of(refused)
    assert unknown.is_error and "not_found" in text_of(unknown)  # the engine looked for it


# --- the research entry of completion metadata ----------------------------------------------


def test_the_research_entry_reads_and_writes_the_apex_convention() -> None:
    metadata = {
        "deep-researcher": {"jobId": "j1", "status": "running", "createdAt": "t", "extra": 1},
        "model": "m1",
    }
    entry = m.ResearchEntry.from_metadata(metadata)
    assert entry is not None
    assert (entry.job_id, entry.status, entry.created_at) == ("j1", "running", "t")
    assert entry.to_metadata(metadata) == metadata  # nothing lost, nothing added
    done = entry.with_status("completed").to_metadata(metadata)
    assert done["deep-researcher"] == {
        "jobId": "j1",
        "status": "completed",
        "createdAt": "t",
        "extra": 1,
    }
    assert done["model"] == "m1"
    assert m.ResearchEntry("j2").to_metadata() == {"deep-researcher": {"jobId": "j2"}}


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"deep-researcher": {}},
        {"deep-researcher": None},
        {"deep-researcher": "j"},
        {"deep-researcher": {"jobId": 5}},
        {"x": {"deep-researcher": {"jobId": "j"}}},
    ],
)
def test_metadata_without_a_job_has_no_research_entry(metadata: Any) -> None:
    assert m.ResearchEntry.from_metadata(metadata) is None


# --- layers ---------------------------------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    """The modules a server module imports, as absolute names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "apex_mcp.server" if node.level == 1 else "apex_mcp" if node.level == 2 else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("module", ["resources", "prompts", "conversation", "views"])
def test_no_module_beside_the_tools_imports_a_tool_module(module: str) -> None:
    imported = imported_modules(SERVER / f"{module}.py")
    assert not {name for name in imported if name.startswith("apex_mcp.server.tools")}
