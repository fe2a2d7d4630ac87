"""The ``apex-mcp`` command. Each subcommand imports what it needs when it runs."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings


def main(argv: Sequence[str] | None = None) -> int:
    # Start-up builds thousands of long-lived objects (pydantic models, tool schemas) that the
    # cyclic GC would scan again and again: it stays off until a command is set up (this cut
    # the wait for tools/list by a tenth), then those objects are frozen out of its way.
    gc.disable()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in (*COMMANDS, "-h", "--help", "--version"):
        words = ["serve", *words]  # what hosts spawn: `apex-mcp [options]` serves over stdio
    try:
        args = build_parser().parse_args(words)  # in here: Ctrl+C while it imports is quiet too
        return int(COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as error:
        print(f"apex-mcp: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        from pydantic import ValidationError

        if not isinstance(error, ValidationError):
            raise
        from ..apex.connect import describe_validation_error

        # Named fields and reasons only: the input may hold keys.
        print(
            f"apex-mcp: bad setting: {describe_validation_error(error, '')}",
            file=sys.stderr,
        )
        return 2
    finally:
        set_up()


def set_up() -> None:
    """Start-up is over: keep what it built out of the GC's way, and turn the GC back on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="apex-mcp",
        description="The Apex API (Bittensor Subnet 1) as an MCP server: chat with open LLMs, "
        "web search, deep research and stored chats. With no command: serve MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"apex-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve MCP over stdio (the default) or streamable HTTP",
        description="Serve the MCP server. Hosts such as Claude Desktop spawn it over stdio.",
    )
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    _server_options(serve)

    call = commands.add_parser(
        "call",
        add_help=False,  # --help after a tool's name shows that tool's parameters
        help="call one tool without a host and print its result",
        description="Call a tool in-process, e.g. apex-mcp call web_search "
        'search_query="what is bittensor" n_results=3. Values are read as JSON when they '
        "parse (numbers, true/false, lists), else as text. apex-mcp call TOOL --help lists "
        "a tool's parameters.",
    )
    call.add_argument("tool", help="the tool's name (see apex-mcp call --list)", nargs="?")
    call.add_argument("arguments", nargs="*", metavar="key=value")
    call.add_argument(
        "-h", "--help", action="store_true", help="show this help, or the tool's parameters"
    )
    call.add_argument("--list", action="store_true", help="list the tools and exit")
    call.add_argument("--json", action="store_true", help="print the structured output as JSON")
    call.add_argument(
        "--no-wait",
        action="store_true",
        help="deep_research_start: return the job id at once instead of waiting for the report"
        " (the job then runs in the next apex-mcp server process on the same APEX_DB)",
    )
    call.set_defaults(print_help=call.print_help)
    _server_options(call)

    doctor = commands.add_parser(
        "doctor",
        help="check the configuration, backend, store and miners (no secret is printed)",
    )
    _server_options(doctor)

    config = commands.add_parser("config", help="print host configuration for this install")
    config.add_argument("host", choices=["claude"], help="claude: the Claude Desktop entry")
    config.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="copy this variable from the current environment into the entry (repeatable), "
        "e.g. --env APEX_MINER --env APEX_MINER_API_KEY",
    )

    gateway = commands.add_parser(
        "gateway",
        help="serve the embedded Apex engine over the Apex wire protocol (Connect, HTTP/2)",
        description="Serve the embedded engine to Apex clients (RemoteApex, other apex-mcp "
        "instances, Connect clients). Keys come from APEX_GATEWAY_KEYS or the config file.",
    )
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on")
    gateway.add_argument("--port", type=int, default=8765, help="port to listen on")
    _engine_options(gateway)
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    from ..server.tools import TOOLSETS

    parser.add_argument(
        "--backend",
        choices=["auto", "local", "remote"],
        help="local: the embedded engine; remote: an Apex server (APEX_BASE_URL, APEX_API_KEY);"
        " auto (default): remote when a key or base URL is set",
    )
    parser.add_argument(
        "--toolsets",
        help=f"comma-separated groups of tools to serve: {', '.join(TOOLSETS)} (default: all)",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="hide every tool that changes data"
    )
    _engine_options(parser)


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="the SQLite database file (default: in the user data dir)")
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING (default) or ERROR; logs go to stderr"
    )


