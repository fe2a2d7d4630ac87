"""``apex-mcp gateway``: the embedded engine served to Apex clients over the wire protocol."""

from __future__ import annotations

import argparse
import sys

from ._shared import engine_options, set_up, settings_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve the embedded engine to Apex clients (RemoteApex, other apex-mcp "
        "instances, Connect clients). Keys come from APEX_GATEWAY_KEYS or the config file."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on")
    engine_options(parser)


def run(args: argparse.Namespace) -> int:
    import anyio

    from ..gateway import serve_gateway

    settings = settings_from(args)
    set_up()
    print(
        f"apex-mcp gateway: engine data in {settings.db}, "
        f"{len(settings.gateway_keys) or 'no'} API keys, listening on {args.host}:{args.port}",
        file=sys.stderr,
    )
    anyio.run(serve_gateway, settings, args.host, args.port)
    return 0
