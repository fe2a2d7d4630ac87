"""Local stand-ins for the things apex-mcp talks to, served for real on 127.0.0.1."""
