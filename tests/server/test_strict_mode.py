"""What strict-mode callers (OpenAI strict function calling, through openai-agents, langchain,
pydantic-ai) and prompt forms need: schemas that convert to strict mode, null meaning "left
out", updates that change only what they are given, required prompt arguments advertised, and
argument errors told one line per field."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client, MCPError
from mcp_types import INVALID_PARAMS

from apex_mcp.server.app import build_server
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.server.harness import connect, settings_from, text_of

pytestmark = pytest.mark.anyio

UPDATES_WITH_NOTHING_TO_DO = {"update_chat", "update_completion"}  # refused both ways
VOLATILE = {"id", "chat_id", "completion_id", "job_id", "created_at", "updated_at", "completed_at"}
CHAT = [{"role": "user", "content": "hello bees"}]
ONE_OF_REQUIRED = {"chat": {"user_prompt": "hello bees"}}  # or messages: neither is required
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[dict[str, str], FakeOpenAI]]:
    """The embedded engine with a fake miner (it echoes), a fake SearXNG and local pages."""
    site, search, miner = FakeWeb(), FakeSearxng(), FakeOpenAI(models=["m1"])
    with serve_web(site) as base, serve_searxng(search) as searxng, serve_openai(miner) as url:
        search.hits = [hit(base, "/bees"), hit(base, "/tides")]
        env = {
            "APEX_DB": str(tmp_path / "apex.db"),
            "APEX_MINERS": json.dumps([{"name": "fake", "base_url": url, "models": ["m1"]}]),
            "APEX_DISCOVER_LOCAL_MINERS": "false",
            "APEX_SEARCH_PROVIDER": "searxng",
            "APEX_SEARXNG_URL": searxng,
            "APEX_ALLOW_PRIVATE_ADDRESSES": "true",
            "APEX_RESEARCH_POLL_SECONDS": "0.1",
        }
        yield env, miner


def client_for(env: dict[str, str]) -> Client:
    return Client(build_server(settings_from(env)), mode="legacy")


# --- schemas ---------------------------------------------------------------------------------


class NotStrict(Exception):
    """The schema cannot be used with OpenAI strict function calling."""


def openai_strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as OpenAI strict mode needs it, converted the way strict-mode frameworks
    do, or NotStrict saying why it cannot be: no ``$ref``/``$defs``; every object lists its
    properties and allows no others (``additionalProperties`` false); every property is
    required, so one that was optional must accept null (how a caller leaves it out)."""
    strict = copy.deepcopy(schema)
    _make_strict(strict, "$")
    return strict


def _make_strict(node: dict[str, Any], where: str) -> None:
    if "$ref" in node or "$defs" in node:
        raise NotStrict(f"{where}: $ref/$defs")
    kinds = node.get("type")
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        if node.get("additionalProperties", False) is not False:
            raise NotStrict(f"{where}: additionalProperties must be false")
        properties = node.get("properties")
        if not isinstance(properties, dict) or not properties:
            raise NotStrict(f"{where}: a free-form object (no properties)")
        node["additionalProperties"] = False
        for name, prop in properties.items():
            if name not in node.get("required", []) and not accepts_null(prop):
                raise NotStrict(f"{where}.{name}: optional, yet null is not accepted")
            _make_strict(prop, f"{where}.{name}")
        node["required"] = list(properties)
    if isinstance(node.get("items"), dict):
        _make_strict(node["items"], f"{where}[]")
    for option in node.get("anyOf", []):
        _make_strict(option, f"{where}|")


def accepts_null(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    typed = kinds == "null" or (isinstance(kinds, list) and "null" in kinds)
    if "anyOf" in schema:
        typed = any(accepts_null(option) for option in schema["anyOf"])
    enum_ok = "enum" not in schema or None in schema["enum"]
    return typed and enum_ok


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object within a schema (values of properties, items, anyOf...)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def free_form(node: dict[str, Any]) -> bool:
    kinds = node.get("type")
    is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds)
    extra = node.get("additionalProperties")
    return is_object and (not node.get("properties") or extra is True or isinstance(extra, dict))


def test_the_strict_conversion_check_refuses_what_strict_mode_refuses() -> None:
    """The check itself can fail: each rule is caught on a schema that breaks it."""
    ok = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": ["integer", "null"]}},
        "required": ["a"],
    }
    assert openai_strict(ok)["required"] == ["a", "b"]
    broken = [
        {"type": "object", "properties": {"a": {"type": "integer"}}},
        {"type": "object", "properties": {"a": {"enum": ["x"], "type": ["string", "null"]}}},
        {"type": "object", "properties": {"m": {"type": "object"}}, "required": ["m"]},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]},
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
    ]
    for schema in broken:
        with pytest.raises(NotStrict):
            openai_strict(schema)


