"""The official MCP conformance suite (``@modelcontextprotocol/conformance``, pinned in
.ci/node) against ``apex-mcp serve --http``, over streamable HTTP.

It runs the suite's server scenarios that apply to a server without the suite's own fixture
tools, resources and prompts (``test_simple_text``, ``test://static-text``...): the others
call those by name. One server process, on the embedded engine with no miner (no scenario
asks for an answer), serves every scenario, a few at a time. A scenario passes when the suite
exits 0 and every check it made is a success; a failure shows the suite's own output.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tests.packaging.tooling import dev_bin, node_env, node_tool
from tests.servers import free_port, wait_listening

SCENARIOS = (
    "server-initialize",
    "logging-set-level",
    "ping",
    "completion-complete",
    "tools-list",
    "resources-list",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
)
AT_ONCE = 4  # each run is mostly Node starting up
SCENARIO_TIMEOUT = 120  # seconds for one run of the suite
COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # the suite colours its output whatever it is told


@contextmanager
def apex_mcp_over_http(tmp: Path) -> Iterator[str]:
    """``apex-mcp serve --http`` on a free loopback port; yields its /mcp URL, then stops it
    as an operator does and checks that it exited cleanly."""
    port, log = free_port(), tmp / "server.log"
    env = {
        "APEX_BACKEND": "local",
        "APEX_DB": str(tmp / "apex.db"),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
    }
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(dev_bin() / "apex-mcp"), "serve", "--http", "--port", str(port)],
            env=node_env(**env),
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


def run_scenario(url: str, scenario: str, results: Path) -> str | None:
    """None if the scenario passed, else why not: its failed checks and the suite's output."""
    command = [*node_tool("conformance"), "server", "--url", url, "--scenario", scenario]
    try:
        done = subprocess.run(
            [*command, "--output-dir", str(results)],
            env=node_env(),
            capture_output=True,
            text=True,
            timeout=SCENARIO_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as timeout:
        return f"the suite did not finish the scenario within {SCENARIO_TIMEOUT} s: {timeout}"
    checks = [
        check
        for found in results.glob(f"server-{scenario}-*/checks.json")
        for check in json.loads(found.read_text())
    ]
    failed = [c for c in checks if c.get("status") != "SUCCESS"]
    if done.returncode == 0 and checks and not failed:
        return None
    output = f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    summary = f"exit {done.returncode}, {len(checks)} checks, not passed: {json.dumps(failed)}"
    return f"{summary}\n{COLOURS.sub('', output)}"


def test_the_conformance_suite_passes_over_streamable_http(tmp_path: Path) -> None:
    node_tool("conformance")  # skipped or failed here, with the reason, when it is missing
    with apex_mcp_over_http(tmp_path) as url, ThreadPoolExecutor(AT_ONCE) as pool:
        outcomes = dict(
            zip(
                SCENARIOS,
                pool.map(lambda s: run_scenario(url, s, tmp_path / "results" / s), SCENARIOS),
                strict=True,
            )
        )
    failures = {scenario: why for scenario, why in outcomes.items() if why is not None}
    assert not failures, "\n\n".join(f"=== {s}: {why}" for s, why in failures.items())
