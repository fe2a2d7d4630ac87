"""Writes through the gateway are safe to send again: a lost reply is answered on retry with
the same reply, never a second row; and a long-lived connection is never recycled under load.

A TCP proxy on 127.0.0.1 between RemoteApex and the gateway cuts the connection once the
server has started answering: the write was done, the reply lost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, suppress
from pathlib import Path

import anyio
import httpx2
import pytest
from anyio.abc import SocketAttribute, SocketStream
from pydantic import SecretStr

from apex_mcp.apex import connect
from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.config import Settings
from apex_mcp.gateway import create_gateway_app
from tests.servers import free_port, gateway_process, serve_asgi, waiting_for

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice-key-0001", "bob-key-0002"
CREATE = "/apex.v1.ApexService/CreateChatAndCompletion"


def create_request(prompt: str = "hello") -> m.CreateChatAndCompletionRequest:
    return m.CreateChatAndCompletionRequest(
        user_prompt=prompt, chat_type="apex", completion_type="basic", title="t"
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "apex.db"


@pytest.fixture
def gateway(db: Path) -> Iterator[str]:
    settings = Settings(
        db=db,
        discover_local_miners=False,
        gateway_keys={"alice": SecretStr(ALICE), "bob": SecretStr(BOB)},
    )
    with serve_asgi(create_gateway_app(settings)) as url:
        yield url


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


class CuttingProxy:
    """Forwards TCP to ``upstream``; closes both sides of a connection the moment the server
    starts the n-th reply (an HTTP/2 HEADERS frame on a new stream) for n in ``cut_at``,
    counting over every connection, that reply unsent."""

    def __init__(self, upstream: int, cut_at: set[int]) -> None:
        self.upstream = upstream
        self.cut_at = cut_at
        self.connections = 0
        self.replies = 0
        self.cut = 0

    def cuts_here(self, frames: bytearray, streams: set[int]) -> bool:
        """Whether a reply to cut starts in ``frames`` (from the start of the connection);
        ``streams``: the streams whose replies were counted already."""
        for stream in _reply_streams(frames):
            if stream not in streams:
                streams.add(stream)
                self.replies += 1
                if self.replies in self.cut_at:
                    return True
        return False

    async def handle(self, client: SocketStream) -> None:
        self.connections += 1
        connected = await anyio.connect_tcp("127.0.0.1", self.upstream)
        async with client, connected as server, anyio.create_task_group() as tg:

            async def up() -> None:
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    async for data in client:
                        await server.send(data)
                tg.cancel_scope.cancel()

            async def down() -> None:
                frames, streams = bytearray(), set[int]()
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    async for data in server:
                        frames += data
                        if self.cuts_here(frames, streams):
                            self.cut += 1
                            break
                        await client.send(data)
                tg.cancel_scope.cancel()

            tg.start_soon(up)
            tg.start_soon(down)


def _reply_streams(frames: bytearray) -> list[int]:
    """The streams of the HEADERS frames among the whole HTTP/2 frames in ``frames``: the
    requests the server has begun to answer."""
    at, streams = 0, []
    while at + 9 <= len(frames):
        length = int.from_bytes(frames[at : at + 3], "big")
        kind, stream = frames[at + 3], int.from_bytes(frames[at + 5 : at + 9], "big") & 0x7FFFFFFF
        if at + 9 + length > len(frames):
            break
        if kind == 0x1 and stream != 0:
            streams.append(stream)
        at += 9 + length
    return streams


@asynccontextmanager
async def cutting_proxy(
    upstream_url: str, cut_at: set[int]
) -> AsyncIterator[tuple[str, CuttingProxy]]:
    proxy = CuttingProxy(int(upstream_url.rsplit(":", 1)[1]), cut_at)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy.handle)
        yield f"http://127.0.0.1:{port}", proxy
        tg.cancel_scope.cancel()


async def test_a_create_whose_reply_was_lost_is_retried_into_one_row(
    gateway: str, db: Path
) -> None:
    async with (
        cutting_proxy(gateway, cut_at={2}) as (through_proxy, proxy),
        RemoteApex(through_proxy, ALICE, timeout=20, backoff_base=0.05) as alice,
    ):
        await alice.get_chat_sessions(m.GetChatSessionsRequest())  # it learns the server
        created = (await alice.create_chat_and_completion(create_request("only once"))).parsed_chat
    assert created is not None
    assert (proxy.cut, proxy.connections) == (1, 2)  # the create's reply was lost, then retried
    assert rows(db, "SELECT id, user_id FROM chats") == [(created.id, "alice")]
    assert len(rows(db, "SELECT id FROM completions")) == 1
    async with RemoteApex(gateway, ALICE) as alice:
        listed = await alice.get_chat_sessions(m.GetChatSessionsRequest())
    assert [c.id for c in listed.chat_sessions] == [created.id]


async def test_each_keyed_write_is_done_once_when_its_reply_is_lost(gateway: str, db: Path) -> None:
    async with RemoteApex(gateway, ALICE) as direct:
        chat = (await direct.create_chat_and_completion(create_request())).parsed_chat
    assert chat is not None
    async with (
        cutting_proxy(gateway, cut_at={2, 4, 6}) as (through_proxy, proxy),
        RemoteApex(through_proxy, ALICE, timeout=20, backoff_base=0.05) as alice,
    ):
        await alice.get_chat_sessions(m.GetChatSessionsRequest())
        added = await alice.create_completion(
            m.CreateCompletionRequest(chat_id=chat.id, user_prompt="more", completion_type="basic")
        )
        assert added.parsed_completion is not None
        await alice.update_chat_attributes(
            m.UpdateChatAttributesRequest(chat_id=chat.id, attributes={"title": "renamed"})
        )
        deleted = await alice.delete_completions(
            m.DeleteCompletionsRequest(completion_ids=[added.parsed_completion.id])
        )
    assert proxy.cut == 3
    assert deleted.success  # the retry got the first reply, not "nothing left to delete"
    assert rows(db, "SELECT title FROM chats") == [("renamed",)]
    assert len(rows(db, "SELECT id FROM completions")) == 1


async def test_a_write_is_not_sent_again_to_a_server_not_known_to_keep_replies(
    gateway: str, db: Path
) -> None:
    # The first call is the write: the client has not yet heard that this server keeps
    # replies (another server might do the write twice), so it reports the loss.
    async with (
        cutting_proxy(gateway, cut_at={1}) as (through_proxy, proxy),
        RemoteApex(through_proxy, ALICE, timeout=20, backoff_base=0.05) as alice,
    ):
        with pytest.raises(ApexError) as info:
            await alice.create_chat_and_completion(create_request())
    assert info.value.code is Code.UNAVAILABLE
    assert (proxy.cut, proxy.connections) == (1, 1)
    assert len(rows(db, "SELECT id FROM chats")) == 1


async def test_a_key_is_one_request_of_one_user(gateway: str, db: Path) -> None:
    def create(key: str, token: str, prompt: str) -> httpx2.Response:
        return httpx2.post(
            gateway + CREATE,
            json={"userPrompt": prompt, "chatType": "apex", "completionType": "basic"},
            headers={
                "authorization": f"Bearer {token}",
                connect.IDEMPOTENCY_KEY_HEADER: key,
            },
        )

    first = await anyio.to_thread.run_sync(create, "k-1", ALICE, "one")
    again = await anyio.to_thread.run_sync(create, "k-1", ALICE, "one")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    # Bob's key of the same name is his own: he gets his own chat, never Alice's reply.
    bobs = await anyio.to_thread.run_sync(create, "k-1", BOB, "one")
    assert bobs.status_code == 200 and bobs.json() != first.json()
    other = await anyio.to_thread.run_sync(create, "k-1", ALICE, "another prompt")
    assert other.status_code == 400 and other.json()["code"] == "invalid_argument"
    assert "send a new key with each new request" in other.json()["message"]
    bad = await anyio.to_thread.run_sync(create, "x" * 200, ALICE, "one")
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["message"]
    assert sorted(rows(db, "SELECT user_id FROM chats")) == [("alice",), ("bob",)]


async def test_an_answered_failure_of_a_write_is_not_retried(gateway: str) -> None:
    async with RemoteApex(gateway, ALICE, backoff_base=0.01) as alice:
        with pytest.raises(ApexError) as info:
            await alice.create_completion(
                m.CreateCompletionRequest(
                    chat_id="00000000-0000-4000-8000-000000000000",
                    user_prompt="x",
                    completion_type="basic",
                )
            )
    assert info.value.code is Code.NOT_FOUND


async def test_1200_creates_on_one_connection_all_succeed(tmp_path: Path) -> None:
    # hypercorn's default closes a connection after 1,000 requests, resetting those in flight.
    port, done, failures = free_port(), 0, []
    env = {"APEX_GATEWAY_KEYS": f'{{"alice": "{ALICE}"}}'}
    with gateway_process(tmp_path / "apex.db", port, env):
        async with RemoteApex(f"http://127.0.0.1:{port}", ALICE, max_retries=0) as alice:

            async def worker(count: int) -> None:
                nonlocal done
                for _ in range(count):
                    try:
                        await alice.create_chat_and_completion(create_request())
                        done += 1
                    except ApexError as error:
                        failures.append(error)

            with waiting_for("1,200 creates", 240):
                async with anyio.create_task_group() as tg:
                    for _ in range(24):
                        tg.start_soon(worker, 50)
    assert failures == [] and done == 1200
    assert len(rows(tmp_path / "apex.db", "SELECT id FROM chats")) == 1200


def keyed_create(url: str, key: str, prompt: str = "one") -> httpx2.Response:
    return httpx2.post(
        url + CREATE,
        json={"userPrompt": prompt, "chatType": "apex", "completionType": "basic"},
        headers={"authorization": f"Bearer {ALICE}", connect.IDEMPOTENCY_KEY_HEADER: key},
        timeout=30,
    )


async def test_tries_at_once_on_two_gateways_sharing_a_database_write_once(
    gateway: str, db: Path
) -> None:
    settings = Settings(
        db=db, discover_local_miners=False, gateway_keys={"alice": SecretStr(ALICE)}
    )
    answers: list[httpx2.Response] = []

    async def send(url: str) -> None:
        answers.append(await anyio.to_thread.run_sync(keyed_create, url, "same-key"))

    with serve_asgi(create_gateway_app(settings)) as other:
        async with anyio.create_task_group() as tg:
            for url in (gateway, other) * 4:
                tg.start_soon(send, url)
    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.text for a in answers}) == 1  # every try got the first reply
    assert len(rows(db, "SELECT id FROM chats")) == 1


async def test_a_first_try_cut_short_by_a_stopped_server_is_reported_not_redone(
    gateway: str, db: Path
) -> None:
    first = await anyio.to_thread.run_sync(keyed_create, gateway, "k-cut")
    assert first.status_code == 200
    # What a server killed mid-write leaves: the key claimed, no reply, minutes ago.
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE replies SET reply = NULL,"
            " created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-10 minutes')"
        )
    retry = await anyio.to_thread.run_sync(keyed_create, gateway, "k-cut")
    assert retry.status_code == 409 and retry.json()["code"] == "aborted"
    assert "check whether it was done" in retry.json()["message"]
    assert len(rows(db, "SELECT id FROM chats")) == 1


async def test_a_failed_write_with_a_key_can_be_tried_again(gateway: str, db: Path) -> None:
    def add(key: str, chat_id: str) -> httpx2.Response:
        return httpx2.post(
            gateway + "/apex.v1.ApexService/CreateCompletion",
            json={"chatId": chat_id, "userPrompt": "x", "completionType": "basic"},
            headers={"authorization": f"Bearer {ALICE}", connect.IDEMPOTENCY_KEY_HEADER: key},
        )

    missing = "00000000-0000-4000-8000-000000000000"
    failed = await anyio.to_thread.run_sync(add, "k-fail", missing)
    assert failed.status_code == 404
    assert rows(db, "SELECT key FROM replies") == []  # nothing kept: the key is free again
    again = await anyio.to_thread.run_sync(add, "k-fail", missing)
    assert again.status_code == 404 and again.json()["code"] == "not_found"
