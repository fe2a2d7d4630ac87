"""``apex-mcp serve`` (and ``apex-mcp`` alone): the MCP server over stdio or streamable HTTP."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._shared import server_options, set_up, settings_from, toolsets_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Serve the MCP server. Hosts such as Claude Desktop spawn it over stdio."
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument(
        "--stateless",
        action="store_true",
        help="HTTP without server-side sessions, for replicas behind a round-robin balancer"
        " (APEX_HTTP_STATELESS)",
    )
    server_options(parser)


def run(args: argparse.Namespace) -> int:
    from ..server.app import banner, build_server, selected_tools

    settings = settings_from(args)
    if args.stateless:
        if not args.http:
            raise SystemExit("--stateless is for serving over HTTP: add --http")
        settings = settings.model_copy(update={"http_stateless": True})
    toolsets = toolsets_from(args)
    tools = selected_tools(settings, toolsets, read_only=args.read_only)
    if settings.http_session_config and not args.http:
        raise SystemExit(
            "APEX_HTTP_SESSION_CONFIG is for serving over HTTP, where each session brings its "
            "settings (apex-mcp serve --http): unset it to serve over stdio"
        )
    where = f"http://{args.host}:{args.port}/mcp" if args.http else "stdio"
    _tell(banner(settings, tools, where))
    mcp = build_server(settings, toolsets, read_only=args.read_only)
    set_up()
    if args.http:
        import anyio

        from ..server.http import serve_http

        anyio.run(serve_http, mcp, settings, args.host, args.port)
    else:
        import anyio

        from ..serving import serve_stdio

        _tell(_stdio_hint(sys.stdin.isatty()))
        anyio.run(serve_stdio, mcp)  # stdout carries the protocol alone from here on
    return 0


def _stdio_hint(at_terminal: bool) -> str:
    """What a person who ran ``apex-mcp`` by hand sees, so that waiting is not a hang."""
    if not at_terminal:  # a host spawned it: one line in its log
        return "apex-mcp: waiting for an MCP host on stdin (Ctrl+C or Ctrl+D stops it)"
    command = _typed_command()
    return (
        "apex-mcp is an MCP server: it waits for a host (Claude Desktop, an IDE, an agent) "
        "to talk to it on stdin.\n"
        f"Stop it with Ctrl+C or Ctrl+D. To try the tools from a shell: {command} call --list,"
        f" then e.g. {command} call chat user_prompt=hello; {command} doctor checks the setup."
    )


def _typed_command() -> str:
    """``apex-mcp`` when that name runs this very script, else its path (a venv's command
    before the venv is active: ``apex-mcp`` alone would be "command not found")."""
    import shutil

    script = Path(sys.argv[0])
    if not script.name.startswith("apex-mcp"):  # python -m apex_mcp
        return "apex-mcp"
    found = shutil.which("apex-mcp")
    return "apex-mcp" if found and Path(found).resolve() == script.resolve() else str(script)


def _tell(text: str) -> None:
    """A line for the person at the terminal, on stderr. With stderr closed (``2>&-``), print
    would write to stdout, which carries the protocol: say nothing then."""
    if sys.stderr is not None:
        print(text, file=sys.stderr)
