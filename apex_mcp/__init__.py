"""apex-mcp: the Apex API (Bittensor Subnet 1) as an MCP server, with an embedded Apex engine."""

__version__ = "0.1.0"
