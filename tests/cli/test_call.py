"""``apex-mcp call`` as a new user meets it: usage errors in one line, a tool's parameters
from its schema, and a deep research job followed to its report (or left queued, said so)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.cli.test_commands import APEX_MCP, run
from tests.engine.test_research import Script
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.server import harness
from tests.server.harness import connect, user_miner_env
from tests.servers import wait_exit, waiting_for

SECRET = "sk-miner-secret-42"


@pytest.fixture
def engine_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with user_miner_env(tmp_path, SECRET) as env:
        yield env


def test_a_word_without_equals_is_one_line_saying_what_to_write(
    engine_env: dict[str, str],
) -> None:
    done = run("call", "chat", "hi", env=engine_env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "apex-mcp: arguments are key=value: write user_prompt=\"hi\", not 'hi' "
        "(apex-mcp call chat --help lists the parameters)\n"
    )


def test_an_unknown_tool_or_parameter_is_one_line_with_close_matches(
    engine_env: dict[str, str],
) -> None:
    tool = run("call", "chatt", env=engine_env)
    assert tool.returncode == 2
    assert tool.stderr == (
        "apex-mcp: no tool named 'chatt': did you mean chat or get_chat or list_chats? "
        "(apex-mcp call --list lists them)\n"
    )
    parameter = run("call", "chat", "prompt=hi", env=engine_env)
    assert parameter.returncode == 2
    assert parameter.stderr == (
        "apex-mcp: chat has no parameter 'prompt': did you mean user_prompt or system_prompt? "
        "(apex-mcp call chat --help lists them)\n"
    )


def test_a_tool_left_out_says_what_left_it_out(engine_env: dict[str, str]) -> None:
    toolsets = run("call", "web_search", "--toolsets", "chat", env=engine_env)
    assert toolsets.returncode == 2
    assert toolsets.stderr == (
        "apex-mcp: web_search is in the search toolset, which --toolsets chat leaves out\n"
    )
    read_only = run("call", "delete_chats", "--read-only", env=engine_env)
    assert read_only.stderr == (
        "apex-mcp: delete_chats changes data, and --read-only leaves such tools out\n"
    )


def test_bad_arguments_read_one_line_per_field(engine_env: dict[str, str]) -> None:
    done = run("call", "chat", "user_prompt=hi", "max_new_tokens=999999", env=engine_env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "apex-mcp: chat: max_new_tokens: at most 65536\n"
    missing = run("call", "get_chat", env=engine_env)
    assert missing.returncode == 1 and missing.stderr == "apex-mcp: get_chat: chat_id: required\n"


def test_a_number_given_to_a_text_parameter_stays_text(engine_env: dict[str, str]) -> None:
    done = run("call", "chat", "user_prompt=42", env=engine_env)
    assert done.returncode == 0, done.stderr
    assert "echo: 42" in done.stdout


def test_tool_help_lists_its_parameters_from_the_schema(engine_env: dict[str, str]) -> None:
    done = run("call", "chat", "--help", env=engine_env)
    assert done.returncode == 0, done.stderr
    lines = [line.split(maxsplit=1) for line in done.stdout.splitlines() if line.startswith("  ")]
    described = dict((name, rest) for name, rest in lines)
    assert done.stdout.startswith("usage: apex-mcp call chat [key=value ...]")
    assert described["user_prompt"] == "string, optional: what to ask"
    assert described["max_new_tokens"] == "integer (at least 1, at most 65536), optional"
    assert described["save"] == "boolean, optional, default true: store the turn in a chat"
    assert described["inference_mode"].startswith(
        "one of Reasoning-Fast, Chain-of-Thought, Mixture-of-Agents, optional"
    )
    assert described["messages"].startswith("list of objects (role, content), optional")
    status = run("call", "deep_research_status", "--help", env=engine_env)
    assert "  job_id        string, required\n" in status.stdout
    general = run("call", "--help", env=engine_env)  # no tool: the command's own help
    assert general.returncode == 0 and "--no-wait" in general.stdout


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def research_env(tmp_path: Path, script: Script) -> Iterator[dict[str, str]]:
    site, search = FakeWeb(), FakeSearxng()
    miner = FakeOpenAI(models=["m1"], reply=script)
    with serve_web(site) as base, serve_searxng(search) as searxng, serve_openai(miner) as url:
        search.hits = [hit(base, "/bees"), hit(base, "/tides")]
        yield harness.research_env(tmp_path / "apex.db", url, searxng)


def job_status(db: str, job_id: str) -> str:
    with sqlite3.connect(db) as connection:
        (status,) = connection.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(status)


def test_deep_research_start_runs_the_job_to_its_report(research_env: dict[str, str]) -> None:
    done = run(
        "call", "deep_research_start", "user_prompt=How do bees pick a nest?", env=research_env
    )
    assert done.returncode == 0, done.stderr
    steps = done.stderr.splitlines()
    assert re.fullmatch(
        r"apex-mcp: deep research job (\S+) started; waiting for its report", steps[0]
    )
    assert steps[1:3] == ["  Generating Research Plan", "  Searching: swarm scouts"]
    assert any(step.startswith("  Reading: ") for step in steps)
    assert steps[-1] == "  Drafting report"
    assert "Sources" in done.stdout and "/bees" in done.stdout  # the report, cited


def test_no_wait_queues_the_job_and_says_where_it_will_run(research_env: dict[str, str]) -> None:
    done = run(
        "call", "deep_research_start", "user_prompt=How do bees pick a nest?", "--no-wait",
        "--json", env=research_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert done.stderr.splitlines()[-1] == (
        "apex-mcp: not waiting: the job stays queued in APEX_DB and runs in the next apex-mcp "
        "server process on the same APEX_DB (a host starting apex-mcp, or apex-mcp serve); "
        "follow it with apex-mcp call deep_research_status job_id=..."
    )
    assert job_status(research_env["APEX_DB"], job["job_id"]) == "pending"
    # As said: the next server process on the same APEX_DB runs it to its report.
    report = anyio.run(report_of, research_env, job["job_id"])
    assert "Sources" in report and "/bees" in report


async def report_of(env: dict[str, str], job_id: str) -> str:
    """The job's report, as an ``apex-mcp`` server process over stdio runs it."""
    async with connect("stdio", env) as client:
        with waiting_for(f"the next server process to run job {job_id} to its end", 60):
            while True:
                result = await client.call_tool(
                    "deep_research_status", {"job_id": job_id, "wait_seconds": 10}
                )
                status: dict[str, Any] = result.structured_content or {}
                if status.get("status") in ("completed", "failed", "cancelled"):
                    return str(status.get("report") or status)


