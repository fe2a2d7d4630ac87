"""``apex-mcp call``: one tool call, in-process, through the real MCP server and client.

The tool's own input schema drives the command line: ``--help`` lists its parameters, names
are checked against it before the call, and a value is read as JSON unless the parameter
takes text. A deep research job started here is followed to its report (``--no-wait`` not).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ._shared import server_options, set_up, settings_from, toolsets_from

_FOLLOWED_TOOL = "deep_research_start"
_WAIT_SECONDS = 30.0  # each deep_research_status call waits this long for news


class _UsageError(Exception):
    """A call written wrong: the message says what to write instead."""


@dataclass
class _Followed:
    """The deep research job ``call`` is waiting for, if any (read after a Ctrl+C)."""

    job_id: str | None = None
    backend: str = "local"


def _tool_names_hint(wanted: str, names: list[str]) -> str:
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.5)
    close += [n for n in names if wanted and wanted in n and n not in close][: 3 - len(close)]
    maybe = f": did you mean {' or '.join(close)}?" if close else ""
    return f"no tool named {wanted!r}{maybe} (apex-mcp call --list lists them)"


def _not_served(name: str, settings: Settings, args: argparse.Namespace) -> str | None:
    """Why a tool that exists is not served here, if it is one."""
    from ..server.app import selected_tools
    from ..server.tools import TOOLS

    spec = next((spec for spec in TOOLS if spec.name == name), None)
    if spec is None:
        return None
    if spec not in selected_tools(settings):
        return f"{name} needs the embedded engine (--backend local); this backend is remote"
    if args.read_only and not spec.read_only:
        return f"{name} changes data, and --read-only leaves such tools out"
    return f"{name} is in the {spec.toolset} toolset, which --toolsets {args.toolsets} leaves out"


def _parse_arguments(tool: str, words: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` words to the tool's arguments: checked against its parameters, and read
    as JSON where the value parses, unless the parameter takes text."""
    properties: dict[str, Any] = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            example = _first_text_parameter(schema) or "name"
            shown = word if len(word) <= 40 else word[:37] + "..."
            raise _UsageError(
                f"arguments are key=value: write {example}={json.dumps(shown)}, not {shown!r} "
                f"(apex-mcp call {tool} --help lists the parameters)"
            )
        if key not in properties:
            close = difflib.get_close_matches(key, list(properties), n=3, cutoff=0.5)
            maybe = f": did you mean {' or '.join(close)}?" if close else ""
            raise _UsageError(
                f"{tool} has no parameter {key!r}{maybe} (apex-mcp call {tool} --help lists them)"
            )
        arguments[key] = _value(value, properties[key])
    return arguments


def _value(text: str, schema: dict[str, Any]) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if not isinstance(value, str) and "string" in _types(schema) and value is not None:
        return text  # user_prompt=42 is the text "42"
    return value


def _types(schema: dict[str, Any]) -> list[str]:
    given = schema.get("type", [])
    types = [given] if isinstance(given, str) else list(given)
    for option in schema.get("anyOf", []):
        types += _types(option)
    return [t for t in types if t != "null"]


def _first_text_parameter(schema: dict[str, Any]) -> str | None:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = [p for p in schema.get("required", []) if p in properties]
    for name in [*required, *properties]:
        if "string" in _types(properties[name]):
            return str(name)
    return None


def _tool_help(tool: Any) -> str:
    """The tool's parameters as its input schema gives them: name, type, required or not,
    default and description."""
    schema: dict[str, Any] = tool.input_schema or {}
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required", []))
    lines = [f"usage: apex-mcp call {tool.name} [key=value ...] [--json]", ""]
    if tool.description:
        lines += [tool.description.strip(), ""]
    if not properties:
        lines.append("It takes no parameters.")
        return "\n".join(lines)
    lines.append("parameters (a value is read as JSON when it parses, else as text):")
    width = max(len(name) for name in properties) + 2
    for name, prop in properties.items():
        facts = [_describe_type(prop), "required" if name in required else "optional"]
        if "default" in prop and prop["default"] is not None:
            facts.append(f"default {json.dumps(prop['default'])}")
        about = f": {prop['description']}" if prop.get("description") else ""
        lines.append(f"  {name:<{width}}{', '.join(facts)}{about}")
    return "\n".join(lines)


