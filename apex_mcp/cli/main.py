"""The ``apex-mcp`` command. The parser imports only the chosen command's module, and that
module imports what it needs when it runs: ``--version``, ``config`` and ``gateway`` never load
the MCP tool stack."""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from ._shared import set_up

# Each command, with its line in --help: the module of that name in this package runs it.
COMMANDS = {
    "serve": "serve MCP over stdio (the default) or streamable HTTP",
    "call": "call one tool without a host and print its result",
    "doctor": "check the configuration, backend, store and miners (no secret is printed)",
    "config": "print host configuration for this install",
    "gateway": "serve the embedded Apex engine over the Apex wire protocol (Connect, HTTP/2)",
}


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def main(argv: Sequence[str] | None = None) -> int:
    # Start-up builds thousands of long-lived objects (pydantic models, tool schemas) that the
    # cyclic GC would scan again and again: it stays off until a command is set up (this cut
    # the wait for tools/list by a tenth), then those objects are frozen out of its way.
    gc.disable()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in (*COMMANDS, "-h", "--help", "--version"):
        words = ["serve", *words]  # what hosts spawn: `apex-mcp [options]` serves over stdio
    try:
        args = parse_command_line(words)  # in here: Ctrl+C while it imports is quiet too
        return int(_command(args.command).run(args) or 0)
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


def parse_command_line(words: Sequence[str]) -> argparse.Namespace:
    """``words`` (a command first, or an option such as --help) as the command's arguments."""
    chosen = words[0] if words and words[0] in COMMANDS else None
    return build_parser(chosen).parse_args(words)


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The whole command line, with the options of ``command`` alone: the others' options
    would import their modules for nothing."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="apex-mcp",
        description="The Apex API (Bittensor Subnet 1) as an MCP server: chat with open LLMs, "
        "web search, deep research and stored chats. With no command: serve MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"apex-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        # call's --help after a tool's name shows that tool's parameters
        sub = commands.add_parser(name, help=summary, add_help=name != "call")
        if name == command:
            _command(name).add_arguments(sub)
    return parser


def _command(name: str) -> _Command:
    return cast("_Command", importlib.import_module(f".{name}", __package__))


if __name__ == "__main__":
    sys.exit(main())
