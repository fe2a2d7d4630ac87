"""What several commands share: start-up's end, the server and engine options, the settings."""

from __future__ import annotations

import argparse
import gc
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings


def set_up() -> None:
    """Start-up is over: keep what it built out of the GC's way, and turn the GC back on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def server_options(parser: argparse.ArgumentParser, *, serves_tools: bool = True) -> None:
    """The options of commands that build the MCP server, so a host's arguments work with
    each. ``serves_tools=False``: the command accepts them but serves no tool (doctor), so the
    tool stack is not imported to list the toolsets."""
    if serves_tools:
        from ..server.inventory import toolsets_help

        toolsets = (
            "comma-separated toolsets to serve, each with its tools, resources and prompts"
            f" (default: all): {toolsets_help()}"
        )
        read_only = "hide every tool that changes data"
    else:
        toolsets = read_only = "accepted so that apex-mcp serve's arguments work here; unused"
    parser.add_argument(
        "--backend",
        choices=["auto", "local", "remote"],
        help="local: the embedded engine; remote: an Apex server (APEX_BASE_URL, APEX_API_KEY);"
        " auto (default): remote when a key or base URL is set",
    )
    parser.add_argument("--toolsets", help=toolsets)
    parser.add_argument("--read-only", action="store_true", help=read_only)
    engine_options(parser)


def engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="the SQLite database file (default: in the user data dir)")
    parser.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING (default) or ERROR; logs go to stderr"
    )


def settings_from(args: argparse.Namespace) -> Settings:
    import logging

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


def toolsets_from(args: argparse.Namespace) -> list[Any] | None:
    from ..server.tools import TOOLSETS

    if not args.toolsets:
        return None
    chosen = [name.strip() for name in args.toolsets.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in TOOLSETS]
    if unknown:
        raise SystemExit(f"unknown toolset {', '.join(unknown)}: use {', '.join(TOOLSETS)}")
    return chosen
