"""The apex-mcp command: serve over stdio with a clean stdout, call, doctor, config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from apex_mcp.config import Settings
from apex_mcp.gateway import create_gateway_app
from tests.jsonrpc import INITIALIZE, INITIALIZED, TOOLS_LIST
from tests.server.harness import user_miner_env
from tests.servers import run_process, serve_asgi, wait_exit

SECRET = "sk-miner-secret-42"
APEX_MCP = str(Path(sys.executable).with_name("apex-mcp"))  # the console script of this install


def run(
    *args: str, env: dict[str, str], stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``apex-mcp`` command, as a user types it."""
    return run_process(
        [APEX_MCP, *args],
        what=f"apex-mcp {' '.join(args)}",
        timeout=120,
        env={**os.environ, **env},
        input=stdin,
        cwd=cwd,
    )


@pytest.fixture
def engine_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with user_miner_env(tmp_path, SECRET) as env:
        yield env


# Runs the command in a fresh interpreter, then lists every module it imported.
IMPORTS_OF = """
import sys
from apex_mcp.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("imported:", *sorted(sys.modules))
"""


@pytest.mark.parametrize(
    "words", [["--version"], ["--help"], ["gateway", "--help"], ["config", "claude"]]
)
def test_commands_that_serve_no_tool_never_load_the_mcp_stack(words: list[str]) -> None:
    done = run_process(
        [sys.executable, "-c", IMPORTS_OF, *words],
        what=f"apex-mcp {' '.join(words)}",
        timeout=120,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split("imported:")[1].split())
    assert "apex_mcp.cli.main" in imported  # the listing works: it names the command itself
    assert not {"mcp", "apex_mcp.server", "apex_mcp.engine"} & imported


def test_serve_help_says_what_each_toolset_holds() -> None:
    from apex_mcp.server.inventory import TOOLSET_DESCRIPTIONS

    done = run("serve", "--help", env={})
    assert done.returncode == 0, done.stderr
    help_text = " ".join(done.stdout.split())  # argparse wraps lines
    for name, description in TOOLSET_DESCRIPTIONS.items():
        assert f"{name}: {' '.join(description.split())}" in help_text


def test_with_stderr_closed_stdout_still_carries_the_protocol_alone(
    engine_env: dict[str, str],
) -> None:
    # 2>&-: Python's sys.stderr is None, where print() would write to stdout.
    messages = "".join(json.dumps(m) + "\n" for m in (INITIALIZE, INITIALIZED, TOOLS_LIST))
    done = run_process(
        ["sh", "-c", f"exec {sys.executable} -m apex_mcp 2>&-"],
        what="apex-mcp over stdio with stderr closed",
        timeout=120,
        env={**os.environ, **engine_env},
        input=messages,
    )
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1, 2]  # JSON-RPC answers, nothing else


def test_stdio_serves_the_protocol_alone_on_stdout(engine_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "apex_mcp"],
        env={**os.environ, **engine_env, "APEX_LOG_LEVEL": "DEBUG"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None

    def ask(*messages: dict[str, object]) -> dict[str, object]:
        # As a host does: wait for each answer (a request unanswered at end of input is dropped).
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        process.stdin.flush()
        answer: dict[str, object] = json.loads(process.stdout.readline())
        return answer

    try:
        assert ask(INITIALIZE)["id"] == 1
        listed = ask(INITIALIZED, TOOLS_LIST)
        process.stdin.close()  # end of input: the server ends
        assert wait_exit(process, what="the stdio server to end at end of input", timeout=60) == 0
        assert process.stderr is not None
        rest, stderr = process.stdout.read(), process.stderr.read()
    finally:
        process.kill()
        process.wait()
    assert listed["id"] == 2 and len(listed["result"]["tools"]) == 16  # type: ignore[index]
    assert rest.strip() == ""  # nothing but the protocol on stdout, DEBUG logging and all
    banner = stderr.splitlines()[0]
    assert banner.startswith("apex-mcp ") and "embedded engine" in banner
    assert engine_env["APEX_DB"] in banner
    # Spawned by a host (stdin not a terminal): one line says what it waits for.
    hint = "apex-mcp: waiting for an MCP host on stdin (Ctrl+C or Ctrl+D stops it)"
    assert hint in stderr.splitlines() and stderr.count("waiting for an MCP host") == 1
    assert SECRET not in stderr


def test_stdio_answers_larger_than_the_pipe_arrive_whole_to_a_slow_host(
    engine_env: dict[str, str],
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "apex_mcp"],
        env={**os.environ, **engine_env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    prompt = "".join(f"word{n} " for n in range(60_000))  # its answer is over 1 MB: many pipes
    create = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "create_chat", "arguments": {"user_prompt": prompt}},
    }
    try:
        process.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == 1
        messages = [INITIALIZED, create, TOOLS_LIST]
        process.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
        process.stdin.flush()
        # The host reads slowly: the server waits for room in the pipe, then goes on.
        answers = {}
        while len(answers) < 2:
            line = b""
            while not line.endswith(b"\n"):
                piece = process.stdout.read1(4096)
                assert piece, "stdout ended before the answers"
                line += piece
                if len(line) < 200_000:
                    time.sleep(0.001)
            for each in line.splitlines():
                answer = json.loads(each)
                answers[answer["id"]] = answer
        process.stdin.close()
        assert wait_exit(process, what="the stdio server to end at end of input", timeout=60) == 0
    finally:
        process.kill()
        process.wait()
    created = answers[3]["result"]["structuredContent"]
    assert created["completion"]["user_prompt_text"] == prompt
    assert len(answers[2]["result"]["tools"]) == 16


