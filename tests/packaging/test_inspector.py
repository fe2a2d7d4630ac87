"""An independent client: the official MCP Inspector (``@modelcontextprotocol/inspector``,
pinned in .ci/node), through its connection CLI ``mcpdo``, drives apex-mcp over stdio, over
streamable HTTP with a token (2026-07-28 protocol) and as Smithery hosts it.

It lists the tools, resources, resource templates and prompts, calls every tool, reads every
resource and template and gets every prompt, with ids that earlier calls made, on the embedded
engine with the fake upstreams of the tests behind it: an OpenAI-compatible miner, web pages
and a SearXNG. The Inspector holds one connection per run (one server process over stdio), as
a host does; calls that do not depend on each other go at once. A call passes only if the
Inspector exits 0 with a result, the result is not ``isError``, and it holds what the call
asked for; at the end, every tool, resource, template and prompt listed must have been used
with success.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.packaging.tooling import expected_tool_names, node_env, node_tool
from tests.servers import free_port, run_process, wait_exit, wait_listening

RESOURCES = {"apex://chats"}
TEMPLATES = {
    "apex://chats/{chat_id}",
    "apex://completions/{completion_id}",
    "apex://research/{job_id}",
}
PROMPTS = {"deep_research", "continue_chat"}
SLOW = "SLOW-JOB"  # a research question the fake miner answers only at the end of the test
QUESTION = "How do honeybees choose a new home?"
CALL_TIMEOUT = 150  # seconds for one Inspector run; a status call waits up to 50 of them


@dataclass
class Upstreams:
    """The fakes behind the engine, and the settings that point it at them."""

    env: dict[str, str]
    miner: FakeOpenAI
    web: FakeWeb


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[Upstreams]:
    release = threading.Event()

    async def reply(body: dict[str, Any]) -> str:
        asked = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        if any(SLOW in str(text) for text in asked):
            while not release.is_set():  # a job that is still running when it is cancelled
                await asyncio.sleep(0.1)
        if (body.get("response_format") or {}).get("type") == "json_object":
            return json.dumps({"echo": asked[-1] if asked else ""})
        return f"echo: {asked[-1] if asked else ''}"

    miner, web, search = FakeOpenAI(models=["m1"], reply=reply), FakeWeb(), FakeSearxng()
    with serve_openai(miner) as miner_url, serve_web(web) as site, serve_searxng(search) as sx:
        search.hits = [hit(site, "/bees"), hit(site, "/tides")]
        env = {
            "APEX_BACKEND": "local",
            "APEX_DB": str(tmp_path / "apex.db"),
            "APEX_MINER": miner_url,
            "APEX_MINER_MODEL": "m1",
            "APEX_DISCOVER_LOCAL_MINERS": "false",
            "APEX_SEARCH_PROVIDER": "searxng",
            "APEX_SEARXNG_URL": sx,
            "APEX_ALLOW_PRIVATE_ADDRESSES": "true",
            "APEX_RESEARCH_POLL_SECONDS": "0.2",
        }
        try:
            yield Upstreams(env, miner, web)
        finally:
            release.set()


class Mcpdo:
    """The Inspector's connection CLI, ``mcpdo``: a private daemon of its own (in ``home``)
    holds each connection, so one server and one MCP session serve every call of a run, as a
    host's would; each call is a short command against the connection."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = node_env(HOME=str(home), MCP_INSPECTOR_SECRET_STORE="memory")
        exports = self.run("private", what="the private daemon's settings").stdout
        for name, value in re.findall(r"export (\w+)='([^']*)'", exports):
            self.env[name] = value
        assert "MCP_INSPECTOR_DAEMON_DIR" in self.env, exports

    def run(self, *words: str, what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*node_tool("mcpdo"), "--format", "json", *words]
        done = run_process(command, what=f"mcpdo: {what}", timeout=CALL_TIMEOUT, env=self.env)
        if check:
            assert done.returncode == 0, (
                f"{what}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def connect(self, name: str, *target: str) -> Inspector:
        self.run("connect", "--connection", name, *target, what=f"connecting {name}")
        return Inspector(self, name)

    def stop(self) -> None:
        self.run("daemon", "stop", what="stopping the daemon", check=False)
        shutil.rmtree(self.env["MCP_INSPECTOR_DAEMON_DIR"], ignore_errors=True)


@dataclass
class Inspector:
    """One connection of ``mcpdo``; remembers what succeeded."""

    mcpdo: Mcpdo
    connection: str
    used: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, method: str, *options: str, what: str) -> subprocess.CompletedProcess[str]:
        return self.mcpdo.run(f"@{self.connection}", method, *options, what=what, check=False)

    def ok(self, method: str, name: str, *options: str) -> dict[str, Any]:
        """Run a request that must succeed; its result."""
        done = self.run(method, *options, what=f"{method} {name}")
        where = (
            f"{method} {name}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        assert done.returncode == 0, where
        result: dict[str, Any] = json.loads(done.stdout)
        assert "error" not in result, where
        if method == "tools/call":
            assert result.get("isError") is False, where
            assert result.get("structuredContent") is not None, where
        with self.lock:
            self.used.setdefault(method, set()).add(name)
        return result

    def tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.ok("tools/call", name, name, "--tool-args-json", json.dumps(arguments))
        structured: dict[str, Any] = result["structuredContent"]
        return structured

    def read(self, uri: str, template: str | None = None) -> str:
        result = self.ok("resources/read", template or uri, uri)
        (content,) = result["contents"]
        assert content["uri"] == uri and content["mimeType"] == "text/markdown"
        text: str = content["text"]
        return text

    def prompt(self, name: str, **arguments: str) -> str:
        pairs = [f"{k}={v}" for k, v in arguments.items()]
        result = self.ok("prompts/get", name, name, "--prompt-args", *pairs)
        (message,) = result["messages"]
        assert message["role"] == "user"
        text: str = message["content"]["text"]
        return text


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent calls at once (each is a process or two); their results in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def session(
    inspector: Inspector, up: Upstreams, renew: Callable[[Inspector], Inspector] | None = None
) -> None:
    """Everything a user does, through the Inspector; asserts as it goes. With ``renew``, each
    phase after the first runs on a new connection (a new MCP session) that it makes."""

    def next_phase() -> None:
        nonlocal inspector
        if renew is not None:
            inspector = renew(inspector)

    listed = together(
        lambda: inspector.ok("tools/list", "tools"),
        lambda: inspector.ok("resources/list", "resources"),
        lambda: inspector.ok("resources/templates/list", "templates"),
        lambda: inspector.ok("prompts/list", "prompts"),
        lambda: inspector.tool("chat", {"user_prompt": "hello from the inspector", "seed": 7}),
        lambda: inspector.tool("web_search", {"search_query": "honeybees", "n_results": 2}),
        lambda: inspector.tool("deep_research_start", {"user_prompt": QUESTION}),
        lambda: inspector.tool("deep_research_start", {"user_prompt": f"{SLOW}: to cancel"}),
        lambda: inspector.tool("create_chat", {"user_prompt": "a chat to delete", "title": "old"}),
    )
    tools, resources, templates, prompts, chat, found, job, slow, doomed = listed
    tool_names = {t["name"] for t in tools["tools"]}
    assert tool_names == expected_tool_names()
    assert all(t.get("outputSchema") for t in tools["tools"])
    assert {r["uri"] for r in resources["resources"]} == RESOURCES
    assert {t["uriTemplate"] for t in templates["resourceTemplates"]} == TEMPLATES
    assert {p["name"] for p in prompts["prompts"]} == PROMPTS
    assert chat["answer"] == "echo: hello from the inspector" and chat["model"] == "m1"
    chat_id, first_completion = chat["chat_id"], chat["completion_id"]
    assert [r["url"] for r in found["results"]] == [up.web.url("/bees"), up.web.url("/tides")]
    assert all(r["relevant"] for r in found["results"])
    assert job["status"] == "pending" and slow["status"] == "pending"
    job_id, slow_id, doomed_id = job["job_id"], slow["job_id"], doomed["chat"]["id"]

    next_phase()
    again, cancelled, news, added, renamed, research_prompt, chats = together(
        lambda: inspector.tool("chat", {"user_prompt": "and again", "chat_id": chat_id}),
        lambda: inspector.tool("deep_research_cancel", {"job_id": slow_id}),
        lambda: inspector.tool("deep_research_status", {"job_id": job_id, "wait_seconds": 50}),
        lambda: inspector.tool(
            "create_completion", {"chat_id": chat_id, "user_prompt": "a stored prompt"}
        ),
        lambda: inspector.tool("update_chat", {"chat_id": chat_id, "title": "inspected"}),
        lambda: inspector.prompt("deep_research", topic="the tides"),
        lambda: inspector.read("apex://chats"),
    )
    assert again["chat_id"] == chat_id and again["answer"] == "echo: and again"
    (sent,) = [r for r in up.miner.requests if r["messages"][-1]["content"] == "and again"]
    history = [m["content"] for m in sent["messages"]]  # the chat's earlier turn went along
    assert history == ["hello from the inspector", "echo: hello from the inspector", "and again"]
    assert cancelled["status"] == "cancelled"
    assert news["job_id"] == job_id and (news["chunks"] or news["status"] == "completed")
    added_id = added["id"]
    assert added["chat_id"] == chat_id and renamed["title"] == "inspected"
    assert "the tides" in research_prompt and "deep_research_start" in research_prompt
    assert chat_id in chats and doomed_id in chats

    # Wait for the end of the job: a last_seq_id past any chunk makes the call wait until the
    # job ends (or 50 s pass).
    report = news
    for _ in range(6):
        if report["status"] in ("completed", "failed", "cancelled"):
            break
        arguments = {"job_id": job_id, "wait_seconds": 50, "last_seq_id": 10**9}
        report = inspector.tool("deep_research_status", arguments)
    assert report["status"] == "completed", report
    assert report["report"] and report["sources"], report

    next_phase()
    got, got_added, edited, searched, listed_chats, transcript, completion, carry_on = together(
        lambda: inspector.tool("get_chat", {"chat_id": chat_id}),
        lambda: inspector.tool("get_completion", {"completion_id": added_id}),
        lambda: inspector.tool(
            "update_completion", {"completion_id": added_id, "completion_text": "by hand"}
        ),
        lambda: inspector.tool("search_chats", {"search_term": "inspector"}),
        lambda: inspector.tool("list_chats", {"limit": 50}),
        lambda: inspector.read(f"apex://chats/{chat_id}", "apex://chats/{chat_id}"),
        lambda: inspector.read(
            f"apex://completions/{first_completion}", "apex://completions/{completion_id}"
        ),
        lambda: inspector.prompt("continue_chat", chat_id=chat_id),
    )
    assert got["chat"]["title"] == "inspected"
    completions = [c["id"] for c in got["completions"]]  # oldest first
    assert completions[0] == first_completion and added_id in completions
    assert got_added["user_prompt_text"] == "a stored prompt"
    assert edited["completion_text"] == "by hand"
    assert chat_id in [c["id"] for c in searched["chats"]]
    assert {chat_id, doomed_id} <= {c["id"] for c in listed_chats["chats"]}
    assert "hello from the inspector" in transcript and "echo: and again" in transcript
    assert "echo: hello from the inspector" in completion
    assert chat_id in carry_on and "hello from the inspector" in carry_on

    next_phase()
    research, report_page, removed_completion, removed_chat = together(
        lambda: inspector.tool("list_research", {}),
        lambda: inspector.read(f"apex://research/{job_id}", "apex://research/{job_id}"),
        lambda: inspector.tool("delete_completions", {"completion_ids": [added_id]}),
        lambda: inspector.tool("delete_chats", {"chat_ids": [doomed_id]}),
    )
    assert job_id in json.dumps(research)
    assert report["report"].strip()[:40] in report_page
    assert removed_completion == {"success": True, "deleted": [added_id]}
    assert removed_chat == {"success": True, "deleted": [doomed_id]}

    # The Inspector reports a failed call too: the deleted completion is gone.
    gone = inspector.run(
        "tools/call",
        "get_completion",
        "--tool-args-json",
        json.dumps({"completion_id": added_id}),
        what="get_completion of a deleted completion",
    )
    assert gone.returncode != 0 and "not_found" in gone.stdout + gone.stderr

    # Every tool, resource, template and prompt listed was used with success.
    assert inspector.used["tools/call"] == tool_names
    assert inspector.used["resources/read"] == RESOURCES | TEMPLATES
    assert inspector.used["prompts/get"] == PROMPTS


@pytest.fixture
def mcpdo(tmp_path: Path) -> Iterator[Mcpdo]:
    daemon = Mcpdo(tmp_path / "inspector-home")
    try:
        yield daemon
    finally:
        daemon.stop()


def test_every_tool_resource_and_prompt_over_stdio(upstreams: Upstreams, mcpdo: Mcpdo) -> None:
    """One server process, spawned by the Inspector as a host does, serves the whole run."""
    env = [a for k, v in upstreams.env.items() for a in ("-e", f"{k}={v}")]
    inspector = mcpdo.connect("stdio", *env, "--", sys.executable, "-m", "apex_mcp")
    session(inspector, upstreams)


@contextmanager
def http_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """``apex-mcp serve --http`` as a process on 127.0.0.1, its output in ``log``; yields the
    /mcp URL, then stops it as a host does and checks it exited cleanly."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "apex_mcp", "serve", "--http", "--port", str(port)],
            env={**node_env(), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, server)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.send_signal(signal.SIGTERM)
        wait_exit(server, what="the HTTP server to stop on SIGTERM", timeout=20)
    assert server.returncode == 0, log.read_text()[-3000:]


def test_every_tool_resource_and_prompt_over_streamable_http(
    upstreams: Upstreams, mcpdo: Mcpdo, tmp_path: Path
) -> None:
    """With a token, over the 2026-07-28 protocol (the Inspector's "modern" era)."""
    token, log = secrets.token_hex(16), tmp_path / "server.log"
    with http_server({**upstreams.env, "APEX_HTTP_TOKEN": token}, log) as url:
        http = ["--transport", "http", "--server-url", url, "--era", "modern"]
        refused = mcpdo.run(
            "--stored-auth-only",
            "connect",
            "--connection",
            "no-token",
            *http,
            what="connecting without the token",
            check=False,
        )
        assert refused.returncode != 0 and "auth" in (refused.stdout + refused.stderr).lower()
        session(
            mcpdo.connect("http", *http, "--header", f"Authorization: Bearer {token}"), upstreams
        )
    assert token not in log.read_text()


def test_every_tool_resource_and_prompt_as_smithery_hosts_it(
    upstreams: Upstreams, mcpdo: Mcpdo, tmp_path: Path
) -> None:
    """No token, the miner and its key in the query string of /mcp: each phase of the run is
    a new connection, a new session, and the key names the same user each time, so later
    sessions find the chats and jobs of earlier ones."""
    key = "sk-session-" + secrets.token_hex(8)
    upstreams.miner.api_key = key  # the miner answers only the session's key
    own = {k: v for k, v in upstreams.env.items() if not k.startswith("APEX_MINER")}
    env = {**own, "APEX_HTTP_SESSION_CONFIG": "true", "APEX_LOG_LEVEL": "DEBUG"}
    log = tmp_path / "server.log"
    with http_server(env, log) as url:
        miner = {"miner": upstreams.env["APEX_MINER"], "minerApiKey": key, "minerModel": "m1"}
        target = ["--transport", "http", "--server-url", f"{url}?{urlencode(miner)}"]
        sessions = iter(range(1, 100))

        def renew(old: Inspector) -> Inspector:
            mcpdo.run("disconnect", old.connection, what=f"disconnecting {old.connection}")
            new = mcpdo.connect(f"smithery-{next(sessions)}", *target)
            new.used = old.used
            return new

        session(mcpdo.connect("smithery-0", *target), upstreams, renew)
    assert {c.headers.get("authorization") for c in upstreams.miner.calls} == {f"Bearer {key}"}
    assert "DEBUG" in log.read_text() and key not in log.read_text()
