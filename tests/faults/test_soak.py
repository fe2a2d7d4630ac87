"""A bounded soak over streamable HTTP against a real server process: no call fails, and the
server's resident memory grows by less than a stated bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.processes import fake_world, mcp_http_process, tracebacks
from tests.faults.soak import soak
from tests.servers import waiting_for

pytestmark = pytest.mark.anyio

GROWTH_BOUND_MIB = 20


async def test_concurrent_sessions_over_http_fail_nothing_and_grow_memory_boundedly(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    with (
        fake_world(tmp_path / "apex.db") as world,
        mcp_http_process(world.env, log) as (url, pid),
        waiting_for("the soak's calls", 120),
    ):
        report = await soak(url, pid, clients=4, calls_per_client=50, calls_per_session=15)
    print("\n".join(report.lines()))
    assert report.calls == 4 * 50
    assert report.errors == []
    assert report.growth_kib < GROWTH_BOUND_MIB * 1024, "\n".join(report.lines())
    assert tracebacks(log) == []
