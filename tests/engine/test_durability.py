"""The gateway as a real process: kill -9 during a burst of writes loses no acknowledged write."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError
from apex_mcp.apex.remote import RemoteApex
from tests.servers import free_port, gateway_process, run_process

pytestmark = pytest.mark.anyio


async def test_kill_9_mid_burst_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db, port = tmp_path / "apex.db", free_port()
    acknowledged: list[str] = []
    with gateway_process(db, port) as process:
        async with RemoteApex(f"http://127.0.0.1:{port}", timeout=10, max_retries=0) as client:

            async def writer(worker: int) -> None:
                for n in range(10_000):
                    request = m.CreateChatAndCompletionRequest(
                        user_prompt=f"worker {worker} write {n}", chat_type="apex"
                    )
                    try:
                        created = await client.create_chat_and_completion(request)
                    except ApexError:
                        return  # the process is gone
                    assert created.parsed_chat is not None
                    acknowledged.append(created.parsed_chat.id)

            async def killer() -> None:
                while len(acknowledged) < 300:
                    await anyio.sleep(0.01)
                os.kill(process.pid, signal.SIGKILL)

            async with anyio.create_task_group() as tg:
                for worker in range(8):
                    tg.start_soon(writer, worker)
                tg.start_soon(killer)
        assert process.wait() == -signal.SIGKILL

    assert len(acknowledged) >= 300
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in conn.execute("SELECT id FROM chats")}
    assert set(acknowledged) <= stored

    # And the gateway comes back on the same file, with every chat.
    with gateway_process(db, port):
        async with RemoteApex(f"http://127.0.0.1:{port}") as client:
            sessions = await client.get_chat_sessions(m.GetChatSessionsRequest())
    assert set(acknowledged) <= {s.id for s in sessions.chat_sessions}


async def test_gateway_speaks_http1_too(tmp_path: Path) -> None:
    import httpx2

    port = free_port()
    with gateway_process(tmp_path / "apex.db", port):
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http1:
            answer = await http1.post(
                "/apex.v1.ApexService/CreateChatAndCompletion",
                json={"userPrompt": "over HTTP/1.1", "chatType": "apex", "completionType": "basic"},
            )
    assert answer.http_version == "HTTP/1.1"
    assert answer.status_code == 200
    assert answer.json()["parsedCompletion"]["userPromptText"] == "over HTTP/1.1"


def test_gateway_refuses_to_listen_beyond_loopback_without_keys(tmp_path: Path) -> None:
    done = run_process(
        [
            sys.executable,
            "-m",
            "apex_mcp",
            "gateway",
            "--host",
            "0.0.0.0",
            "--db",
            str(tmp_path / "a.db"),
        ],
        what="the gateway to refuse and exit",
        timeout=60,
    )
    assert done.returncode != 0
    assert "APEX_GATEWAY_KEYS" in done.stderr
