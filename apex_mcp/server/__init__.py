"""The MCP surface of apex-mcp: tools, resources and prompts over stdio and streamable HTTP."""
