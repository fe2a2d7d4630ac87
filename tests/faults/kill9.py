"""kill -9 under write load: writers record every write the gateway acknowledged; the gateway
is killed at a random moment, restarted on the same SQLite file, and so on; then an audit
checks that every acknowledged write is there, intact, once, in a sound database."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError
from apex_mcp.apex.remote import RemoteApex
from tests.servers import free_port, gateway_process, waiting_for


@dataclass
class Ledger:
    """What the writers sent and what the gateway acknowledged."""

    chats: dict[str, str] = field(default_factory=dict)  # chat id -> its first prompt
    prompts: dict[str, tuple[str, str]] = field(default_factory=dict)  # completion -> chat, prompt
    # completion id -> every completion_text sent for it, in order, and how many were
    # acknowledged: the stored text is the last acknowledged one or one sent after it.
    texts: dict[str, list[str]] = field(default_factory=dict)
    texts_acked: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    acknowledged: int = 0
    # Failures while the gateway was meant to be up (before its kill): findings.
    errors_while_up: list[str] = field(default_factory=list)


@dataclass
class Audit:
    integrity: str
    foreign_key_violations: int
    missing: list[str]
    altered: list[str]
    duplicated: list[str]
    chats_stored: int
    completions_stored: int

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and not (
            self.foreign_key_violations or self.missing or self.altered or self.duplicated
        )


async def kill9_rounds(
    db: Path,
    ledger: Ledger,
    *,
    rounds: int,
    writers: int,
    acks_before_kill: tuple[int, int],
    rng: random.Random,
) -> None:
    """``rounds`` times: start the gateway on ``db``, let ``writers`` write, kill -9 it once
    a random number of writes (in ``acks_before_kill``) were acknowledged, plus a random
    fraction of a second."""
    for round_ in range(rounds):
        due = ledger.acknowledged + rng.randint(*acks_before_kill)
        with waiting_for(f"round {round_} of kill -9 under writes", 120):
            await kill9_round(db, ledger, f"r{round_}", writers, due, rng)


async def kill9_round(
    db: Path, ledger: Ledger, name: str, writers: int, due: int, rng: random.Random
) -> None:
    """Start the gateway, write with ``writers`` clients, kill -9 it once ``due`` writes in
    all were acknowledged (or every writer stopped), a random moment later."""
    killed = anyio.Event()
    url, port = "", free_port()
    stopped = 0

    async def writer(prefix: str) -> None:
        nonlocal stopped
        try:
            await write_until_failure(url, ledger, prefix, killed, random.Random(rng.random()))
        finally:
            stopped += 1

    with gateway_process(db, port) as process:
        url = f"http://127.0.0.1:{port}"

        async def killer() -> None:
            while ledger.acknowledged < due and stopped < writers:
                await anyio.sleep(0.005)
            await anyio.sleep(rng.uniform(0, 0.2))
            killed.set()
            os.kill(process.pid, signal.SIGKILL)

        async with anyio.create_task_group() as tg:
            for worker in range(writers):
                tg.start_soon(writer, f"{name}w{worker}")
            tg.start_soon(killer)
        assert process.wait() == -signal.SIGKILL


async def write_until_failure(
    url: str, ledger: Ledger, prefix: str, killed: anyio.Event, rng: random.Random
) -> None:
    """Create chats, add completions to them and rewrite their texts, recording each write
    as it is acknowledged, until a call fails (the gateway is gone). Every prompt and text is
    unique, so that the audit can tell a write's row from any other."""
    own_chats: list[str] = []
    own_completions: list[str] = []
    async with RemoteApex(url, timeout=10, max_retries=0) as client:
        for n in range(1_000_000):
            tag = f"{prefix}n{n}"
            roll = rng.random()
            ledger.sent += 1
            try:
                if not own_chats or roll < 0.4:
                    prompt = f"chat {tag}"
                    created = await client.create_chat_and_completion(
                        m.CreateChatAndCompletionRequest(user_prompt=prompt, chat_type="apex")
                    )
                    assert created.parsed_chat and created.parsed_completion
                    chat_id, completion_id = created.parsed_chat.id, created.parsed_completion.id
                    ledger.chats[chat_id] = prompt
                    ledger.prompts[completion_id] = (chat_id, prompt)
                    own_chats.append(chat_id)
                    own_completions.append(completion_id)
                elif not own_completions or roll < 0.75:
                    chat_id, prompt = rng.choice(own_chats), f"turn {tag}"
                    added = await client.create_completion(
                        m.CreateCompletionRequest(chat_id=chat_id, user_prompt=prompt)
                    )
                    assert added.parsed_completion
                    ledger.prompts[added.parsed_completion.id] = (chat_id, prompt)
                    own_completions.append(added.parsed_completion.id)
                else:
                    completion_id, text = rng.choice(own_completions), f"text {tag}"
                    sent = ledger.texts.setdefault(completion_id, [])
                    sent.append(text)
                    await client.update_completion_attributes(
                        m.UpdateCompletionAttributesRequest(
                            completion_id=completion_id, completion_text=text
                        )
                    )
                    ledger.texts_acked[completion_id] = len(sent)
            except ApexError as error:
                if not killed.is_set():
                    ledger.errors_while_up.append(f"{prefix}: {error.code}: {error.message}")
                return
            ledger.acknowledged += 1


def audit(db: Path, ledger: Ledger) -> Audit:
    """Compare the database with what was acknowledged."""
    with sqlite3.connect(db) as conn:
        integrity = "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        fk_violations = len(conn.execute("PRAGMA foreign_key_check").fetchall())
        chats = {row[0] for row in conn.execute("SELECT id FROM chats")}
        completions = {
            row[0]: (row[1], row[2], row[3])
            for row in conn.execute(
                "SELECT id, chat_id, user_prompt_text, completion_text FROM completions"
            )
        }
    missing = [f"chat {c}" for c in ledger.chats if c not in chats]
    missing += [f"completion {c}" for c in ledger.prompts if c not in completions]
    altered = []
    for completion_id, (chat_id, prompt) in ledger.prompts.items():
        if completion_id not in completions:
            continue
        stored_chat, stored_prompt, stored_text = completions[completion_id]
        if (stored_chat, stored_prompt) != (chat_id, prompt):
            altered.append(f"completion {completion_id}: {stored_chat}/{stored_prompt!r}")
        acked = ledger.texts_acked.get(completion_id, 0)
        allowed = ledger.texts.get(completion_id, [])[max(acked - 1, 0) :]
        if acked and stored_text not in allowed:
            altered.append(f"completion {completion_id}: text {stored_text!r}, sent {allowed}")
    # Every prompt was sent once: a prompt stored twice is a write applied twice.
    counts = Counter(prompt for _, prompt, _ in completions.values())
    duplicated = [f"{prompt!r} x{n}" for prompt, n in counts.items() if n > 1]
    return Audit(
        integrity, fk_violations, missing, altered, duplicated, len(chats), len(completions)
    )
