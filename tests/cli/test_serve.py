"""Starting ``apex-mcp`` as a new user does: Ctrl+C stops the stdio server cleanly, a port in
use and a database URL are one line, the README's HTTP snippet runs as written, and a normal
start logs no warning."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_commands import APEX_MCP, run
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.server.harness import user_miner_env
from tests.servers import free_port, gateway_process, run_process, wait_exit, wait_listening

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-miner-secret-42"


@pytest.fixture
def engine_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with user_miner_env(tmp_path, SECRET) as env:
        yield env


def read_stderr_until(process: subprocess.Popen[str], text: str) -> list[str]:
    """stderr's lines up to the one holding ``text`` (all of them, if the process ends)."""
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if text in line:
            break
    return lines


@pytest.mark.parametrize("stdin", ["pipe", "terminal"])
def test_ctrl_c_stops_the_stdio_server_without_a_traceback(
    engine_env: dict[str, str], stdin: str
) -> None:
    # A pipe is what hosts give; a terminal is a person who typed apex-mcp.
    host_end, server_end = os.openpty() if stdin == "terminal" else os.pipe()
    if stdin == "pipe":
        server_end, host_end = host_end, server_end  # the server reads the pipe's read end
    # As right after the quick start: the venv is not active, its bin is not on PATH.
    bin_dir = str(Path(APEX_MCP).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir)
    process = subprocess.Popen(
        [APEX_MCP],
        env={**os.environ, **engine_env, "PATH": path},
        stdin=server_end,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(server_end)
    try:
        said = read_stderr_until(process, "Ctrl+C")
        process.send_signal(signal.SIGINT)  # what Ctrl+C sends; stdin stays open
        code = wait_exit(process, what="the stdio server to stop at Ctrl+C", timeout=60)
        assert process.stderr is not None
        rest = process.stderr.read()
    finally:
        process.kill()
        process.wait()
        os.close(host_end)
    assert code == 130
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    if stdin == "terminal":  # a person: what it is, how to stop it, how to try it
        command = APEX_MCP  # as typed, since apex-mcp alone is not found until the venv is on
        assert said[-2:] == [
            "apex-mcp is an MCP server: it waits for a host (Claude Desktop, an IDE, an agent) "
            "to talk to it on stdin.\n",
            f"Stop it with Ctrl+C or Ctrl+D. To try the tools from a shell: {command} call "
            f"--list, then e.g. {command} call chat user_prompt=hello; {command} doctor checks "
            "the setup.\n",
        ]
    else:
        assert (
            said[-1] == "apex-mcp: waiting for an MCP host on stdin (Ctrl+C or Ctrl+D stops it)\n"
        )


def test_a_port_in_use_is_one_line(engine_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("serve", "--http", "--port", str(port), env=engine_env)
        gateway = run("gateway", "--port", str(port), env=engine_env)
    assert done.returncode == 1 and gateway.returncode == 1
    line = f"apex-mcp: port {port} is in use: choose another with --port"
    assert done.stderr.splitlines()[-1] == line and "Traceback" not in done.stderr
    assert gateway.stderr.splitlines()[-1] == line and "Traceback" not in gateway.stderr


def test_a_database_url_of_another_kind_is_refused_without_echoing_it(tmp_path: Path) -> None:
    url = "mysql://apex:pg-password-77@db.example/apex"
    done = run("call", "list_chats", env={"APEX_DB": url}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "apex-mcp: bad setting: db: a mysql:// URL is not a store apex-mcp can use: give a "
        "PostgreSQL URL (postgresql://user@host:5432/database), a SQLite file path, or "
        "sqlite:///relative/path.db or sqlite:////absolute/path.db\n"
    )
    assert "pg-password-77" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # no folder named "mysql:"


def test_a_sqlite_url_is_a_file_path(tmp_path: Path) -> None:
    env = {"APEX_DISCOVER_LOCAL_MINERS": "false"}
    relative = run("call", "list_chats", env={**env, "APEX_DB": "sqlite:///rel.db"}, cwd=tmp_path)
    absolute = run("call", "list_chats", env={**env, "APEX_DB": f"sqlite:///{tmp_path}/abs.db"})
    assert relative.returncode == 0 and absolute.returncode == 0, relative.stderr
    assert (tmp_path / "rel.db").is_file() and (tmp_path / "abs.db").is_file()


def readme_http_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Over HTTP") :]
    return section[
        section.index("```python\n") + len("```python\n") : section.index(
            "```\n", section.index("```python")
        )
    ]


def test_the_readmes_http_snippet_runs_as_written(tmp_path: Path) -> None:
    site, search = FakeWeb(), FakeSearxng()
    port = free_port()
    with (
        serve_web(site) as base,
        serve_searxng(search) as searxng,
        user_miner_env(tmp_path, SECRET) as env,
    ):
        search.hits = [hit(base, "/bees")]
        env |= {
            "APEX_SEARCH_PROVIDER": "searxng",
            "APEX_SEARXNG_URL": searxng,
            "APEX_ALLOW_PRIVATE_ADDRESSES": "true",
            "APEX_LOG_LEVEL": "INFO",
        }
        server = subprocess.Popen(
            [APEX_MCP, "serve", "--http", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_listening(port, server)
            snippet = readme_http_snippet().replace("8000", str(port))
            done = run_process(
                [sys.executable, "-c", snippet], what="the README's HTTP snippet", timeout=120
            )
            server.send_signal(signal.SIGINT)
            wait_exit(server, what="apex-mcp serve --http to stop at Ctrl+C", timeout=60)
        finally:
            server.kill()
            server.wait()
        assert server.stderr is not None
        logged = server.stderr.read().decode()
    assert done.returncode == 0, done.stderr
    assert site.url("/bees") in done.stdout
    assert len(re.findall("running on", logged, re.IGNORECASE)) == 1  # the server's, once
    assert "INFO uvicorn.error: Uvicorn running on http://127.0.0.1:" in logged  # our format


def test_the_gateways_normal_start_is_no_warning(tmp_path: Path) -> None:
    port = free_port()
    with gateway_process(tmp_path / "g.db", port) as process:
        process.send_signal(signal.SIGINT)
        wait_exit(process, what="the gateway to stop at Ctrl+C", timeout=60)
        assert process.stderr is not None
        logged = process.stderr.read().decode()
    assert logged.splitlines() == [
        f"apex-mcp gateway: engine data in {tmp_path / 'g.db'}, no API keys, "
        f"listening on 127.0.0.1:{port}"
    ]