def test_call_runs_a_tool_and_prints_its_result(engine_env: dict[str, str]) -> None:
    chat = run("call", "chat", "user_prompt=hello from the shell", env=engine_env)
    assert chat.returncode == 0, chat.stderr
    assert "echo: hello from the shell" in chat.stdout
    listed = run("call", "list_chats", "limit=5", "--json", env=engine_env)
    assert json.loads(listed.stdout)["chats"][0]["title"] == "hello from the shell"
    bad = run("call", "get_chat", "chat_id=nope", env=engine_env)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == "apex-mcp: get_chat: invalid_argument: chat id 'nope' is not a UUID\n"
    tools = run("call", "--list", env=engine_env)
    assert tools.stdout.splitlines()[0].startswith("chat ")


def test_listing_the_tools_opens_no_backend(tmp_path: Path) -> None:
    db = tmp_path / "never" / "apex.db"
    env = {"APEX_DB": str(db), "APEX_DISCOVER_LOCAL_MINERS": "false", "APEX_BACKEND": "local"}
    for args in (["--list"], ["chat", "--help"]):
        done = run("call", *args, env=env)
        assert done.returncode == 0, done.stderr
    assert not db.parent.exists()  # the store was never opened, nor its folder made


def test_doctor_checks_store_and_miners_without_printing_secrets(
    engine_env: dict[str, str],
) -> None:
    done = run("doctor", env=engine_env)
    assert done.returncode == 0, done.stdout
    assert "[ok  ] store" in done.stdout and "[ok  ] miner" in done.stdout
    assert "all good" in done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_doctor_says_what_is_missing(tmp_path: Path) -> None:
    done = run(
        "doctor", env={"APEX_DB": str(tmp_path / "a.db"), "APEX_DISCOVER_LOCAL_MINERS": "false"}
    )
    assert done.returncode == 1
    assert "APEX_MINER" in done.stdout


def test_doctor_on_a_remote_backend_checks_the_key(tmp_path: Path) -> None:
    settings = Settings(
        db=tmp_path / "g.db",
        discover_local_miners=False,
        gateway_keys={"u": SecretStr("right-key")},
    )
    with serve_asgi(create_gateway_app(settings)) as url:
        good = run("doctor", env={"APEX_BASE_URL": url, "APEX_API_KEY": "right-key"})
        bad = run("doctor", env={"APEX_BASE_URL": url, "APEX_API_KEY": "wrong-key-123"})
    assert good.returncode == 0 and "[ok  ] key accepted" in good.stdout
    assert bad.returncode == 1 and "[FAIL] key accepted" in bad.stdout
    assert "wrong-key-123" not in bad.stdout + bad.stderr and "right-key" not in good.stdout


def test_config_claude_names_this_installs_own_command(tmp_path: Path) -> None:
    # Another apex-mcp first on PATH (an older install, say) is not the one to name.
    decoy = tmp_path / "apex-mcp"
    decoy.write_text("#!/bin/sh\nexit 1\n")
    decoy.chmod(0o755)
    done = run("config", "claude", env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)["mcpServers"]["apex"]
    assert entry == {"command": APEX_MCP, "args": []}


def test_config_claude_copies_the_settings_named_with_env() -> None:
    env = {"APEX_MINER": "ollama", "APEX_MINER_MODEL": "llama3.2"}
    done = run("config", "claude", "--env", "APEX_MINER", "--env", "APEX_MINER_MODEL", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mcpServers"]["apex"]["env"] == env
    missing = run("config", "claude", "--env", "APEX_NOT_SET_ANYWHERE", env={})
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        "apex-mcp: --env APEX_NOT_SET_ANYWHERE: not set in this environment; "
        "set it first or leave it out\n"
    )


def test_unknown_toolset_is_refused() -> None:
    done = run("--toolsets", "chat,bogus", env={})
    assert done.returncode != 0 and "unknown toolset bogus" in done.stderr


def test_bad_settings_say_what_to_fix_and_never_echo_a_key(tmp_path: Path) -> None:
    done = run("doctor", env={"APEX_MINER": "olama", "APEX_MINER_API_KEY": SECRET})
    assert done.returncode == 2
    assert "unknown miner preset 'olama'" in done.stderr and "ollama" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_session_settings_are_refused_for_stdio(engine_env: dict[str, str]) -> None:
    done = run(env={**engine_env, "APEX_HTTP_SESSION_CONFIG": "true"})
    assert done.returncode != 0 and "serve --http" in done.stderr
    assert done.stdout == ""  # nothing on the protocol's stream
