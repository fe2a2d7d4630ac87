"""kill -9 the gateway under write load, again and again: no acknowledged write is lost,
altered or applied twice, and the database stays sound (tests/engine/test_durability.py
kills once, mid-burst; this kills at random moments over several restarts of one file)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from apex_mcp.apex import models as m
from apex_mcp.apex.remote import RemoteApex
from tests.faults.kill9 import Ledger, audit, kill9_rounds
from tests.servers import free_port, gateway_process

pytestmark = pytest.mark.anyio


async def test_repeated_kill_9_under_writes_loses_alters_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    db, ledger, rng = tmp_path / "apex.db", Ledger(), random.Random(11)
    await kill9_rounds(db, ledger, rounds=3, writers=4, acks_before_kill=(30, 120), rng=rng)

    print(f"{ledger.acknowledged} of {ledger.sent} writes acknowledged")
    assert ledger.acknowledged >= 3 * 30
    assert ledger.errors_while_up == []
    found = audit(db, ledger)
    assert found.integrity == "ok"
    assert found.foreign_key_violations == 0
    assert found.missing == []
    assert found.altered == []
    assert found.duplicated == []

    # The gateway comes back on the file and serves the acknowledged writes as they were.
    port = free_port()
    sample = rng.sample(sorted(ledger.prompts), 20)
    with gateway_process(db, port):
        async with RemoteApex(f"http://127.0.0.1:{port}") as client:
            for completion_id in sample:
                got = await client.get_chat_completion(
                    m.GetChatCompletionRequest(completion_id=completion_id)
                )
                assert (got.chat_id, got.user_prompt_text) == ledger.prompts[completion_id]
