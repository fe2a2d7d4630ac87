"""Every tool called with inputs drawn from its own inputSchema (hypothesis-jsonschema) and
with inputs outside it, through the MCP SDK's client against a real server process. Each
answer must be a result that fits the tool's outputSchema or a clean tool error; nothing may
show a traceback or a secret, and the server must keep answering.

Failures are collected as findings, not raised inside hypothesis: a finding is reported once
per tool and kind, with the input that showed it, and no time goes to shrinking."""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2
import jsonschema  # type: ignore[import-untyped]
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp import Client
from mcp_types import Tool

from tests.faults.processes import HTTP_TOKEN, SECRETS, mcp_client, text_of
from tests.jsonrpc import INITIALIZE, INITIALIZED, TOOLS_LIST

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
TOO_LARGE = "a 5 MB prompt (over the 4 MiB limit)"
FIELD_LINE = re.compile(r"^([\w.\[\]-]+: \S|and \d+ more$)")  # "chat_ids.0: must be a string"


@dataclass
class FuzzReport:
    calls: Counter[str] = field(default_factory=Counter)  # per tool
    tool_errors: Counter[str] = field(default_factory=Counter)
    kind_calls: Counter[str] = field(default_factory=Counter)  # "in schema", "out of schema"
    kind_errors: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)  # per tool, waiting for answers
    findings: dict[tuple[str, str], str] = field(default_factory=dict)  # (tool, kind) -> example

    def find(self, tool: str, kind: str, example: str) -> None:
        self.findings.setdefault((tool, kind), example[:2000])

    def summary(self) -> list[str]:
        return [f"{tool}: {kind}: {example}" for (tool, kind), example in self.findings.items()]


def fuzz_every_tool(
    url: str, *, in_schema: int, out_of_schema: int, derandomize: bool
) -> FuzzReport:
    """Call each tool the server lists ``in_schema`` times with inputs from its inputSchema and
    ``out_of_schema`` times with inputs outside it; then check that it still answers."""
    report = FuzzReport()
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(mcp_client(url)) as client,
    ):
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
        report.kind_calls[kind] += 1
        shown = f"{json.dumps(arguments)[:500]} -> "
        started = time.monotonic()
        try:
            result = portal.call(client.call_tool, tool.name, arguments, CALL_TIMEOUT)
        except Exception as error:  # a protocol error, a timeout, an invalid result
            report.find(tool.name, f"{kind}: no result", f"{shown}{type(error).__name__}: {error}")
            return
        finally:
            waited = time.monotonic() - started
            report.seconds[tool.name] = report.seconds.get(tool.name, 0.0) + waited
        text = text_of(result)
        everything = text + json.dumps(result.structured_content)
        if any(secret in everything for secret in SECRETS):
            report.find(tool.name, f"{kind}: a secret in the answer", shown + text)
        if "Traceback" in everything or 'File "' in everything:
            report.find(tool.name, f"{kind}: a traceback in the answer", shown + text)
        if result.is_error:
            report.tool_errors[tool.name] += 1
            report.kind_errors[kind] += 1
            check_error(tool, kind, text, shown, report)
        elif tool.output_schema is not None:
            try:
                jsonschema.validate(result.structured_content, tool.output_schema)
            except jsonschema.ValidationError as error:
                report.find(tool.name, f"{kind}: output off its schema", shown + error.message)

    call()


def check_error(tool: Tool, kind: str, text: str, shown: str, report: FuzzReport) -> None:
    """A clean tool error: one line, or one ``field: problem`` line per bad argument."""
    lines = text.strip().splitlines()
    if not lines:
        report.find(tool.name, f"{kind}: an empty error", shown + repr(text))
    elif any(len(line) > 1000 for line in lines):
        report.find(tool.name, f"{kind}: an error line over 1000 characters", shown + text)
    elif len(lines) > 1 and not all(FIELD_LINE.match(line) for line in lines):
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
    drawn = cast(st.SearchStrategy[dict[str, Any]], from_schema(schema))
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


def raw_requests() -> dict[str, bytes]:
    """JSON-RPC bodies no SDK client would send: arguments of the wrong kind, names that are
    not tools, broken or deeply nested JSON, a very large argument."""

    def call(params: Any, id_: Any = 7) -> bytes:
        message = {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}
        return json.dumps(message).encode()

    deep = b'{"user_prompt": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return {
        "arguments a list": call({"name": "chat", "arguments": [1, 2]}),
        "arguments a string": call({"name": "chat", "arguments": "hello"}),
        "arguments null": call({"name": "list_chats", "arguments": None}),
        "name a number": call({"name": 5, "arguments": {}}),
        "no such tool": call({"name": "rm_rf", "arguments": {}}),
        "no params": call(None),
        "id an object": call({"name": "list_chats", "arguments": {}}, {"a": 1}),
        "no such method": json.dumps({"jsonrpc": "2.0", "id": 8, "method": "x/y"}).encode(),
        "a batch": b"[" + call({"name": "list_chats"}) + b"," + call({"name": "nope"}) + b"]",
        "not JSON": b'{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {',
        "100,000 nested arrays": b'{"jsonrpc": "2.0", "id": 10, "method": "tools/call", '
        b'"params": {"name": "chat", "arguments": ' + deep + b"}}",
        TOO_LARGE: call({"name": "chat", "arguments": {"user_prompt": "x" * 5_000_000}}),
    }


async def send_raw_requests(url: str) -> tuple[list[str], dict[str, tuple[int, str]]]:
    """Send each of ``raw_requests`` in an initialized session. Returns the findings (answers
    that are a server error, show a traceback or a secret, no answer, a server that stops
    answering) and each request's answer (status and body)."""
    headers = {
        "authorization": f"Bearer {HTTP_TOKEN}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
    }
    findings, answers = [], {}
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT, headers=headers) as http:
        hello = await http.post(url, json=INITIALIZE)
        hello.raise_for_status()
        session = {"mcp-session-id": hello.headers.get("mcp-session-id", "")}
        await http.post(url, json=INITIALIZED, headers=session)
        for what, body in raw_requests().items():
            try:
                answer = await http.post(url, content=body, headers=session)
            except httpx2.HTTPError as error:
                findings.append(f"{what}: no answer: {type(error).__name__}: {error}")
                continue
            text = answer.text
            answers[what] = (answer.status_code, text)
            if answer.status_code >= 500:
                findings.append(f"{what}: HTTP {answer.status_code}: {text[:300]}")
            if "Traceback" in text or any(secret in text for secret in SECRETS):
                findings.append(f"{what}: a traceback or a secret in: {text[:300]}")
        check = await http.post(url, json=TOOLS_LIST, headers=session)
        if check.status_code != 200 or '"tools"' not in check.text:
            findings.append(f"tools/list afterwards: HTTP {check.status_code}: {check.text[:300]}")
    return findings, answers
