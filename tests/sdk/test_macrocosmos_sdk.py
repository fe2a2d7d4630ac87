"""The official Macrocosmos Python SDK (2.1.0, gRPC) against ``apex-mcp gateway``: chat,
unary and streamed, web search and a deep research job followed to its report, on the tests'
fake miner and fake web, unchanged, as its users drove the hosted service."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.faults.processes import fake_world
from tests.servers import free_port, gateway_process, run_process

KEY = "gk-alice-SDK-0b7e"


def test_the_macrocosmos_sdk_chats_searches_and_researches_over_grpc(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "gateway.db"
    with fake_world(db) as world:
        env = {**world.env, "APEX_GATEWAY_KEYS": json.dumps({"alice": KEY})}
        with gateway_process(db, port, env):
            done = run_process(
                [sys.executable, "-m", "tests.sdk.macrocosmos_client", f"127.0.0.1:{port}", KEY],
                what="the Macrocosmos SDK's calls to the gateway",
                timeout=180,
            )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["chat"]
    assert "".join(seen["stream"])
    assert seen["search"] and all(url.startswith("http://127.0.0.1") for url in seen["search"])
    assert seen["research"]["status"] == "completed"
    # The report the echoing miner wrote (it cites nothing, so it lists no sources).
    assert seen["research"]["report"].startswith("echo: Question: What do bees do?")
    assert "UNAUTHENTICATED" in seen["bad_key"]
