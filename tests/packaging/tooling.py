"""What the packaging tests share: where things are, the package's one version, the names of
the settings' environment variables, the pinned Node tools of ``.ci/node``, and a stdio
tools/list done the way a host does it (JSON-RPC lines on the server's stdin)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from apex_mcp import __version__
from apex_mcp.config import Settings
from tests.jsonrpc import INITIALIZE, INITIALIZED, TOOLS_LIST

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NODE_DIR = ROOT / ".ci" / "node"
NODE_BIN = NODE_DIR / "node_modules" / ".bin"

# Read before any test runs: tests get a fresh HOME (tests/conftest.py), so the caches of uv
# and pip are found here, to install the wheel's dependencies without fetching them each time.
REAL_HOME = Path.home()
UV_CACHE = Path(os.environ.get("UV_CACHE_DIR") or REAL_HOME / ".cache" / "uv")
PIP_CACHE = Path(os.environ.get("PIP_CACHE_DIR") or REAL_HOME / ".cache" / "pip")


def version_in_init() -> str:
    """The version as written in apex_mcp/__init__.py, the one place it is set."""
    text = (ROOT / "apex_mcp" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert found, "apex_mcp/__init__.py must set __version__ as a plain string"
    assert found.group(1) == __version__
    return __version__


def settings_env_names() -> set[str]:
    """Every environment variable apex-mcp's settings read."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(f"APEX_{name.upper()}")
    return names


def node_tool(name: str) -> list[str]:
    """The command that runs a pinned Node tool of .ci/node (``inspector``, ``mcpb``,
    ``conformance``), with
    the pinned Node. The test is skipped when this machine has no Node.js at all; when it has
    (or in CI, where .ci/run installs them) a missing tool fails it."""
    script = NODE_BIN / name
    node = NODE_BIN / "node"
    if script.exists() and node.exists():
        return [str(node), str(script.resolve())]
    message = (
        f"{name} is not installed in .ci/node: run .ci/node/install (.ci/run does) to "
        "install the pinned MCP Inspector, mcpb, MCP conformance suite and Node"
    )
    if os.environ.get("CI") or shutil.which("node") or shutil.which("npm"):
        pytest.fail(message)
    pytest.skip(f"Node.js is not installed on this machine; {message}")


def node_env(**extra: str) -> dict[str, str]:
    """An environment for the Node tools: the pinned Node first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def dev_bin() -> Path:
    """The bin directory of the environment running the tests (uv, pipx, apex-mcp)."""
    return Path(sys.executable).parent


def stdio_tools_list(
    command: list[str], env: dict[str, str], cwd: Path, timeout: float = 180
) -> list[dict[str, Any]]:
    """Spawn ``command`` as a host does, initialize, list the tools, then close its stdin; the
    server's stdout must carry the protocol alone. Like a host, it waits for each answer before
    closing stdin (a request still unanswered at end of input may be dropped)."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        timed_out = threading.Event()

        def give_up() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout, give_up)
        timer.start()
        try:

            def ask(*messages: dict[str, Any]) -> dict[str, Any]:
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
                process.stdin.flush()
                line = process.stdout.readline()
                asked = messages[-1].get("method")
                assert not timed_out.is_set(), f"waited {timeout:g} s for the answer to {asked}"
                assert line, f"the server closed stdout without answering {asked}"
                answer: dict[str, Any] = json.loads(line)
                return answer

            initialized = ask(INITIALIZE)
            listed = ask(INITIALIZED, TOOLS_LIST)
            process.stdin.close()
            rest = process.stdout.read()
            code = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    assert code == 0, errors[-3000:]
    assert rest == "", rest[:2000]  # nothing but answers on stdout
    assert initialized.get("id") == 1 and listed.get("id") == 2, (initialized, errors[-2000:])
    assert initialized["result"]["serverInfo"]["version"] == __version__
    tools: list[dict[str, Any]] = listed["result"]["tools"]
    return tools


def expected_tool_names() -> set[str]:
    """The tools the server serves on the embedded engine, all toolsets."""
    from apex_mcp.server.app import selected_tools

    settings = Settings(backend="local", discover_local_miners=False)
    return {spec.name for spec in selected_tools(settings)}