def _settings(args: argparse.Namespace) -> Settings:
    from ..config import load_settings

    settings = load_settings(
        db=getattr(args, "db", None),
        log_level=args.log_level,
        backend=getattr(args, "backend", None),
    )
    logging.basicConfig(
        level=settings.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def cmd_gateway(args: argparse.Namespace) -> int:
    import anyio

    from ..gateway import serve_gateway

    settings = _settings(args)
    set_up()
    print(
        f"apex-mcp gateway: engine data in {settings.db}, "
        f"{len(settings.gateway_keys) or 'no'} API keys, listening on {args.host}:{args.port}",
        file=sys.stderr,
    )
    anyio.run(serve_gateway, settings, args.host, args.port)
    return 0


def _toolsets(args: argparse.Namespace) -> list[Any] | None:
    from ..server.tools import TOOLSETS

    if not args.toolsets:
        return None
    chosen = [name.strip() for name in args.toolsets.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in TOOLSETS]
    if unknown:
        raise SystemExit(f"unknown toolset {', '.join(unknown)}: use {', '.join(TOOLSETS)}")
    return chosen


def cmd_serve(args: argparse.Namespace) -> int:
    from ..server.app import banner, build_server, selected_tools

    settings = _settings(args)
    toolsets = _toolsets(args)
    tools = selected_tools(settings, toolsets, read_only=args.read_only)
    if settings.http_session_config and not args.http:
        raise SystemExit(
            "APEX_HTTP_SESSION_CONFIG is for serving over HTTP, where each session brings its "
            "settings (apex-mcp serve --http): unset it to serve over stdio"
        )
    where = f"http://{args.host}:{args.port}/mcp" if args.http else "stdio"
    print(banner(settings, tools, where), file=sys.stderr)
    mcp = build_server(settings, toolsets, read_only=args.read_only)
    set_up()
    if args.http:
        import anyio

        from ..server.http import serve_http

        anyio.run(serve_http, mcp, settings, args.host, args.port)
    else:
        import anyio

        from ..serving import serve_stdio

        print(stdio_hint(sys.stdin.isatty()), file=sys.stderr)
        anyio.run(serve_stdio, mcp)  # stdout carries the protocol alone from here on
    return 0


def stdio_hint(at_terminal: bool) -> str:
    """What a person who ran ``apex-mcp`` by hand sees, so that waiting is not a hang."""
    if not at_terminal:  # a host spawned it: one line in its log
        return "apex-mcp: waiting for an MCP host on stdin (Ctrl+C or Ctrl+D stops it)"
    command = typed_command()
    return (
        "apex-mcp is an MCP server: it waits for a host (Claude Desktop, an IDE, an agent) "
        "to talk to it on stdin.\n"
        f"Stop it with Ctrl+C or Ctrl+D. To try the tools from a shell: {command} call --list,"
        f" then e.g. {command} call chat user_prompt=hello; {command} doctor checks the setup."
    )


def typed_command() -> str:
    """``apex-mcp`` when that name runs this very script, else its path (a venv's command
    before the venv is active: ``apex-mcp`` alone would be "command not found")."""
    import shutil

    script = Path(sys.argv[0])
    if not script.name.startswith("apex-mcp"):  # python -m apex_mcp
        return "apex-mcp"
    found = shutil.which("apex-mcp")
    return "apex-mcp" if found and Path(found).resolve() == script.resolve() else str(script)


def cmd_call(args: argparse.Namespace) -> int:
    import anyio

    from .call import Followed, call_tool, stopped_waiting

    if args.help and not args.tool:
        args.print_help()
        return 0
    settings = _settings(args)
    set_up()
    followed = Followed()
    try:
        return anyio.run(call_tool, settings, args, _toolsets(args), followed)
    except KeyboardInterrupt:
        if followed.job_id:
            print(stopped_waiting(followed), file=sys.stderr)
        return 130


def cmd_doctor(args: argparse.Namespace) -> int:
    import anyio

    from .doctor import doctor

    settings = _settings(args)
    set_up()
    return anyio.run(doctor, settings)


def cmd_config(args: argparse.Namespace) -> int:
    import json
    import os

    # This install's own command, not whichever apex-mcp comes first on PATH.
    script = Path(sys.executable).with_name("apex-mcp.exe" if os.name == "nt" else "apex-mcp")
    entry: dict[str, Any] = (
        {"command": str(script), "args": []}
        if script.is_file()
        else {"command": sys.executable, "args": ["-m", "apex_mcp"]}
    )
    missing = [name for name in args.env if name not in os.environ]
    if missing:
        raise SystemExit(
            f"apex-mcp: --env {', '.join(missing)}: not set in this environment; "
            "set it first or leave it out"
        )
    if args.env:
        entry["env"] = {name: os.environ[name] for name in args.env}
    print(json.dumps({"mcpServers": {"apex": entry}}, indent=2))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "call": cmd_call,
    "doctor": cmd_doctor,
    "config": cmd_config,
    "gateway": cmd_gateway,
}


if __name__ == "__main__":
    sys.exit(main())
