"""The ``apex-mcp`` command. Each subcommand imports what it needs when it runs."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.command = "serve"
        args.http = False
    try:
        return int(COMMANDS[args.command](args) or 0)
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="apex-mcp",
        description="The Apex API (Bittensor Subnet 1) as an MCP server: chat with open LLMs, "
        "web search, deep research and stored chats. With no command: serve MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"apex-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="the SQLite database file (default: in the user data dir)")
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING (default) or ERROR; logs go to stderr"
    )


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from .config import load_settings

    settings = load_settings(db=getattr(args, "db", None), log_level=args.log_level, **extra)
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def cmd_gateway(args: argparse.Namespace) -> int:
    import anyio

    from .gateway import serve_gateway

    settings = _settings(args)
    print(
        f"apex-mcp gateway: engine data in {settings.db}, "
        f"{len(settings.gateway_keys) or 'no'} API keys, listening on {args.host}:{args.port}",
        file=sys.stderr,
    )
    anyio.run(serve_gateway, settings, args.host, args.port)
    return 0


COMMANDS = {"gateway": cmd_gateway}


if __name__ == "__main__":
    sys.exit(main())
