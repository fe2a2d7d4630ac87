"""The raw JSON-RPC messages a host sends first, for tests that speak MCP without a client."""

from typing import Any

INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",  # the handshake era, what hosts speak
        "capabilities": {},
        "clientInfo": {"name": "apex-mcp tests", "version": "1"},
    },
}
INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
