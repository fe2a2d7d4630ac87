"""The container, without a Docker engine: the Dockerfile read statically (a small base, a
non-root user, the build context it needs), its entrypoint and health check run as commands on
this machine, and smithery.yaml checked against what the container serves."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import jsonschema
import pytest
import yaml

from apex_mcp.server.app import build_server
from apex_mcp.server.http import create_http_app
from apex_mcp.server.sessions import FIELD_NAMES, parse_query
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.packaging.tooling import (
    INITIALIZE,
    MANIFESTS,
    ROOT,
    dev_bin,
    settings_env_names,
    version_in_init,
)
from tests.server.harness import settings_from
from tests.servers import free_port, run_process, wait_exit, wait_listening

ACCEPT = {"accept": "application/json, text/event-stream"}


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments out."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def only(stage: list[tuple[str, str]], word: str) -> str:
    (value,) = [rest for w, rest in stage if w == word]
    return value


def test_the_image_is_small_and_runs_as_a_user() -> None:
    steps = instructions()
    bases = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert bases == ["python:3.11-slim", "python:3.11-slim"]  # build stage, then runtime
    stage = final_stage()
    assert not [w for w, _ in stage if w == "ADD"]  # nothing fetched at build time
    user = only(stage, "USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user  # numeric: runAsNonRoot can check it
    # Only the built environment reaches the runtime stage, not the sources or the build tools.
    copies = [rest for w, rest in stage if w == "COPY"]
    assert copies == ["--from=build /opt/apex-mcp /opt/apex-mcp"]
    env = only(stage, "ENV")
    assert "PORT=8081" in env and "APEX_DB=/data/apex.db" in env
    assert only(stage, "EXPOSE") == "8081"
    labels = only(stage, "LABEL")
    name = json.loads((MANIFESTS / "server.json").read_text())["name"]
    assert f'io.modelcontextprotocol.server.name="{name}"' in labels


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*"  # everything out (.venv, .git, tests, node_modules), then:
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    copied = set()
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            copied.update(part.rstrip("/") for part in rest.split()[:-1])
    assert copied == allowed == {"pyproject.toml", "README.md", "apex_mcp"}
    assert all((ROOT / path).exists() for path in copied)


def entrypoint() -> list[str]:
    command: list[str] = json.loads(only(final_stage(), "ENTRYPOINT"))
    return command


def container_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The image's environment, here: its PATH holds apex-mcp, its HOME and data are tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APEX_")}
    env.update(
        PATH=f"{dev_bin()}{os.pathsep}{os.environ['PATH']}",
        HOME=str(tmp_path),
        APEX_DB=str(tmp_path / "apex.db"),
        APEX_DISCOVER_LOCAL_MINERS="false",
    )
    env.update(extra)
    return env


@dataclass
class Run:
    output: str = ""  # all the process printed, once it has stopped


@contextmanager
def running(command: list[str], env: dict[str, str], port: int) -> Iterator[Run]:
    """Run the container's command until the block ends, then stop it as docker stop does;
    ``output`` is then what it printed."""
    run = Run()
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log:
        path = Path(log.name)
    with path.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process)
        yield run
    finally:
        process.send_signal(signal.SIGTERM)  # what docker stop sends: PID 1 is the server
        try:
            code = wait_exit(process, what="the entrypoint to stop on SIGTERM", timeout=15)
            assert code == 0, path.read_text()[-3000:]
        finally:
            run.output = path.read_text()
            path.unlink(missing_ok=True)


def test_the_entrypoint_serves_mcp_on_port_with_a_token(tmp_path: Path) -> None:
    command = entrypoint()
    assert command[:2] == ["/bin/sh", "-c"] and command[2].startswith("exec apex-mcp serve --http")
    port, token = free_port(), secrets.token_hex(16)
    key = "sk-in-a-query-" + secrets.token_hex(8)
    env = container_env(tmp_path, PORT=str(port), APEX_HTTP_TOKEN=token, APEX_LOG_LEVEL="DEBUG")
    with running(command, env, port) as run:
        base = f"http://127.0.0.1:{port}"
        with httpx2.Client(base_url=base, timeout=30) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            assert http.post("/mcp", json=INITIALIZE, headers=ACCEPT).status_code == 401
            auth = {**ACCEPT, "authorization": f"Bearer {token}"}
            # Configuration in the query string, as Smithery sends it: ignored, never logged.
            answer = http.post(
                f"/mcp?minerApiKey={key}&apexApiKey={key}", json=INITIALIZE, headers=auth
            )
            assert answer.status_code == 200, answer.text
            assert version_in_init() in answer.text
        health = run_process(
            json.loads(only(final_stage(), "HEALTHCHECK").split(" CMD ", 1)[1]),
            what="the HEALTHCHECK command",
            timeout=30,
            env=env,
        )
        assert health.returncode == 0, health.stderr
    assert "apex-mcp" in run.output  # its banner: the output was read
    assert key not in run.output and token not in run.output


def test_the_entrypoint_refuses_to_serve_without_a_token(tmp_path: Path) -> None:
    done = run_process(
        entrypoint(),
        what="the entrypoint to refuse and exit",
        timeout=60,
        env=container_env(tmp_path, PORT=str(free_port())),
    )
    assert done.returncode != 0 and "APEX_HTTP_TOKEN" in done.stderr


def test_an_empty_token_counts_as_none(tmp_path: Path) -> None:
    settings = settings_from(container_env(tmp_path, APEX_HTTP_TOKEN=""))
    with pytest.raises(SystemExit, match="APEX_HTTP_TOKEN"):
        create_http_app(build_server(settings), settings, "0.0.0.0", 8081)


def smithery() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "smithery.yaml").read_text())
    return data


def test_smithery_builds_this_dockerfile_and_starts_it_over_http() -> None:
    data = smithery()
    assert data["runtime"] == "container"
    assert (ROOT / data["build"]["dockerBuildPath"] / data["build"]["dockerfile"]).is_file()
    assert data["env"] == {"APEX_HTTP_SESSION_CONFIG": "true"}
    assert "APEX_HTTP_SESSION_CONFIG" in settings_env_names()
    start = data["startCommand"]
    assert start["type"] == "http"
    schema = start["configSchema"]
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(start["exampleConfig"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"minerApiKey": 42}, schema)
    # Smithery's limits on a configuration schema: 20 fields, 1 KB.
    assert len(schema["properties"]) <= 20
    assert len(json.dumps(schema, separators=(",", ":"))) <= 1024
    # Each option is a session setting the server reads, the example among them; keys are
    # write-only.
    assert tuple(schema["properties"]) == FIELD_NAMES
    assert parse_query(urlencode(start["exampleConfig"])).miner == "openrouter"
    for name, option in schema["properties"].items():
        assert option.get("writeOnly", False) == name.endswith("ApiKey"), name


def test_the_entrypoint_as_smithery_runs_it_serves_each_session_its_miner(tmp_path: Path) -> None:
    """Smithery's env, no token, the configuration in the query string of every request:
    the session's miner answers with the session's key, and no key reaches the output."""
    key = "sk-session-" + secrets.token_hex(8)
    miner = FakeOpenAI(models=["m1"], api_key=key, answer="hello from the session's miner")
    with serve_openai(miner) as miner_url:
        port = free_port()
        env = container_env(
            tmp_path,
            **smithery()["env"],
            PORT=str(port),
            APEX_LOG_LEVEL="DEBUG",
            APEX_ALLOW_PRIVATE_ADDRESSES="true",  # the fake miner is on 127.0.0.1
        )
        query = urlencode({"miner": miner_url, "minerApiKey": key, "minerModel": "m1"})
        with running(entrypoint(), env, port) as run:
            calls = [
                INITIALIZE,
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "chat", "arguments": {"user_prompt": "hi"}},
                },
            ]
            with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                headers = dict(ACCEPT)
                answers = []
                for message in calls:
                    answer = http.post(f"/mcp?{query}", json=message, headers=headers)
                    assert answer.status_code in (200, 202), answer.text
                    headers["mcp-session-id"] = answer.headers.get(
                        "mcp-session-id", headers.get("mcp-session-id", "")
                    )
                    answers.append(answer.text)
    assert "hello from the session's miner" in answers[-1]
    assert [c.headers["authorization"] for c in miner.calls] == [f"Bearer {key}"]
    assert "without a token" in run.output and "DEBUG" in run.output
    assert key not in run.output
