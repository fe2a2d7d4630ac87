"""Every tool called with inputs drawn from its own inputSchema (hypothesis-jsonschema) and
with inputs outside it, through the MCP SDK's client against a real server process. Each
answer must be a result that fits the tool's outputSchema or a clean tool error; nothing may
show a traceback or a secret, and the server must keep answering.

Failures are collected as findings, not raised inside hypothesis: a finding is reported once
per tool and kind, with the input that showed it, and no time goes to shrinking."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import jsonschema
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import Tool

from tests.faults.processes import HTTP_TOKEN, SECRETS

# Any JSON value, the stuff of inputs outside a schema (big integers included).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
# Tool arguments that name stored things: drawn from real ids half of the time, so that the
# fuzzing reaches past "not found".
ID_ARGUMENTS = {"chat_id": "chats", "completion_id": "completions", "job_id": "jobs"}
ID_LIST_ARGUMENTS = {"chat_ids": "chats", "completion_ids": "completions"}
CALL_TIMEOUT = 60.0


@dataclass
class FuzzReport:
    calls: Counter[str] = field(default_factory=Counter)  # per tool
    tool_errors: Counter[str] = field(default_factory=Counter)
    findings: dict[tuple[str, str], str] = field(default_factory=dict)  # (tool, kind) -> example

    def find(self, tool: str, kind: str, example: str) -> None:
        self.findings.setdefault((tool, kind), example[:2000])

    def summary(self) -> list[str]:
        return [f"{tool}: {kind}: {example}" for (tool, kind), example in self.findings.items()]


@asynccontextmanager
async def mcp_client(url: str) -> AsyncIterator[Client]:
    headers = {"authorization": f"Bearer {HTTP_TOKEN}"}
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT, headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            yield client


def fuzz_every_tool(
    url: str, *, in_schema: int, out_of_schema: int, derandomize: bool
) -> FuzzReport:
    """Call each tool the server lists ``in_schema`` times with inputs from its inputSchema and
    ``out_of_schema`` times with inputs outside it; then check that it still answers."""
    report = FuzzReport()
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        mcp_client(url)
    ) as client:
        tools = portal.call(client.list_tools).tools
        known = portal.call(stored_things, client)
        for tool in tools:
            valid = valid_inputs(tool, known)
            for kind, strategy, examples in (
                ("in schema", valid, in_schema),
                ("out of schema", invalid_inputs(tool, valid), out_of_schema),
            ):
                fuzz_one(portal, client, tool, kind, strategy, examples, derandomize, report)
        still = portal.call(client.call_tool, "list_chats", {"limit": 1})
        if still.is_error:
            report.find("list_chats", "after the fuzzing", text_of(still))
    return report


def fuzz_one(
    portal: BlockingPortal,
    client: Client,
    tool: Tool,
    kind: str,
    strategy: st.SearchStrategy[dict[str, Any]],
    examples: int,
    derandomize: bool,
    report: FuzzReport,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def call(arguments: dict[str, Any]) -> None:
        report.calls[tool.name] += 1
        shown = f"{json.dumps(arguments)[:500]} -> "
        try:
            result = portal.call(client.call_tool, tool.name, arguments, CALL_TIMEOUT)
        except Exception as error:  # a protocol error, a timeout, an invalid result
            report.find(tool.name, f"{kind}: no result", f"{shown}{type(error).__name__}: {error}")
            return
        text = text_of(result)
        everything = text + json.dumps(result.structured_content)
        if any(secret in everything for secret in SECRETS):
            report.find(tool.name, f"{kind}: a secret in the answer", shown + text)
        if "Traceback" in everything or 'File "' in everything:
            report.find(tool.name, f"{kind}: a traceback in the answer", shown + text)
        if result.is_error:
            report.tool_errors[tool.name] += 1
            check_error(tool, kind, arguments, text, shown, report)
        elif tool.output_schema is not None:
            try:
                jsonschema.validate(result.structured_content, tool.output_schema)
            except jsonschema.ValidationError as error:
                report.find(tool.name, f"{kind}: output off its schema", shown + error.message)

    call()


def check_error(
    tool: Tool, kind: str, arguments: dict[str, Any], text: str, shown: str, report: FuzzReport
) -> None:
    """A clean tool error: something to read, one line (one per bad argument at most)."""
    lines = text.strip().splitlines()
    if not lines:
        report.find(tool.name, f"{kind}: an empty error", shown + repr(text))
    elif len(lines) > max(1, len(arguments) + len(tool.input_schema.get("required", []))) or any(len(line) > 1000 for line in lines):
        report.find(tool.name, f"{kind}: an error of {len(lines)} lines", shown + text)


def valid_inputs(tool: Tool, known: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs from the tool's inputSchema; ids of stored things half of the time. Waits are
    cut to a fraction of a second: the fuzzing is about answers, not about waiting."""
    schema = copy.deepcopy(tool.input_schema)
    properties: dict[str, Any] = schema.get("properties", {})
    if "wait_seconds" in properties:
        properties["wait_seconds"]["maximum"] = 0.2
    real: dict[str, st.SearchStrategy[Any]] = {}
    for name, things in ID_ARGUMENTS.items():
        if name in properties and known[things]:
            real[name] = st.sampled_from(known[things])
    for name, things in ID_LIST_ARGUMENTS.items():
        if name in properties and known[things]:
            real[name] = st.lists(st.sampled_from(known[things]), min_size=1, max_size=3)
    drawn = from_schema(schema)
    if not real:
        return drawn
    return st.builds(
        lambda arguments, ids, use: {**arguments, **ids} if use else arguments,
        drawn,
        st.fixed_dictionaries({}, optional=real),
        st.booleans(),
    )


def invalid_inputs(
    tool: Tool, valid: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs outside the schema: junk objects, a valid input with one argument swapped for
    any JSON value, or one without a required argument."""
    properties = sorted(tool.input_schema.get("properties", {}))
    required = tool.input_schema.get("required", [])
    junk = st.dictionaries(st.sampled_from(properties) | st.text(max_size=12), JSON_VALUES)
    choices = [junk]
    if properties:
        choices.append(
            st.builds(
                lambda arguments, name, value: {**arguments, name: value},
                valid,
                st.sampled_from(properties),
                JSON_VALUES,
            )
        )
    if required:
        choices.append(
            st.builds(
                lambda arguments, name: {k: v for k, v in arguments.items() if k != name},
                valid,
                st.sampled_from(required),
            )
        )
    return st.one_of(choices)


async def stored_things(client: Client) -> dict[str, list[str]]:
    """A few chats, completions and a research job, for the fuzzed inputs to name."""
    known: dict[str, list[str]] = {"chats": [], "completions": [], "jobs": []}
    for n in range(3):
        created = await client.call_tool("create_chat", {"user_prompt": f"stored chat {n}"})
        assert created.structured_content is not None, text_of(created)
        known["chats"].append(created.structured_content["chat"]["id"])
        known["completions"].append(created.structured_content["completion"]["id"])
    started = await client.call_tool("deep_research_start", {"user_prompt": "honeybees"})
    assert started.structured_content is not None, text_of(started)
    known["jobs"].append(started.structured_content["job_id"])
    return known


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
