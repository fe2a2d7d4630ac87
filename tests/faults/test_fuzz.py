"""Every tool, fuzzed from its inputSchema and beyond it, against a real server process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.fuzz import TOO_LARGE, fuzz_every_tool, send_raw_requests
from tests.faults.processes import fake_world, mcp_http_process, tracebacks
from tests.servers import waiting_for


def test_every_tool_answers_any_input_with_a_result_or_a_clean_error(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with fake_world(tmp_path / "apex.db") as world, mcp_http_process(world.env, log) as (url, _):
        report = fuzz_every_tool(url, in_schema=8, out_of_schema=5, derandomize=True)
    print(f"{sum(report.calls.values())} calls, {sum(report.tool_errors.values())} tool errors")
    assert len(report.calls) == 16  # every tool was called
    assert report.summary() == [], "\n".join(report.summary())
    assert tracebacks(log) == []


@pytest.mark.anyio
async def test_malformed_json_rpc_gets_a_clean_answer_and_the_server_stays_up(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    with (
        fake_world(tmp_path / "apex.db") as world,
        mcp_http_process(world.env, log) as (url, _),
        waiting_for("answers to malformed requests", 120),
    ):
        findings, answers = await send_raw_requests(url)
    assert findings == []
    status, text = answers[TOO_LARGE]  # was: the connection dropped, no reason given
    assert status == 413
    assert "over the limit of 4,194,304: send less" in text
    assert tracebacks(log) == []