async def test_every_tool_schema_converts_to_openai_strict_mode(
    world: tuple[dict[str, str], FakeOpenAI],
) -> None:
    env, _ = world
    async with connect("stdio", env) as client:
        tools = (await client.list_tools()).tools
    assert len(tools) == 16
    for tool in tools:
        schema = tool.input_schema
        nodes = list(walk(schema))
        assert not any("$ref" in n or "$defs" in n for n in nodes), tool.name
        assert not [n for n in nodes if free_form(n)], tool.name
        strict = openai_strict(schema)  # raises NotStrict saying what is wrong
        # The call a strict-mode model makes, leaving every optional field out, is valid.
        call = strict_call(schema, sample_required(schema))
        jsonschema.validate(call, strict)


def sample_required(schema: dict[str, Any]) -> dict[str, Any]:
    """A valid value for each required argument, by its type."""
    samples = {"string": "x", "integer": 1, "number": 1, "boolean": True}
    values: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema["properties"][name]
        values[name] = ["x"] if prop["type"] == "array" else samples[prop["type"]]
    return values


def strict_call(schema: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The arguments with every field not given present as null, as strict mode sends them."""
    return {name: given.get(name) for name in schema["properties"]}


# --- null means "left out" -------------------------------------------------------------------


def normalized(result: Any) -> tuple[bool, Any, str]:
    """What a caller sees, without what differs between two equal calls (ids, times)."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "<volatile>" if k in VOLATILE else scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return result.is_error, scrub(result.structured_content), UUID.sub("<id>", text_of(result))


async def test_a_strict_call_behaves_as_the_call_that_leaves_its_fields_out(
    world: tuple[dict[str, str], FakeOpenAI],
) -> None:
    env, miner = world
    async with client_for(env) as client:
        created = await client.call_tool("create_chat", {"user_prompt": "hello bees"})
        assert created.structured_content is not None
        chat_id = created.structured_content["chat"]["id"]
        completion_id = created.structured_content["completion"]["id"]
        job = await client.call_tool("deep_research_start", {"user_prompt": "bees", "save": False})
        assert job.structured_content is not None
        job_id = job.structured_content["job_id"]
        await client.call_tool("deep_research_cancel", {"job_id": job_id})  # a job at rest
        required_values: dict[str, Any] = {
            "user_prompt": "hello bees",
            "search_query": "bees",
            "search_term": "bees",
            "chat_id": chat_id,
            "completion_id": completion_id,
            "job_id": job_id,
        }
        tools = (await client.list_tools()).tools
        compared = set()
        # Last: the jobs it starts change what list_research answers while they run.
        for tool in sorted(tools, key=lambda tool: tool.name == "deep_research_start"):
            schema = tool.input_schema
            if set(schema["properties"]) == set(schema.get("required", [])):
                continue  # nothing to leave out (the deletes, get_completion, cancel)
            plain = {name: required_values[name] for name in schema.get("required", [])}
            plain |= ONE_OF_REQUIRED.get(tool.name, {})
            requests_before = len(miner.requests)
            left_out = await client.call_tool(tool.name, plain)
            as_null = await client.call_tool(tool.name, strict_call(schema, plain))
            assert normalized(as_null) == normalized(left_out), tool.name
            assert left_out.is_error == (tool.name in UPDATES_WITH_NOTHING_TO_DO), (
                tool.name,
                text_of(left_out),
            )
            if tool.name == "chat":  # and the miner was asked the same both times
                asked = [r for r in miner.requests[requests_before:] if r["messages"] == CHAT]
                assert len(asked) == 2 and asked[0] == asked[1]
            compared.add(tool.name)
    assert compared == {
        "chat",
        "web_search",
        "deep_research_start",
        "deep_research_status",
        "list_research",
        "create_chat",
        "list_chats",
        "get_chat",
        "update_chat",
        "search_chats",
        "create_completion",
        "update_completion",
    }


async def test_an_update_changes_only_the_fields_it_is_given(
    world: tuple[dict[str, str], FakeOpenAI],
) -> None:
    env, _ = world
    async with client_for(env) as client:

        async def call(name: str, arguments: dict[str, Any]) -> Any:
            result = await client.call_tool(name, arguments)
            assert not result.is_error, text_of(result)
            return result.structured_content

        async def refused(name: str, arguments: dict[str, Any]) -> str:
            result = await client.call_tool(name, arguments)
            assert result.is_error
            return text_of(result)

        created = await call(
            "create_chat", {"user_prompt": "the prompt", "title": "The title", "chat_type": "apex"}
        )
        chat_id, completion_id = created["chat"]["id"], created["completion"]["id"]

        async def completion() -> tuple[str, str, Any]:
            got = await call("get_completion", {"completion_id": completion_id})
            return got["user_prompt_text"], got["completion_text"], got.get("metadata")

        async def chat() -> tuple[str, str]:
            got = await call("get_chat", {"chat_id": chat_id})
            return got["chat"]["title"], got["chat"]["chat_type"]

        def update(**fields: Any) -> dict[str, Any]:
            nulls = {"completion_text": None, "user_prompt_text": None, "metadata": None}
            return {"completion_id": completion_id, **nulls, **fields}

        await call("update_completion", update(completion_text="the answer"))
        assert await completion() == ("the prompt", "the answer", {})
        await call("update_completion", update(metadata='{"tag": "bees"}'))  # as strict mode
        assert await completion() == ("the prompt", "the answer", {"tag": "bees"})
        await call("update_completion", update(metadata={"tag": "wasps"}))  # a real object
        assert await completion() == ("the prompt", "the answer", {"tag": "wasps"})
        await call("update_completion", update(user_prompt_text="the new prompt"))
        assert await completion() == ("the new prompt", "the answer", {"tag": "wasps"})
        assert await chat() == ("The title", "apex")

        await call("update_chat", {"chat_id": chat_id, "title": "New title", "chat_type": None})
        assert await chat() == ("New title", "apex")
        await call("update_chat", {"chat_id": chat_id, "title": None, "chat_type": "gravity"})
        assert await chat() == ("New title", "gravity")

        # "" never means unchanged: it is refused, saying that null keeps the field.
        assert await refused(
            "update_chat", {"chat_id": chat_id, "title": "", "chat_type": None}
        ) == ("title: must not be empty (null keeps it as it is)")
        assert await refused("update_completion", update(user_prompt_text="", metadata="{}")) == (
            "user_prompt_text: must not be empty (null keeps it as it is)\n"
            "metadata: must not be empty (null keeps it as it is)"
        )
        assert await refused("update_completion", update(completion_text=" ")) == (
            "completion_text: must not be empty (null keeps it as it is)"
        )
        assert await refused("update_completion", update(metadata="tag=bees")) == (
            "metadata: must be a JSON object (not valid JSON: Expecting value)"
        )
        assert await refused("update_completion", update(metadata="[1, 2]")) == (
            "metadata: must be a JSON object"
        )
        assert await completion() == ("the new prompt", "the answer", {"tag": "wasps"})
        assert await chat() == ("New title", "gravity")


# --- prompts ---------------------------------------------------------------------------------


async def test_prompts_advertise_every_argument_they_require(
    world: tuple[dict[str, str], FakeOpenAI],
) -> None:
    env, _ = world
    async with connect("stdio", env) as client:
        created = await client.call_tool("create_chat", {"user_prompt": "about tides"})
        assert created.structured_content is not None
        valid = {"topic": "the tides", "chat_id": created.structured_content["chat"]["id"]}
        prompts = (await client.list_prompts()).prompts
        assert any(p.arguments for p in prompts)
        for prompt in prompts:
            arguments = prompt.arguments or []
            given = {a.name: valid[a.name] for a in arguments}
            assert (await client.get_prompt(prompt.name, given)).messages
            for argument in arguments:
                without = {k: v for k, v in given.items() if k != argument.name}
                if not argument.required:  # what is not advertised as required is not
                    assert (await client.get_prompt(prompt.name, without)).messages
                    continue
                for refused in (without, {**without, argument.name: " "}):
                    with pytest.raises(MCPError) as caught:
                        await client.get_prompt(prompt.name, refused)
                    assert caught.value.error.code == INVALID_PARAMS
                    assert caught.value.error.message == f"{argument.name} is required"


# --- argument errors -------------------------------------------------------------------------


async def test_argument_errors_read_one_line_per_field(
    world: tuple[dict[str, str], FakeOpenAI],
) -> None:
    env, _ = world
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("get_chat", {}, "chat_id: required"),
        ("get_chat", {"chat_id": None}, "chat_id: required"),
        ("chat", {"user_prompt": "x", "max_new_tokens": 100_000}, "max_new_tokens: at most 65536"),
        ("list_chats", {"limit": 0}, "limit: at least 1"),
        ("create_chat", {"user_prompt": ""}, "user_prompt: must not be empty"),
        (
            "create_chat",
            {"user_prompt": "p", "chat_type": "video"},
            "chat_type: must be one of 'apex', 'gravity'",
        ),
        ("web_search", {"search_query": "q", "n_results": "many"}, "n_results: must be an integer"),
        (
            "chat",
            {"user_prompt": "x", "temperature": "sk-secret-4421", "top_k": 0, "save": "maybe"},
            "temperature: must be a number\ntop_k: at least 1\nsave: must be true or false",
        ),
        (
            "chat",
            {"messages": [{"role": "bot", "content": 3}]},
            "messages.0.role: must be one of 'system', 'user', 'assistant'\n"
            "messages.0.content: must be a string",
        ),
        ("delete_chats", {"chat_ids": "abc"}, "chat_ids: must be a list"),
        ("update_chat", {"chat_id": "c", "title": "t" * 201}, "title: at most 200 characters"),
        (
            "delete_chats",
            {"chat_ids": list(range(25))},
            "\n".join(f"chat_ids.{i}: must be a string" for i in range(10)) + "\nand 15 more",
        ),
    ]
    async with connect("stdio", env) as client:
        for name, arguments, expected in cases:
            result = await client.call_tool(name, arguments)
            assert result.is_error, name
            assert text_of(result) == expected
        # The server keeps serving.
        listed = await client.call_tool("list_chats", {})
    assert not listed.is_error
