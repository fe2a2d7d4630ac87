"""The ``apex-mcp`` command: ``main`` parses it and runs one subcommand module."""
