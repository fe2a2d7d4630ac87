"""``apex-mcp call``: one tool call, in-process, through the real MCP server and client."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .config import Settings


def parse_arguments(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` words to tool arguments: JSON where the value parses, else text."""
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"arguments are key=value, not {pair!r}")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


async def call_tool(settings: Settings, args: argparse.Namespace, toolsets: Any) -> int:
    from mcp import Client

    from .server.app import build_server

    mcp = build_server(settings, toolsets, read_only=args.read_only)
    async with Client(mcp) as client:
        listed = await client.list_tools()
        if args.list or not args.tool:
            for tool in listed.tools:
                print(f"{tool.name:<22} {(tool.description or '').splitlines()[0]}")
            return 0
        result = await client.call_tool(args.tool, parse_arguments(args.arguments))
    if args.json and result.structured_content is not None:
        print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    else:
        for block in result.content:
            print(getattr(block, "text", block))
    if result.is_error:
        print(f"apex-mcp: {args.tool} failed", file=sys.stderr)
        return 1
    return 0
