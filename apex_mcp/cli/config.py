"""``apex-mcp config claude``: the Claude Desktop entry that runs this install."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", choices=["claude"], help="claude: the Claude Desktop entry")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="copy this variable from the current environment into the entry (repeatable), "
        "e.g. --env APEX_MINER --env APEX_MINER_API_KEY",
    )


def run(args: argparse.Namespace) -> int:
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
