"""An independent client: the official MCP Inspector CLI (``@modelcontextprotocol/inspector``,
pinned in .ci/node) drives apex-mcp over stdio and over streamable HTTP.

It lists the tools, resources, resource templates and prompts, calls every tool, reads every
resource and template and gets every prompt, with ids that earlier calls made, on the embedded
engine with the fake upstreams of the tests behind it: an OpenAI-compatible miner, web pages
and a SearXNG. Each Inspector run is one connection and one request (over stdio, one server
process each, all on one SQLite file). A call passes only if the Inspector exits 0 with a
result, the result is not ``isError``, and it holds what the call asked for; at the end, every
tool, resource, template and prompt listed must have been used with success.
"""

from __future__ import annotations

import asyncio
import json
import secrets
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
from tests.servers import free_port, wait_listening

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


@dataclass
class Inspector:
    """Runs the Inspector CLI against one server; remembers what succeeded."""

    target: list[str]
    used: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, method: str, *options: str) -> subprocess.CompletedProcess[str]:
        command = [*node_tool("inspector"), "--cli", "--format", "json"]
        command += ["--method", method, *options, *self.target]
        return subprocess.run(
            command,
            env=node_env(),
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
            check=False,
        )

    def ok(self, method: str, name: str, *options: str) -> dict[str, Any]:
        """Run a request that must succeed; its result."""
        done = self.run(method, *options)
        where = (
            f"{method} {name}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        assert done.returncode == 0, where
        answer = json.loads(done.stdout)
        assert "error" not in answer and "result" in answer, where
        result: dict[str, Any] = answer["result"]
        if method == "tools/call":
            assert result.get("isError") is False, where
            assert result.get("structuredContent") is not None, where
        with self.lock:
            self.used.setdefault(method, set()).add(name)
        return result

    def tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.ok(
            "tools/call", name, "--tool-name", name, "--tool-args-json", json.dumps(arguments)
        )
        structured: dict[str, Any] = result["structuredContent"]
        return structured

    def read(self, uri: str, template: str | None = None) -> str:
        result = self.ok("resources/read", template or uri, "--uri", uri)
        (content,) = result["contents"]
        assert content["uri"] == uri and content["mimeType"] == "text/markdown"
        text: str = content["text"]
        return text

    def prompt(self, name: str, **arguments: str) -> str:
        pairs = [f"{k}={v}" for k, v in arguments.items()]
        result = self.ok("prompts/get", name, "--prompt-name", name, "--prompt-args", *pairs)
        (message,) = result["messages"]
        assert message["role"] == "user"
        text: str = message["content"]["text"]
        return text


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent calls at once (each is a process or two); their results in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [f.result() for f in [pool.submit(call) for call in calls]]


def session(inspector: Inspector, up: Upstreams) -> None:
    """Everything a user does, through the Inspector; asserts as it goes."""
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

    # Wait for the end of the job. A last_seq_id past any chunk makes the call wait until the
    # job ends: over stdio each Inspector run is a server process of its own, and the job runs
    # only while one is up (a process that stops hands a running job back to the queue).
    report = news
    for _ in range(6):
        if report["status"] in ("completed", "failed", "cancelled"):
            break
        arguments = {"job_id": job_id, "wait_seconds": 50, "last_seq_id": 10**9}
        report = inspector.tool("deep_research_status", arguments)
    assert report["status"] == "completed", report
    assert report["report"] and report["sources"], report

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
        "--tool-name",
        "get_completion",
        "--tool-args-json",
        json.dumps({"completion_id": added_id}),
    )
    assert gone.returncode != 0 and "not_found" in gone.stdout + gone.stderr

    # Every tool, resource, template and prompt listed was used with success.
    assert inspector.used["tools/call"] == tool_names
    assert inspector.used["resources/read"] == RESOURCES | TEMPLATES
    assert inspector.used["prompts/get"] == PROMPTS


# The stdio server, as the Inspector spawns it: one process per request.
STDIO_SERVER = [sys.executable, "-m", "apex_mcp"]


def test_every_tool_resource_and_prompt_over_stdio(upstreams: Upstreams) -> None:
    env = [f"{k}={v}" for k, v in upstreams.env.items()]
    target = [*(a for pair in env for a in ("-e", pair)), "--", *STDIO_SERVER]
    session(Inspector(target), upstreams)


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
        try:
            server.wait(timeout=20)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert server.returncode == 0, log.read_text()[-3000:]


def test_every_tool_resource_and_prompt_over_streamable_http(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    token, log = secrets.token_hex(16), tmp_path / "server.log"
    with http_server({**upstreams.env, "APEX_HTTP_TOKEN": token}, log) as url:
        http = ["--transport", "http", "--server-url", url]
        refused = Inspector([*http, "--stored-auth-only"]).run("tools/list")
        assert refused.returncode != 0 and "auth" in refused.stderr, refused.stderr  # no token
        session(Inspector([*http, "--header", f"Authorization: Bearer {token}"]), upstreams)
    assert token not in log.read_text()


def test_every_tool_resource_and_prompt_as_smithery_hosts_it(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    """No token, the miner and its key in the query string of /mcp: each Inspector run is a
    new session, and the key names the same user each time, so later runs find the chats and
    jobs of earlier ones."""
    key = "sk-session-" + secrets.token_hex(8)
    upstreams.miner.api_key = key  # the miner answers only the session's key
    own = {k: v for k, v in upstreams.env.items() if not k.startswith("APEX_MINER")}
    env = {**own, "APEX_HTTP_SESSION_CONFIG": "true", "APEX_LOG_LEVEL": "DEBUG"}
    log = tmp_path / "server.log"
    with http_server(env, log) as url:
        miner = {"miner": upstreams.env["APEX_MINER"], "minerApiKey": key, "minerModel": "m1"}
        query = urlencode(miner)
        session(Inspector(["--transport", "http", "--server-url", f"{url}?{query}"]), upstreams)
    assert {c.headers.get("authorization") for c in upstreams.miner.calls} == {f"Bearer {key}"}
    assert "DEBUG" in log.read_text() and key not in log.read_text()