def _describe_type(schema: dict[str, Any]) -> str:
    """A parameter's type in a few words, e.g. ``integer 1 to 65536``, ``list of objects
    (role, content)``, ``one of a, b``."""
    if "enum" in schema:
        values = [str(v) for v in schema["enum"] if v is not None]
        return "one of " + ", ".join(values)
    options = [_describe_type(s) for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if options:
        return " or ".join(options)
    types = _types(schema) or ["any"]
    words = []
    for kind in types:
        if kind == "array" and isinstance(schema.get("items"), dict):
            words.append(f"list of {_plural(_describe_type(schema['items']))}")
        elif kind == "object" and schema.get("properties"):
            words.append(f"object ({', '.join(schema['properties'])})")
        else:
            words.append(kind)
    return " or ".join(words) + _bounds(schema)


def _plural(kind: str) -> str:
    if kind.startswith("one of"):
        return f"values, each {kind}"
    word, space, rest = kind.partition(" ")
    return f"{word}s{space}{rest}"


def _bounds(schema: dict[str, Any]) -> str:
    words = []
    if "minimum" in schema:
        words.append(f"at least {schema['minimum']:g}")
    if "exclusiveMinimum" in schema:
        words.append(f"above {schema['exclusiveMinimum']:g}")
    if "maximum" in schema:
        words.append(f"at most {schema['maximum']:g}")
    if "exclusiveMaximum" in schema:
        words.append(f"below {schema['exclusiveMaximum']:g}")
    return f" ({', '.join(words)})" if words else ""


def _error_lines(tool: str, result: Any) -> list[str]:
    text = "\n".join(getattr(block, "text", "") for block in result.content).strip()
    text = text.removeprefix(f"Error executing tool {tool}: ")  # the SDK's words, not ours
    return [line for line in text.splitlines() if line.strip()] or ["it failed"]


async def _call_tool(
    settings: Settings, args: argparse.Namespace, toolsets: Any, followed: _Followed
) -> int:
    from mcp import Client

    from ..server.app import build_server

    mcp = build_server(settings, toolsets, read_only=args.read_only)
    async with Client(mcp) as client:
        try:
            return await _call(client, settings, args, followed)
        except _UsageError as error:  # raised in here, it would come out in exception groups
            print(f"apex-mcp: {error}", file=sys.stderr)
            return 2


async def _call(
    client: Any, settings: Settings, args: argparse.Namespace, followed: _Followed
) -> int:
    listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    if args.list or not args.tool:
        for tool in listed.tools:
            print(f"{tool.name:<22} {(tool.description or '').splitlines()[0]}")
        return 0
    tool = tools.get(args.tool)
    if tool is None:
        why = _not_served(args.tool, settings, args)
        raise _UsageError(why or _tool_names_hint(args.tool, list(tools)))
    if args.help:
        print(_tool_help(tool))
        return 0
    arguments = _parse_arguments(tool.name, args.arguments, tool.input_schema or {})
    result = await client.call_tool(tool.name, arguments)
    if result.is_error:
        for line in _error_lines(tool.name, result):
            print(f"apex-mcp: {tool.name}: {line}", file=sys.stderr)
        return 1
    if tool.name == _FOLLOWED_TOOL and not args.no_wait:
        job_id = (result.structured_content or {}).get("job_id")
        if job_id:
            followed.job_id = job_id
            followed.backend = settings.resolved_backend
            return await _follow_job(client, job_id, as_json=args.json)
    _print_result(result, as_json=args.json)
    if tool.name == _FOLLOWED_TOOL:
        print(_not_waiting(settings.resolved_backend), file=sys.stderr)
    return 0


def _print_result(result: Any, *, as_json: bool) -> None:
    if as_json and result.structured_content is not None:
        print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    else:
        for block in result.content:
            print(getattr(block, "text", block))


def _not_waiting(backend: str) -> str:
    if backend == "remote":
        return "apex-mcp: the job runs on the Apex server; follow it with deep_research_status"
    return (
        "apex-mcp: not waiting: the job stays queued in APEX_DB and runs in the next apex-mcp "
        "server process on the same APEX_DB (a host starting apex-mcp, or apex-mcp serve); "
        "follow it with apex-mcp call deep_research_status job_id=..."
    )


def _stopped_waiting(followed: _Followed) -> str:
    where = (
        "it goes on on the Apex server"
        if followed.backend == "remote"
        else "it is back in the queue, nothing lost, and runs in the next apex-mcp server "
        "process on the same APEX_DB"
    )
    return (
        f"apex-mcp: stopped waiting for deep research job {followed.job_id}: {where}; follow "
        f"it with apex-mcp call deep_research_status job_id={followed.job_id}"
    )


async def _follow_job(client: Any, job_id: str, *, as_json: bool) -> int:
    """Wait for the job's report: its steps on stderr as they come, the report on stdout."""
    print(f"apex-mcp: deep research job {job_id} started; waiting for its report", file=sys.stderr)
    seq = 0
    drafting = False
    while True:
        result = await client.call_tool(
            "deep_research_status",
            {"job_id": job_id, "last_seq_id": seq, "wait_seconds": _WAIT_SECONDS},
        )
        if result.is_error:
            for line in _error_lines("deep_research_status", result):
                print(f"apex-mcp: deep_research_status: {line}", file=sys.stderr)
            return 1
        status: dict[str, Any] = result.structured_content or {}
        seq = int(status.get("next_seq_id", seq))
        for chunk in status.get("chunks", []):
            # The headings are the steps (plan, each search, each source, drafting); what
            # comes after "Drafting report" is the report itself.
            for line in str(chunk).splitlines():
                step = line.lstrip("#").strip()
                if step.startswith("Starting over"):  # the job was handed back and re-run
                    drafting = False
                if line.startswith("#") and not drafting:
                    print(f"  {step}", file=sys.stderr)
                    drafting = step.startswith("Drafting report")
        if status.get("status") == "completed":
            if as_json:
                print(json.dumps(status, indent=2, ensure_ascii=False))
            else:
                print(status.get("report") or "")
            return 0
        if status.get("status") in ("failed", "cancelled"):
            reason = f": {status['error']}" if status.get("error") else ""
            print(
                f"apex-mcp: deep research job {job_id} {status['status']}{reason}", file=sys.stderr
            )
            return 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Call a tool in-process, e.g. apex-mcp call web_search "
        'search_query="what is bittensor" n_results=3. Values are read as JSON when they '
        "parse (numbers, true/false, lists), else as text. apex-mcp call TOOL --help lists "
        "a tool's parameters."
    )
    parser.add_argument("tool", help="the tool's name (see apex-mcp call --list)", nargs="?")
    parser.add_argument("arguments", nargs="*", metavar="key=value")
    parser.add_argument(
        "-h", "--help", action="store_true", help="show this help, or the tool's parameters"
    )
    parser.add_argument("--list", action="store_true", help="list the tools and exit")
    parser.add_argument("--json", action="store_true", help="print the structured output as JSON")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="deep_research_start: return the job id at once instead of waiting for the report"
        " (the job then runs in the next apex-mcp server process on the same APEX_DB)",
    )
    parser.set_defaults(print_help=parser.print_help)
    server_options(parser)


def run(args: argparse.Namespace) -> int:
    import anyio

    if args.help and not args.tool:
        args.print_help()
        return 0
    settings = settings_from(args)
    set_up()
    followed = _Followed()
    try:
        return anyio.run(_call_tool, settings, args, toolsets_from(args), followed)
    except KeyboardInterrupt:
        if followed.job_id:
            print(_stopped_waiting(followed), file=sys.stderr)
        return 130