def test_ctrl_c_while_waiting_leaves_the_job_queued(
    research_env: dict[str, str], script: Script
) -> None:
    script.hold = {"report"}  # the job stays at its last step until released
    process = subprocess.Popen(
        [APEX_MCP, "call", "deep_research_start", "user_prompt=How do bees pick a nest?"],
        env={**os.environ, **research_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None and process.stdout is not None
    try:
        seen = []
        for line in process.stderr:  # ends if the process does (then the asserts below say)
            seen.append(line)
            if line.strip() == "Drafting report":
                break
        process.send_signal(signal.SIGINT)  # what Ctrl+C sends
        code = wait_exit(process, what="apex-mcp call to stop at Ctrl+C", timeout=60)
        rest = process.stderr.read()
    finally:
        script.release()
        process.kill()
        process.wait()
    job_id = seen[0].split()[4]
    assert code == 130
    assert rest.splitlines() == [
        f"apex-mcp: stopped waiting for deep research job {job_id}: it is back in the queue, "
        "nothing lost, and runs in the next apex-mcp server process on the same APEX_DB; "
        f"follow it with apex-mcp call deep_research_status job_id={job_id}"
    ]
    assert job_status(research_env["APEX_DB"], job_id) == "pending"
    report = anyio.run(report_of, research_env, job_id)  # nothing lost: the next process runs it
    assert "Sources" in report and "/bees" in report
