"""Paged reads through the MCP tools: list_chats, get_chat and search_chats on the embedded
engine page through the store (its signed cursors), and on an Apex server as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from apex_mcp.server.app import build_server
from apex_mcp.server.outputs import encode_cursor
from tests.server.harness import Backend, backend, connect, text_of
from tests.server.test_hosted_sessions import call, hosting, session

pytestmark = pytest.mark.anyio

START_AGAIN = "start again from the first page"


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Backend]:
    with backend("local", tmp_path) as b:
        yield b


async def new_chat(client: Client, prompt: str, **more: Any) -> str:
    created = await call(client, "create_chat", user_prompt=prompt, **more)
    chat_id: str = created["chat"]["id"]
    return chat_id


async def list_page(client: Client, cursor: str | None, **more: Any) -> dict[str, Any]:
    return await call(client, "list_chats", **more, **({"cursor": cursor} if cursor else {}))


async def test_paging_gives_every_chat_once_while_chats_are_created_and_updated(
    local: Backend,
) -> None:
    async with connect("stdio", local.env) as client:
        before = [await new_chat(client, f"chat number {i}") for i in range(13)]
        seen: list[str] = []
        created: list[str] = []
        cursor: str | None = None
        while True:
            out = await list_page(client, cursor, limit=4)
            seen += [c["id"] for c in out["chats"]]
            cursor = out.get("next_cursor")
            if cursor is None:
                break
            # Between pages: a new chat, one already listed renamed, one not yet listed given
            # a new turn (both move it to the top of "recently updated").
            created.append(await new_chat(client, f"made while paging {len(created)}"))
            await call(client, "update_chat", chat_id=seen[0], title=f"renamed {len(created)}")
            unseen = next(i for i in before if i not in seen)
            await call(client, "create_completion", chat_id=unseen, user_prompt="one more turn")
    assert len(seen) == len(set(seen)), "a chat came twice"
    assert set(before) <= set(seen), "a chat never came"
    assert seen[: len(before)] == list(reversed(before))  # newest first, as listed at the start
    assert len(created) == 3  # 13 chats in pages of 4: three turns of the page


async def test_paging_by_chat_type_lists_only_that_type_each_once(local: Backend) -> None:
    async with Client(build_server(local.settings())) as client:
        gravity = [await new_chat(client, f"g{i}", chat_type="gravity") for i in range(5)]
        for i in range(4):
            await new_chat(client, f"a{i}")
        seen: list[str] = []
        cursor: str | None = None
        while True:
            out = await list_page(client, cursor, limit=2, chat_type="gravity")
            seen += [c["id"] for c in out["chats"]]
            assert {c["chat_type"] for c in out["chats"]} == {"gravity"}
            cursor = out.get("next_cursor")
            if cursor is None:
                break
    assert seen == list(reversed(gravity))


async def test_an_altered_or_misplaced_cursor_is_refused_with_what_to_do(local: Backend) -> None:
    async with Client(build_server(local.settings())) as client:
        for i in range(3):
            await new_chat(client, f"note {i} about tea")
        cursor = (await list_page(client, None, limit=1))["next_cursor"]
        found = await call(client, "search_chats", search_term="tea", limit=1)
        search_cursor = found["next_cursor"]
        altered = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("list_chats", {"cursor": altered}),
            ("list_chats", {"cursor": "not a cursor at all"}),
            ("list_chats", {"cursor": encode_cursor(1)}),  # how an Apex server's pages go
            ("list_chats", {"cursor": search_cursor}),
            ("list_chats", {"cursor": cursor, "chat_type": "gravity"}),
            ("search_chats", {"search_term": "tea", "cursor": cursor}),
            ("search_chats", {"search_term": "coffee", "cursor": search_cursor}),
        ]
        for tool, arguments in attempts:
            refused = await client.call_tool(tool, arguments)
            assert refused.is_error, (tool, arguments)
            assert "invalid_argument" in text_of(refused) and START_AGAIN in text_of(refused)
        # The genuine ones still page on.
        second = await list_page(client, cursor, limit=1)
        more = await call(client, "search_chats", search_term="tea", limit=1, cursor=search_cursor)
    assert [c["title"] for c in second["chats"]] == ["note 1 about tea"]
    assert [c["title"] for c in more["chats"]] == ["note 1 about tea"]


async def test_another_users_cursor_and_chat_are_refused(tmp_path: Path) -> None:
    with hosting(tmp_path) as h:
        async with session(h.url, h.query("alice")) as alice:
            mine = [await new_chat(alice, f"alice's secret {i}") for i in range(3)]
            cursor = (await list_page(alice, None, limit=1))["next_cursor"]
            search_cursor = (await call(alice, "search_chats", search_term="secret", limit=1))[
                "next_cursor"
            ]
        async with session(h.url, h.query("bob")) as bob:
            await new_chat(bob, "bob's own")
            refused = [
                await bob.call_tool("list_chats", {"cursor": cursor}),
                await bob.call_tool(
                    "search_chats", {"search_term": "secret", "cursor": search_cursor}
                ),
            ]
            not_his = await bob.call_tool("get_chat", {"chat_id": mine[0]})
            searched = await call(bob, "search_chats", search_term="secret")
        async with session(h.url, h.query("alice")) as alice_again:
            rest = await list_page(alice_again, cursor, limit=5)
    for result in refused:
        assert result.is_error and START_AGAIN in text_of(result)
    assert not_his.is_error and "not_found" in text_of(not_his)
    assert searched["chats"] == []
    assert [c["id"] for c in rest["chats"]] == [mine[1], mine[0]]  # hers still pages on


async def test_two_stores_do_not_take_each_others_cursors(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with backend("local", tmp_path / "one") as one, backend("local", tmp_path / "two") as two:
        async with connect("stdio", one.env) as first, connect("stdio", two.env) as second:
            for client in (first, second):
                for i in range(2):
                    await new_chat(client, f"chat {i}")
            cursor = (await list_page(first, None, limit=1))["next_cursor"]
            refused = await second.call_tool("list_chats", {"cursor": cursor})
    assert refused.is_error and START_AGAIN in text_of(refused)


@pytest.fixture(params=["local", "remote"])
def apex(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with backend(request.param, tmp_path) as b:
        yield b


async def test_search_finds_chats_with_their_titles_each_once(apex: Backend) -> None:
    async with Client(build_server(apex.settings())) as client:
        ids = {}
        for i in range(5):
            ids[f"Jasmine {i}"] = await new_chat(
                client, f"how to brew jasmine tea, take {i}", title=f"Jasmine {i}"
            )
        await new_chat(client, "something else entirely", title="Other")
        # A second matching turn in one chat: still one result for it.
        await call(
            client, "create_completion", chat_id=ids["Jasmine 2"], user_prompt="jasmine again"
        )
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"search_term": "jasmine", "limit": 2}
            out = await call(
                client, "search_chats", **args, **({"cursor": cursor} if cursor else {})
            )
            found += out["chats"]
            cursor = out.get("next_cursor")
            if cursor is None:
                break
        text = text_of(await client.call_tool("search_chats", {"search_term": "jasmine"}))
    assert sorted((c["title"], c["id"]) for c in found) == sorted(ids.items())
    assert all(c["chat_type"] == "apex" for c in found)
    assert found[0]["title"] == "Jasmine 2"  # the newest matching turn first
    assert "Jasmine 4" in text


async def test_get_chat_reads_the_chat_by_id_on_either_backend(apex: Backend) -> None:
    async with Client(build_server(apex.settings())) as client:
        wanted = await new_chat(client, "the one to read", title="Wanted")
        for i in range(3):
            await new_chat(client, f"filler {i}")
        got = await call(client, "get_chat", chat_id=wanted)
        resource = await client.read_resource(f"apex://chats/{wanted}")
        prompt = await client.get_prompt("continue_chat", {"chat_id": wanted})
    assert got["chat"]["title"] == "Wanted"
    assert [c["user_prompt_text"] for c in got["completions"]] == ["the one to read"]
    assert "Wanted" in resource.contents[0].text  # type: ignore[union-attr]
    assert "the one to read" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_the_chat_index_shows_the_newest_and_says_where_the_rest_are(
    local: Backend,
) -> None:
    from mcp_types import ResourceTemplateReference

    from apex_mcp.server.resources import INDEX_CHATS

    async with Client(build_server(local.settings())) as client:
        made = [await new_chat(client, f"chat {i}") for i in range(INDEX_CHATS + 3)]
        index = (await client.read_resource("apex://chats")).contents[0].text  # type: ignore[union-attr]
        linked = [line for line in index.splitlines() if line.startswith("- [")]
        assert len(linked) == INDEX_CHATS
        assert f"apex://chats/{made[-1]})" in linked[0]  # newest first
        assert f"apex://chats/{made[2]})" not in index  # the oldest three are left out
        assert "list_chats tool pages through all" in index
        ref = ResourceTemplateReference(type="ref/resource", uri="apex://chats/{chat_id}")
        offered = await client.complete(ref, {"name": "chat_id", "value": made[-1][:8]})
        assert made[-1] in offered.completion.values
