"""The store against real SQLite files and a real PostgreSQL database: what callers of the
engine's storage can rely on, whichever it is (``@sqlite_only``: about SQLite itself)."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.engine.store import Job, SqliteStore, Store, open_store
from apex_mcp.engine.store import sqlite as sqlite_store
from apex_mcp.engine.store.sqlite import fts_query
from tests.engine.conftest import sqlite_only
from tests.servers import waiting_for

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice", "bob"


async def new_chat(
    store: Store, prompt: str = "hello", *, user: str = ALICE, chat_type: str = "apex"
) -> tuple[str, str]:
    """(chat id, completion id) of a new chat."""
    chat, completion = await store.create_chat(
        user, user_prompt=prompt, chat_type=chat_type, completion_type="basic", title=None
    )
    return chat.id, completion.id


async def raises(code: Code, call: Awaitable[Any]) -> ApexError:
    with pytest.raises(ApexError) as caught:
        await call
    assert caught.value.code == code, caught.value
    return caught.value


def query(path: Path, sql: str) -> list[Any]:
    """Rows of ``sql`` run on the file by a plain sqlite3 connection of its own."""
    with closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(sql).fetchall()


def user_version(path: Path) -> int:
    version: int = query(path, "PRAGMA user_version")[0][0]
    return version


# --- chats and completions --------------------------------------------------------------------


async def test_create_chat_returns_the_chat_and_an_empty_first_completion(
    store: Store,
) -> None:
    chat, completion = await store.create_chat(
        ALICE,
        user_prompt="What is Bittensor?",
        chat_type="apex",
        completion_type="basic",
        title="Bittensor",
    )
    assert uuid.UUID(chat.id).version == 4 and uuid.UUID(completion.id).version == 4
    assert (chat.title, chat.chat_type) == ("Bittensor", "apex")
    assert completion.chat_id == chat.id
    assert completion.user_prompt_text == "What is Bittensor?"
    assert (completion.completion_text, completion.completion_type) == ("", "basic")
    assert completion.metadata == {}
    assert chat.created_at is not None and chat.created_at.tzinfo == UTC
    assert completion.created_at == chat.created_at

    stored_chat = await store.get_chat(ALICE, chat.id)
    assert stored_chat.user_id == ALICE
    assert stored_chat.created_at == stored_chat.updated_at == chat.created_at  # to the µs
    [stored] = await store.list_completions(ALICE, chat.id)
    assert stored.id == completion.id
    assert stored.completed_at is None and stored.error_message == ""
    assert stored.metadata == {}


async def test_a_chat_without_title_is_titled_with_the_start_of_its_prompt(
    store: Store,
) -> None:
    chat_id, _ = await new_chat(store, "  Explain\nproof of stake " + "in detail " * 20)
    title = (await store.get_chat(ALICE, chat_id)).title
    assert title.startswith("Explain proof of stake in detail")
    assert len(title) <= 80 and title.endswith("…")


async def test_create_completion_adds_to_the_chat_and_bumps_its_updated_at(
    store: Store,
) -> None:
    chat_id, first = await new_chat(store, "first")
    second = await store.create_completion(
        ALICE, chat_id, user_prompt="second", completion_type="web-search"
    )
    assert second.chat_id == chat_id and second.completion_text == "" and second.metadata == {}
    chat = await store.get_chat(ALICE, chat_id)
    assert chat.updated_at == second.created_at
    assert chat.created_at is not None and chat.updated_at >= chat.created_at
    completions = await store.list_completions(ALICE, chat_id)
    assert [c.id for c in completions] == [first, second.id]  # oldest first
    assert completions[1].completion_type == "web-search"


async def test_list_chats_is_newest_first_and_filters_by_chat_type(store: Store) -> None:
    types = ["apex", "gravity", "apex", "apex"]
    ids = [(await new_chat(store, f"chat {i}", chat_type=t))[0] for i, t in enumerate(types)]
    chats = await store.list_chats(ALICE)
    assert [c.id for c in chats] == ids[::-1]
    assert all(c.user_id == ALICE for c in chats)
    assert [c.id for c in await store.list_chats(ALICE, "apex")] == [ids[3], ids[2], ids[0]]
    assert [c.id for c in await store.list_chats(ALICE, "gravity")] == [ids[1]]
    assert len(await store.list_chats(ALICE, "")) == 4  # the proto's empty chat_type: all
    assert await store.list_chats(ALICE, "other") == []


async def test_get_completion(store: Store) -> None:
    chat_id, completion_id = await new_chat(store, "question")
    completion = await store.get_completion(ALICE, completion_id)
    assert (completion.id, completion.chat_id) == (completion_id, chat_id)
    assert completion.user_prompt_text == "question"


async def test_update_chat_changes_only_what_is_given_and_bumps_updated_at(
    store: Store,
) -> None:
    chat_id, _ = await new_chat(store)
    before = await store.get_chat(ALICE, chat_id)
    renamed = await store.update_chat(ALICE, chat_id, title="Renamed", chat_type=None)
    assert (renamed.title, renamed.chat_type) == ("Renamed", "apex")
    assert renamed.created_at == before.created_at
    assert before.updated_at is not None and renamed.updated_at is not None
    assert renamed.updated_at >= before.updated_at
    retyped = await store.update_chat(ALICE, chat_id, title=None, chat_type="gravity")
    assert (retyped.title, retyped.chat_type) == ("Renamed", "gravity")
    assert await store.get_chat(ALICE, chat_id) == retyped
    assert await store.update_chat(ALICE, chat_id, title=None, chat_type=None) == retyped


async def test_update_completion_sets_given_fields_and_replaces_metadata(
    store: Store,
) -> None:
    _, completion_id = await new_chat(store, "prompt")
    await store.update_completion(ALICE, completion_id, metadata={"a": 1, "b": {"c": [1, 2]}})
    updated = await store.update_completion(ALICE, completion_id, metadata={"z": True})
    assert updated.metadata == {"z": True}  # replaced, not merged
    assert updated.completed_at is None

    answered = await store.update_completion(ALICE, completion_id, completion_text="answer")
    assert answered.completion_text == "answer"
    assert answered.completed_at is not None and answered.created_at is not None
    assert answered.completed_at >= answered.created_at
    assert (answered.user_prompt_text, answered.metadata) == ("prompt", {"z": True})

    failed = await store.update_completion(
        ALICE, completion_id, user_prompt_text="edited", error_message="miner timed out"
    )
    assert (failed.user_prompt_text, failed.error_message) == ("edited", "miner timed out")
    assert (failed.completion_text, failed.completed_at) == ("answer", answered.completed_at)
    assert await store.get_completion(ALICE, completion_id) == failed
    assert await store.update_completion(ALICE, completion_id) == failed  # nothing to change


@pytest.mark.parametrize("bad", [{"x": math.nan}, {"x": object()}, ["not", "an", "object"]])
async def test_metadata_that_is_not_a_json_object_is_invalid(store: Store, bad: Any) -> None:
    _, completion_id = await new_chat(store)
    await raises(Code.INVALID_ARGUMENT, store.update_completion(ALICE, completion_id, metadata=bad))
    assert (await store.get_completion(ALICE, completion_id)).metadata == {}


async def test_text_with_lone_surrogates_is_invalid_not_a_crash(store: Store) -> None:
    error = await raises(
        Code.INVALID_ARGUMENT,
        store.create_chat(
            ALICE, user_prompt="bad \ud800", chat_type="apex", completion_type="basic"
        ),
    )
    assert "Unicode" in error.message
    assert await store.list_chats(ALICE) == []


async def test_delete_chats_deletes_them_with_their_completions(store: Store) -> None:
    chat_a, completion_a = await new_chat(store, "a")
    second = await store.create_completion(ALICE, chat_a, user_prompt="a2", completion_type="basic")
    chat_b, completion_b = await new_chat(store, "b")
    unknown = str(uuid.uuid4())

    assert await store.delete_chats(ALICE, [chat_a, chat_a.upper(), unknown]) == 1
    assert [c.id for c in await store.list_chats(ALICE)] == [chat_b]
    for gone in (completion_a, second.id):
        await raises(Code.NOT_FOUND, store.get_completion(ALICE, gone))
    assert (await store.get_completion(ALICE, completion_b)).chat_id == chat_b
    assert await store.delete_chats(ALICE, [chat_a]) == 0
    assert await store.delete_chats(ALICE, []) == 0


async def test_delete_completions_leaves_the_chat(store: Store) -> None:
    chat_id, first = await new_chat(store)
    second = await store.create_completion(ALICE, chat_id, user_prompt="2", completion_type="basic")
    assert await store.delete_completions(ALICE, [first, str(uuid.uuid4())]) == 1
    assert [c.id for c in await store.list_completions(ALICE, chat_id)] == [second.id]
    assert await store.delete_completions(ALICE, [first]) == 0


async def test_ids_are_accepted_in_any_uuid_spelling(store: Store) -> None:
    chat_id, completion_id = await new_chat(store)
    assert (await store.get_chat(ALICE, chat_id.upper())).id == chat_id
    assert (await store.get_chat(ALICE, "{" + chat_id + "}")).id == chat_id
    assert (await store.get_completion(ALICE, completion_id.replace("-", ""))).id == completion_id


# Every method that takes an id: (the kind of row the id names, the call for a user and an id).
UserCall = Callable[[Store, str, str], Awaitable[Any]]
USER_CALLS: dict[str, tuple[str, UserCall]] = {
    "get_chat": ("chat", lambda s, u, i: s.get_chat(u, i)),
    "list_completions": ("chat", lambda s, u, i: s.list_completions(u, i)),
    "create_completion": (
        "chat",
        lambda s, u, i: s.create_completion(u, i, user_prompt="p", completion_type="basic"),
    ),
    "update_chat": ("chat", lambda s, u, i: s.update_chat(u, i, title="t", chat_type=None)),
    "get_completion": ("completion", lambda s, u, i: s.get_completion(u, i)),
    "update_completion": (
        "completion",
        lambda s, u, i: s.update_completion(u, i, completion_text="x"),
    ),
    "create_job": ("completion", lambda s, u, i: s.create_job(u, request={}, completion_id=i)),
    "get_job": ("job", lambda s, u, i: s.get_job(u, i)),
}
# The job runner's methods: no user.
RUNNER_CALLS: dict[str, UserCall] = {
    "append_chunk": lambda s, _, i: s.append_chunk(i, "chunk"),
    "set_job_status": lambda s, _, i: s.set_job_status(i, "running"),
}
DELETE_CALLS: dict[str, UserCall] = {
    "delete_chats": lambda s, u, i: s.delete_chats(u, [i]),
    "delete_completions": lambda s, u, i: s.delete_completions(u, [i]),
}
ID_CALLS = {**{name: call for name, (_, call) in USER_CALLS.items()}, **RUNNER_CALLS}


@pytest.mark.parametrize("method", ID_CALLS)
async def test_an_unknown_id_is_not_found(store: Store, method: str) -> None:
    unknown = str(uuid.uuid4())
    error = await raises(Code.NOT_FOUND, ID_CALLS[method](store, ALICE, unknown))
    assert unknown in error.message


@pytest.mark.parametrize("method", [*ID_CALLS, *DELETE_CALLS])
@pytest.mark.parametrize("bad_id", ["", "1234", "not-a-uuid", "x" * 500, "' OR 1=1 --"])
async def test_an_id_that_is_not_a_uuid_is_invalid(store: Store, method: str, bad_id: str) -> None:
    call = {**ID_CALLS, **DELETE_CALLS}[method]
    error = await raises(Code.INVALID_ARGUMENT, call(store, ALICE, bad_id))
    assert "not a UUID" in error.message and len(error.message) < 100


# --- users ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", USER_CALLS)
async def test_another_users_id_is_answered_like_an_unknown_id(store: Store, method: str) -> None:
    chat_id, completion_id = await new_chat(store, "alice's secret recipe")
    await store.update_completion(
        ALICE, completion_id, completion_text="secret", metadata={"deep-researcher": {}}
    )
    job = await store.create_job(ALICE, request={"q": 1}, completion_id=completion_id)
    await store.append_chunk(job.id, "alice's chunk")
    alice_sees = (
        await store.get_chat(ALICE, chat_id),
        await store.list_completions(ALICE, chat_id),
        await store.get_job(ALICE, job.id),
    )

    kind, call = USER_CALLS[method]
    row_id = {"chat": chat_id, "completion": completion_id, "job": job.id}[kind]
    error = await raises(Code.NOT_FOUND, call(store, BOB, row_id))
    assert error.message == f"no {kind} {row_id}"

    assert (
        await store.get_chat(ALICE, chat_id),
        await store.list_completions(ALICE, chat_id),
        await store.get_job(ALICE, job.id),
    ) == alice_sees


async def test_a_user_lists_searches_and_deletes_only_their_own_rows(store: Store) -> None:
    chat_id, completion_id = await new_chat(store, "alice's secret recipe")
    await store.update_completion(ALICE, completion_id, metadata={"deep-researcher": {}})

    assert await store.list_chats(BOB) == []
    assert await store.search_chat_ids(BOB, "secret") == []
    assert await store.list_deep_research_completions(BOB) == []
    assert await store.delete_chats(BOB, [chat_id]) == 0
    assert await store.delete_completions(BOB, [completion_id]) == 0

    assert [c.id for c in await store.list_chats(ALICE)] == [chat_id]
    assert await store.search_chat_ids(ALICE, "secret") == [chat_id]
    assert [c.id for c in await store.list_deep_research_completions(ALICE)] == [completion_id]
    assert (await store.get_completion(ALICE, completion_id)).chat_id == chat_id


async def test_bobs_chats_and_alices_do_not_mix(store: Store) -> None:
    alice_chat, _ = await new_chat(store, "shared words", user=ALICE)
    bob_chat, _ = await new_chat(store, "shared words", user=BOB)
    assert [c.id for c in await store.list_chats(ALICE)] == [alice_chat]
    assert [c.id for c in await store.list_chats(BOB)] == [bob_chat]
    assert await store.search_chat_ids(ALICE, "shared") == [alice_chat]
    assert await store.search_chat_ids(BOB, "shared") == [bob_chat]


# --- the file: schema, migrations, pragmas ------------------------------------------------------


async def test_open_creates_the_directory_and_a_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    async with await open_store(path) as store:
        await new_chat(store)
        assert await store.integrity_check() == "ok"
    assert query(path, "PRAGMA journal_mode") == [("wal",)]


async def test_reopening_keeps_the_data_and_the_schema_version(db_path: Path) -> None:
    async with SqliteStore(db_path) as store:
        chat_id, _ = await new_chat(store, "persisted")
    assert user_version(db_path) == len(sqlite_store.MIGRATIONS)
    for _ in range(2):
        async with SqliteStore(db_path) as store:
            assert [c.id for c in await store.list_chats(ALICE)] == [chat_id]
            assert await store.search_chat_ids(ALICE, "persisted") == [chat_id]
        assert user_version(db_path) == len(sqlite_store.MIGRATIONS)


async def test_a_new_migration_is_applied_once(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteStore(db_path) as store:
        chat_id, _ = await new_chat(store)
    migrations = [*sqlite_store.MIGRATIONS, "CREATE TABLE extra (x TEXT);\n"]
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", migrations)
    for _ in range(2):  # a second open would fail on "table extra already exists"
        async with SqliteStore(db_path) as store:
            assert [c.id for c in await store.list_chats(ALICE)] == [chat_id]
        assert user_version(db_path) == len(migrations)


async def test_a_failing_migration_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteStore(db_path) as store:
        await new_chat(store)
    version = user_version(db_path)
    broken = "CREATE TABLE half_done (x TEXT);\nTHIS IS NOT SQL;\n"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, broken])
    await raises(Code.INTERNAL, SqliteStore(db_path).open())
    assert user_version(db_path) == version
    tables = {name for (name,) in query(db_path, "SELECT name FROM sqlite_master")}
    assert "half_done" not in tables and "chats" in tables


async def test_a_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    async with SqliteStore(db_path):
        pass
    query(db_path, f"PRAGMA user_version = {len(sqlite_store.MIGRATIONS) + 1}")
    error = await raises(Code.FAILED_PRECONDITION, SqliteStore(db_path).open())
    assert "newer" in error.message


async def test_a_file_that_is_not_a_database_is_reported(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just some text " * 100)
    await raises(Code.DATA_LOSS, SqliteStore(db_path).open())


@sqlite_only
async def test_integrity_check_notices_a_full_text_index_out_of_step(
    store: Store, db_path: Path
) -> None:
    _, completion_id = await new_chat(store, "indexed words")
    assert await store.integrity_check() == "ok"
    query(db_path, "DROP TRIGGER completions_fts_update")  # damage: edits go unindexed
    await store.update_completion(ALICE, completion_id, user_prompt_text="other words")
    assert "full-text index" in await store.integrity_check()


async def test_using_a_store_that_is_not_open_is_a_clear_error(backend: Any) -> None:
    store = backend.make()
    with pytest.raises(RuntimeError, match="not open"):
        await store.list_chats(ALICE)
    await store.open()
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="not open"):
        await store.list_chats(ALICE)


# --- full-text search ---------------------------------------------------------------------------


async def test_search_matches_prompt_or_completion_text_once_per_chat(
    store: Store,
) -> None:
    coffee, first = await new_chat(store, "how do I brew coffee")
    await store.update_completion(ALICE, first, completion_text="Grind the beans, then pour.")
    again = await store.create_completion(
        ALICE, coffee, user_prompt="more coffee please", completion_type="basic"
    )
    tea, _ = await new_chat(store, "green tea temperature")

    assert await store.search_chat_ids(ALICE, "coffee") == [coffee]  # two matches, one id
    assert await store.search_chat_ids(ALICE, "beans") == [coffee]  # in the completion text
    assert await store.search_chat_ids(ALICE, "TEA") == [tea]
    assert await store.search_chat_ids(ALICE, "coffee beans") == [coffee]  # words anywhere
    assert await store.search_chat_ids(ALICE, "coffee tea") == []  # every word must match
    assert await store.search_chat_ids(ALICE, "gri") == [coffee]  # the last word is a prefix
    assert await store.search_chat_ids(ALICE, "gri beans") == []  # earlier words are not
    await store.update_completion(ALICE, again.id, user_prompt_text="no more")
    assert await store.search_chat_ids(ALICE, "coffee") == [coffee]  # still the first prompt


async def test_search_lists_the_most_recently_updated_chat_first(store: Store) -> None:
    older, _ = await new_chat(store, "topic one")
    newer, _ = await new_chat(store, "topic two")
    assert await store.search_chat_ids(ALICE, "topic") == [newer, older]
    await store.create_completion(ALICE, older, user_prompt="unrelated", completion_type="basic")
    assert await store.search_chat_ids(ALICE, "topic") == [older, newer]
    await store.update_chat(ALICE, newer, title="bump", chat_type=None)
    assert await store.search_chat_ids(ALICE, "topic") == [newer, older]


@pytest.mark.parametrize(
    "term",
    [
        '"', '""', '"coffee', 'coffee"', "*", "coffee*", "coffee AND", "AND", "OR", "NOT coffee",
        "NEAR(coffee tea)", "NEAR(", "user_prompt_text:coffee", "completion_text:", "^coffee",
        "coffee^", "(", ")", "-coffee", "+", "{coffee}", ":", "'", "';", "'; DROP TABLE chats; --",
        "\\", "%", "_", "coffee\x00tea", "\x00", "\ud800coffee", "🙂", "a" * 10_000,
    ],
)  # fmt: skip
async def test_search_terms_are_plain_text_and_never_break_the_query(
    store: Store, term: str
) -> None:
    chat_id, _ = await new_chat(store, "coffee AND tea, NOT near the user_prompt_text")
    found = await store.search_chat_ids(ALICE, term)
    assert found in ([], [chat_id])
    assert [c.id for c in await store.list_chats(ALICE)] == [chat_id]  # the tables are intact


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ('"coffee', True),  # an unbalanced quote is not syntax
        ("coffee AND", True),  # "and" is a word of the text
        ("NOT coffee", True),  # so is "not"
        ("OR", False),  # "or" is not
        ("NEAR( coffee", True),
        ("NEAR(coffee", False),  # one word: the phrase "near coffee", not in the text
        ("tea,NOT", True),  # the phrase "tea not" is
        ("user_prompt_text:coffee", False),  # not a column filter: the words "user prompt …"
        ("user_prompt_text", True),
        ("^coffee", True),
        ("'; DROP TABLE chats; --", False),
    ],
)
async def test_search_syntax_is_searched_as_words(store: Store, term: str, found: bool) -> None:
    chat_id, _ = await new_chat(store, "coffee AND tea, NOT near the user_prompt_text")
    assert await store.search_chat_ids(ALICE, term) == ([chat_id] if found else [])


@pytest.mark.parametrize("term", ["", "   ", "\t\n", "*", '""', "-- ;", "🙂 ✓", "\x00"])
async def test_a_term_without_words_finds_nothing(store: Store, term: str) -> None:
    await new_chat(store, "anything at all -- ; * 🙂")
    assert await store.search_chat_ids(ALICE, term) == []
    assert fts_query(term) is None


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Crème brûlée in Zürich", "creme brulee"),
        ("Crème brûlée in Zürich", "ZÜRICH"),
        ("Crème brûlée in Zürich", "cre\u0300me"),  # decomposed accent in the term
        ("cre\u0300me fraiche", "crème"),  # decomposed accent in the text
        ("naïve café", "naive cafe"),
        ("Привет, мир", "привет"),
        ("Ελληνικά γράμματα", "ΕΛΛΗΝΙΚΆ"),  # case only: unicode61 keeps Greek accents
        ("東京 タワー", "東京"),
        ("São Paulo", "sao"),
    ],
)
async def test_search_folds_case_and_diacritics(store: Store, text: str, term: str) -> None:
    chat_id, _ = await new_chat(store, text)
    assert await store.search_chat_ids(ALICE, term) == [chat_id]


async def test_deleted_and_edited_text_leaves_the_search(store: Store) -> None:
    gone_chat, _ = await new_chat(store, "ephemeral chat")
    kept_chat, kept = await new_chat(store, "ephemeral completion")
    extra = await store.create_completion(
        ALICE, kept_chat, user_prompt="another", completion_type="basic"
    )
    await store.update_completion(ALICE, extra.id, completion_text="transient answer")

    await store.delete_chats(ALICE, [gone_chat])
    assert await store.search_chat_ids(ALICE, "ephemeral") == [kept_chat]
    await store.delete_completions(ALICE, [kept])
    assert await store.search_chat_ids(ALICE, "ephemeral") == []
    assert await store.search_chat_ids(ALICE, "transient") == [kept_chat]
    await store.update_completion(ALICE, extra.id, completion_text="lasting answer")
    assert await store.search_chat_ids(ALICE, "transient") == []
    assert await store.search_chat_ids(ALICE, "lasting") == [kept_chat]
    assert await store.integrity_check() == "ok"


# --- deep-research completions ----------------------------------------------------------------


async def test_deep_research_completions_are_those_with_the_metadata_entry(
    store: Store,
) -> None:
    chat_id, plain = await new_chat(store)
    first = await store.create_completion(ALICE, chat_id, user_prompt="1", completion_type="basic")
    second = await store.create_completion(ALICE, chat_id, user_prompt="2", completion_type="basic")
    nested = await store.create_completion(ALICE, chat_id, user_prompt="3", completion_type="basic")
    entry = {"createdAt": "2025-01-01T00:00:00Z", "jobId": str(uuid.uuid4()), "status": "pending"}
    await store.update_completion(ALICE, plain, metadata={"other": 1})
    await store.update_completion(ALICE, first.id, metadata={"deep-researcher": entry})
    await store.update_completion(ALICE, second.id, metadata={"deep-researcher": None, "x": 1})
    await store.update_completion(ALICE, nested.id, metadata={"x": {"deep-researcher": entry}})

    found = await store.list_deep_research_completions(ALICE)
    assert [c.id for c in found] == [second.id, first.id]  # newest first
    assert found[1].metadata == {"deep-researcher": entry}

    await store.update_completion(ALICE, first.id, metadata={})
    assert [c.id for c in await store.list_deep_research_completions(ALICE)] == [second.id]


# --- jobs ---------------------------------------------------------------------------------------


async def test_changing_or_deleting_a_completion_bumps_its_chat(store: Store) -> None:
    older, older_completion = await new_chat(store, "topic one")
    newer, _ = await new_chat(store, "topic two")
    extra = await store.create_completion(
        ALICE, newer, user_prompt="topic three", completion_type="basic"
    )
    assert await store.search_chat_ids(ALICE, "topic") == [newer, older]

    before = (await store.get_chat(ALICE, older)).updated_at
    await store.update_completion(ALICE, older_completion, completion_text="answered")
    assert (await store.get_chat(ALICE, older)).updated_at > before
    assert await store.search_chat_ids(ALICE, "topic") == [older, newer]

    before = (await store.get_chat(ALICE, newer)).updated_at
    await store.delete_completions(ALICE, [extra.id])
    assert (await store.get_chat(ALICE, newer)).updated_at > before
    assert await store.search_chat_ids(ALICE, "topic") == [newer, older]

    # Another user's id changes nothing, and bumps nothing.
    before = (await store.get_chat(ALICE, older)).updated_at
    with pytest.raises(ApexError):
        await store.update_completion(BOB, older_completion, completion_text="x")
    assert await store.delete_completions(BOB, [older_completion]) == 0
    assert (await store.get_chat(ALICE, older)).updated_at == before


async def test_a_job_starts_pending_and_collects_chunks_in_order(store: Store) -> None:
    _, completion_id = await new_chat(store)
    request = {"messages": [{"role": "user", "content": "research ünïcode"}], "seed": 7}
    job = await store.create_job(ALICE, request=request, completion_id=completion_id)
    assert (job.status, job.user_id, job.request, job.chunks) == ("pending", ALICE, request, [])
    assert (job.completion_id, job.error) == (completion_id, None)
    assert job.created_at.tzinfo == UTC and job.updated_at == job.created_at

    assert [await store.append_chunk(job.id, f"chunk {i}") for i in range(1, 4)] == [1, 2, 3]
    fetched = await store.get_job(ALICE, job.id)
    assert [(c.seq_id, c.chunk) for c in fetched.chunks] == [(i, f"chunk {i}") for i in (1, 2, 3)]
    assert fetched.updated_at >= job.updated_at
    assert [c.seq_id for c in (await store.get_job(ALICE, job.id, after_seq=1)).chunks] == [2, 3]
    assert (await store.get_job(ALICE, job.id, after_seq=3)).chunks == []


async def test_a_job_needs_no_completion_and_forgets_a_deleted_one(store: Store) -> None:
    assert (await store.create_job(ALICE, request={})).completion_id is None
    chat_id, completion_id = await new_chat(store)
    job = await store.create_job(ALICE, request={}, completion_id=completion_id)
    await store.delete_chats(ALICE, [chat_id])
    assert (await store.get_job(ALICE, job.id)).completion_id is None


async def test_job_status_moves_until_the_job_is_finished(store: Store) -> None:
    job = await store.create_job(ALICE, request={})
    running = await store.set_job_status(job.id, "running")
    assert running.status == "running" and running.updated_at >= job.updated_at
    await store.append_chunk(job.id, "partial")
    failed = await store.set_job_status(job.id, "failed", error="all miners timed out")
    assert (failed.status, failed.error) == ("failed", "all miners timed out")
    assert [c.chunk for c in failed.chunks] == ["partial"]
    assert await store.get_job(ALICE, job.id) == failed

    # Finished: the same status again changes nothing, anything else is refused.
    assert await store.set_job_status(job.id, "failed") == failed
    await raises(Code.FAILED_PRECONDITION, store.set_job_status(job.id, "completed"))
    await raises(Code.FAILED_PRECONDITION, store.append_chunk(job.id, "late"))
    assert await store.get_job(ALICE, job.id) == failed


async def test_recovering_a_job_clears_its_error(store: Store) -> None:
    job = await store.create_job(ALICE, request={})
    await store.set_job_status(job.id, "running", error="worker restarted")
    assert (await store.set_job_status(job.id, "pending")).error is None


async def test_an_unknown_job_status_is_invalid(store: Store) -> None:
    job = await store.create_job(ALICE, request={})
    await raises(Code.INVALID_ARGUMENT, store.set_job_status(job.id, "done"))  # type: ignore[arg-type]
    await raises(Code.INVALID_ARGUMENT, store.list_jobs_by_status(["nope"]))  # type: ignore[list-item]
    assert (await store.get_job(ALICE, job.id)).status == "pending"


async def test_list_jobs_by_status_covers_every_user_oldest_first(store: Store) -> None:
    a = await store.create_job(ALICE, request={"n": 1})
    b = await store.create_job(BOB, request={"n": 2})
    c = await store.create_job(ALICE, request={"n": 3})
    await store.set_job_status(b.id, "running")
    await store.append_chunk(b.id, "so far")
    await store.set_job_status(c.id, "running")
    await store.set_job_status(c.id, "completed")

    unfinished = await store.list_jobs_by_status(["pending", "running"])
    assert [(j.id, j.user_id) for j in unfinished] == [(a.id, ALICE), (b.id, BOB)]
    assert [ch.chunk for ch in unfinished[1].chunks] == ["so far"]
    assert [j.id for j in await store.list_jobs_by_status(["completed"])] == [c.id]
    assert await store.list_jobs_by_status([]) == []


async def test_job_request_must_be_a_json_object(store: Store) -> None:
    await raises(Code.INVALID_ARGUMENT, store.create_job(ALICE, request={"x": math.inf}))
    assert await store.list_jobs_by_status(["pending"]) == []


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_appends_get_every_seq_id_once_in_order(store: Store) -> None:
    job = await store.create_job(ALICE, request={})
    writers, per_writer = 20, 25
    returned: dict[int, list[int]] = {w: [] for w in range(writers)}

    async def write(w: int) -> None:
        for i in range(per_writer):
            returned[w].append(await store.append_chunk(job.id, f"{w}:{i}"))

    async with anyio.create_task_group() as tg:
        for w in range(writers):
            tg.start_soon(write, w)

    total = writers * per_writer
    assert sorted(s for seqs in returned.values() for s in seqs) == list(range(1, total + 1))
    assert all(seqs == sorted(seqs) for seqs in returned.values())
    chunks = (await store.get_job(ALICE, job.id)).chunks
    assert [c.seq_id for c in chunks] == list(range(1, total + 1))
    by_seq = {c.seq_id: c.chunk for c in chunks}
    for w, seqs in returned.items():
        assert [by_seq[s] for s in seqs] == [f"{w}:{i}" for i in range(per_writer)]


async def test_two_connections_writing_at_once_lose_nothing(backend: Any) -> None:
    # Two stores, two connections: the database's locking does the ordering.
    async with await backend.open() as one, await backend.open() as two:
        job = await one.create_job(ALICE, request={})

        async def write(store: Store, user: str) -> None:
            for i in range(50):
                await new_chat(store, f"{user} {i}", user=user)
                await store.append_chunk(job.id, f"{user}:{i}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, one, ALICE)
            tg.start_soon(write, two, BOB)

        assert len(await two.list_chats(ALICE)) == len(await one.list_chats(BOB)) == 50
        chunks = (await two.get_job(ALICE, job.id)).chunks
        assert [c.seq_id for c in chunks] == list(range(1, 101))


async def test_two_processes_writing_one_new_file_lose_nothing(db_path: Path) -> None:
    count, users = 200, ("proc-a", "proc-b")
    writer = Path(__file__).with_name("store_writer.py")
    procs = [
        subprocess.Popen(
            [sys.executable, str(writer), str(db_path), user, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for user in users
    ]
    try:
        # Both open (and race to create and migrate) the file; then they write at once.
        for proc in procs:
            assert proc.stdout is not None
            with waiting_for("a writer process to open the store", 60):
                ready = await anyio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)
            assert ready == "ready\n"
        async with SqliteStore(db_path) as store:
            job = await store.create_job(ALICE, request={})
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(job.id + "\n")
                proc.stdin.flush()
            for proc in procs:  # a failing writer's traceback shows on stderr
                with waiting_for("a writer process to write its chats and end", 120):
                    out, _ = await anyio.to_thread.run_sync(
                        proc.communicate, abandon_on_cancel=True
                    )
                assert (proc.returncode, out) == (0, "done\n")

            for user in users:
                chats = await store.list_chats(user)
                assert sorted(c.title for c in chats) == sorted(f"prompt {i}" for i in range(count))
            chunks = (await store.get_job(ALICE, job.id)).chunks
            assert [c.seq_id for c in chunks] == list(range(1, 2 * count + 1))
            for user in users:  # each process's chunks in the order it wrote them
                mine = [c.chunk for c in chunks if c.chunk.startswith(user + ":")]
                assert mine == [f"{user}:{i}" for i in range(count)]
            assert await store.integrity_check() == "ok"
        assert user_version(db_path) == len(sqlite_store.MIGRATIONS)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --- the job runner's methods -------------------------------------------------------------------


async def test_a_jobs_search_filters_are_stored_with_it(store: Store) -> None:
    filters = {"include_domains": ["a.example"], "exclude_domains": [], "recency": "week"}
    job = await store.create_job(ALICE, request={"n": 1}, search_filters=filters)
    plain = await store.create_job(ALICE, request={"n": 2})
    assert job.search_filters == filters and plain.search_filters is None
    claimed = await store.claim_next_job()
    assert claimed is not None and claimed.search_filters == filters
    assert (await store.get_job(ALICE, plain.id)).search_filters is None


async def test_claim_next_job_takes_the_oldest_pending_job_once(store: Store) -> None:
    first = await store.create_job(ALICE, request={"n": 1})
    second = await store.create_job(BOB, request={"n": 2})
    await store.set_job_status(first.id, "running", error="left over")
    await store.set_job_status(first.id, "pending", error="left over")

    claimed = await store.claim_next_job()
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.error) == (first.id, "running", None)
    assert (await store.claim_next_job()) == await store.get_job(BOB, second.id)
    assert (await store.get_job(BOB, second.id)).status == "running"
    assert await store.claim_next_job() is None


async def test_two_stores_claiming_at_once_never_take_one_job_twice(backend: Any) -> None:
    async with await backend.open() as one, await backend.open() as two:
        jobs = {(await one.create_job(ALICE, request={})).id for _ in range(30)}
        claimed: list[str] = []

        async def claim(store: Store) -> None:
            while (job := await store.claim_next_job()) is not None:
                claimed.append(job.id)

        async with anyio.create_task_group() as tg:
            for store in (one, two, one, two):
                tg.start_soon(claim, store)
    assert sorted(claimed) == sorted(jobs)


async def test_touch_jobs_is_the_heartbeat_of_the_jobs_a_runner_holds(store: Store) -> None:
    await store.create_job(ALICE, request={})
    running = await store.claim_next_job()
    assert running is not None and running.attempt == 1
    pending = await store.create_job(ALICE, request={})
    done = await store.set_job_status((await store.create_job(ALICE, request={})).id, "cancelled")
    gone = str(uuid.uuid4())
    leases = {running.id: 1, pending.id: 0, done.id: 0, gone: 0}
    assert await store.touch_jobs(leases) == {pending.id, done.id, gone}
    assert (await store.get_job(ALICE, running.id)).updated_at > running.updated_at
    assert (await store.get_job(ALICE, pending.id)).updated_at == pending.updated_at
    assert (await store.get_job(ALICE, done.id)).updated_at == done.updated_at
    assert await store.touch_jobs({running.id: 2}) == {running.id}  # not its lease
    assert await store.touch_jobs({}) == set()


async def test_stale_jobs_are_taken_over_once_and_fail_after_their_takeovers(
    store: Store,
) -> None:
    await store.create_job(ALICE, request={})
    stale = await store.claim_next_job()
    assert stale is not None
    await store.append_chunk(stale.id, "before", attempt=stale.attempt)
    pending = await store.create_job(BOB, request={})
    cutoff = (await store.get_job(ALICE, stale.id)).updated_at + timedelta(microseconds=1)
    fresh = await store.set_job_status((await store.create_job(BOB, request={})).id, "running")
    assert fresh.updated_at >= cutoff

    async def take_over() -> list[Job]:
        return await store.take_over_stale_jobs(
            cutoff, chunk="taken over", max_takeovers=2, error="lost too often"
        )

    taken = await take_over()
    assert [(j.id, j.status, j.takeovers) for j in taken] == [(stale.id, "pending", 1)]
    assert [c.chunk for c in taken[0].chunks] == ["before", "taken over"]
    assert await take_over() == []  # pending now: nobody takes it twice
    assert (await store.get_job(BOB, pending.id)).status == "pending"
    assert (await store.get_job(BOB, fresh.id)).status == "running"  # its heartbeat is recent
    for other in (fresh, pending):  # (out of what follows)
        await store.set_job_status(other.id, "cancelled")

    for takeovers in (2, 3):
        again = await store.claim_next_job()
        assert again is not None and again.id == stale.id
        cutoff = again.updated_at + timedelta(microseconds=1)
        [job] = await take_over()
        if takeovers <= 2:
            assert (job.status, job.takeovers, job.chunks[-1].chunk) == ("pending", 2, "taken over")
        else:
            assert (job.status, job.error, job.takeovers) == ("failed", "lost too often", 2)


async def test_a_job_watcher_wakes_at_its_change_even_one_made_before_it_waits(
    store: Store,
) -> None:
    job = await store.create_job(ALICE, request={})
    async with store.job_news(job.id) as wait:  # watch, read, then wait
        assert (await store.get_job(ALICE, job.id)).chunks == []
        await store.append_chunk(job.id, "news")  # comes before the wait: not missed
        with anyio.fail_after(60):  # not a speed check: 600 s is the wait without the news
            await wait(600)
    async with store.job_news(job.id) as wait, anyio.create_task_group() as tasks:
        tasks.start_soon(store.set_job_status, job.id, "cancelled")
        with anyio.fail_after(60):
            await wait(600)
    assert (await store.get_job(ALICE, job.id)).status == "cancelled"


async def test_a_runner_whose_lease_passed_can_no_longer_write_its_job(store: Store) -> None:
    """A runner that stalled past its lease while another took its job over: its chunks and
    its status are refused, the new runner's are taken."""
    await store.create_job(ALICE, request={})
    first = await store.claim_next_job()
    assert first is not None
    cutoff = first.updated_at + timedelta(microseconds=1)
    await store.take_over_stale_jobs(cutoff, chunk="taken over", max_takeovers=3, error="x")
    with pytest.raises(ApexError) as refused:  # handed back, not yet claimed again
        await store.append_chunk(first.id, "late", attempt=first.attempt)
    assert refused.value.code is Code.FAILED_PRECONDITION
    second = await store.claim_next_job()
    assert second is not None and second.attempt == first.attempt + 1
    for late in (
        store.append_chunk(first.id, "late", attempt=first.attempt),
        store.set_job_status(first.id, "completed", attempt=first.attempt),
        store.set_job_status(first.id, "pending", attempt=first.attempt),
    ):
        with pytest.raises(ApexError) as refused:
            await late
        assert refused.value.code is Code.FAILED_PRECONDITION
        assert "no longer run by this runner" in refused.value.message
    assert await store.append_chunk(second.id, "on time", attempt=second.attempt) == 2
    done = await store.set_job_status(second.id, "completed", attempt=second.attempt)
    assert [c.chunk for c in done.chunks] == ["taken over", "on time"]
    with pytest.raises(ApexError) as refused:  # finished: no runner writes it any more
        await store.append_chunk(second.id, "after", attempt=second.attempt)
    assert "is completed" in refused.value.message


async def test_sync_job_completions_follows_the_job_and_keeps_other_metadata(
    store: Store,
) -> None:
    chat_id, linked = await new_chat(store)
    other = await store.create_completion(ALICE, chat_id, user_prompt="2", completion_type="basic")
    _, bobs = await new_chat(store, user=BOB)
    job = await store.create_job(ALICE, request={})

    def entry(status: str, job_id: str = job.id) -> dict[str, Any]:
        return {"createdAt": "2025-05-30T14:32:05Z", "jobId": job_id, "status": status}

    await store.update_completion(
        ALICE, linked, metadata={"deep-researcher": entry("pending"), "keep": [1, 2]}
    )
    await store.update_completion(
        ALICE, other.id, metadata={"deep-researcher": entry("pending", str(uuid.uuid4()))}
    )
    await store.update_completion(BOB, bobs, metadata={"deep-researcher": entry("pending")})

    assert await store.sync_job_completions(ALICE, job.id, "pending") == 0  # already so
    await store.set_job_status(job.id, "running")
    assert await store.sync_job_completions(ALICE, job.id, "running", completion_text="no") == 1
    stored = await store.get_completion(ALICE, linked)
    assert stored.metadata == {"deep-researcher": entry("running"), "keep": [1, 2]}
    assert (stored.completion_text, stored.completed_at) == ("", None)

    await store.set_job_status(job.id, "completed")
    # A caller with an old view of the job changes nothing.
    assert await store.sync_job_completions(ALICE, job.id, "running") == 0
    assert await store.sync_job_completions(ALICE, job.id, "failed") == 0
    assert (await store.get_completion(ALICE, linked)).metadata == stored.metadata
    assert await store.sync_job_completions(ALICE, job.id, "completed", completion_text="rep") == 1
    stored = await store.get_completion(ALICE, linked)
    assert stored.metadata == {"deep-researcher": entry("completed"), "keep": [1, 2]}
    assert stored.completion_text == "rep" and stored.completed_at is not None
    assert await store.search_chat_ids(ALICE, "rep") == [chat_id]
    assert await store.sync_job_completions(ALICE, job.id, "completed", completion_text="x") == 0

    # Another job's completion and another user's are untouched.
    assert (await store.get_completion(ALICE, other.id)).metadata["deep-researcher"][
        "status"
    ] == "pending"
    assert (await store.get_completion(BOB, bobs)).metadata == {"deep-researcher": entry("pending")}
    await raises(Code.NOT_FOUND, store.sync_job_completions(BOB, job.id, "completed"))


async def test_sync_job_completions_of_a_failed_job_sets_the_error(store: Store) -> None:
    _, linked = await new_chat(store)
    job = await store.create_job(ALICE, request={})
    metadata = {"deep-researcher": {"jobId": job.id, "status": "running"}}
    await store.update_completion(ALICE, linked, metadata=metadata)
    await store.set_job_status(job.id, "failed", error="every miner timed out")
    assert await store.sync_job_completions(ALICE, job.id, "failed", completion_text="no") == 1
    stored = await store.get_completion(ALICE, linked)
    assert stored.metadata == {"deep-researcher": {"jobId": job.id, "status": "failed"}}
    assert (stored.error_message, stored.completion_text) == ("every miner timed out", "")


# --- jobs on a session's miners -----------------------------------------------------------------


async def test_a_job_on_named_miners_is_claimed_only_by_a_runner_that_holds_them(
    store: Store,
) -> None:
    theirs = await store.create_job(ALICE, request={"n": 1}, miners="s1")
    assert (theirs.status, theirs.miners) == ("pending", "s1")
    assert await store.claim_next_job() is None
    assert await store.claim_next_job(["other"]) is None
    assert (await store.get_job(ALICE, theirs.id)).status == "pending"

    claimed = await store.claim_next_job(["other", "s1"])
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.miners) == (theirs.id, "running", "s1")
    assert await store.claim_next_job(["s1"]) is None


async def test_a_job_on_the_engines_miners_is_claimed_by_any_runner(store: Store) -> None:
    jobs = [await store.create_job(ALICE, request={"n": n}) for n in range(3)]
    assert [j.miners for j in jobs] == [None, None, None]
    claimed = [await store.claim_next_job(), await store.claim_next_job(["s1"])]
    claimed.append(await store.claim_next_job(["other", "s1"]))
    assert [(j.id, j.miners) for j in claimed if j is not None] == [(j.id, None) for j in jobs]


async def test_a_runner_passes_over_jobs_for_miners_it_does_not_hold(store: Store) -> None:
    theirs = await store.create_job(BOB, request={"n": 1}, miners="s1")
    ours = await store.create_job(ALICE, request={"n": 2})
    mine = await store.create_job(ALICE, request={"n": 3}, miners="s2")

    first = await store.claim_next_job(["s2"])  # the oldest it may run, not the oldest
    assert first is not None and first.id == ours.id
    second = await store.claim_next_job(["s2"])
    assert second is not None and (second.id, second.miners) == (mine.id, "s2")
    assert await store.claim_next_job(["s2"]) is None
    pending = await store.list_jobs_by_status(["pending"])
    assert [(j.id, j.miners) for j in pending] == [(theirs.id, "s1")]
    assert (await store.get_job(BOB, theirs.id)).miners == "s1"


async def test_the_miners_of_a_job_outlive_the_store_that_wrote_them(backend: Any) -> None:
    async with await backend.open() as store:
        job = await store.create_job(ALICE, request={}, miners="session:abc")
    async with await backend.open() as store:
        assert (await store.get_job(ALICE, job.id)).miners == "session:abc"
        assert await store.claim_next_job() is None
        claimed = await store.claim_next_job(["session:abc"])
        assert claimed is not None and claimed.id == job.id


async def test_a_database_of_schema_version_1_gains_the_miners_of_jobs(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old:  # the file an apex-mcp before migration 2 left behind
        old.setattr(sqlite_store, "MIGRATIONS", sqlite_store.MIGRATIONS[:1])
        async with SqliteStore(db_path):
            pass
    assert user_version(db_path) == 1
    assert "miners" not in [row[1] for row in query(db_path, "PRAGMA table_info(jobs)")]
    left = str(uuid.uuid4())
    at = "2024-01-02T03:04:05.000000Z"
    query(
        db_path,
        "INSERT INTO jobs (id, user_id, status, request, created_at, updated_at)"
        f" VALUES ('{left}', '{ALICE}', 'pending', '{{}}', '{at}', '{at}')",
    )

    async with SqliteStore(db_path) as store:
        assert user_version(db_path) == len(sqlite_store.MIGRATIONS)
        old_job = await store.get_job(ALICE, left)
        assert (old_job.status, old_job.miners) == ("pending", None)
        new_job = await store.create_job(ALICE, request={}, miners="s1")
        claimed = await store.claim_next_job()  # the old job runs on the engine's miners
        assert claimed is not None and claimed.id == left
        assert await store.claim_next_job() is None
        assert (await store.get_job(ALICE, new_job.id)).miners == "s1"
        assert await store.integrity_check() == "ok"
    assert user_version(db_path) == len(sqlite_store.MIGRATIONS)


# --- searches and writes side by side, fair claims, session jobs nobody runs ------------------


@sqlite_only
async def test_the_search_plan_starts_from_the_full_text_index(store: Store) -> None:
    # Starting from the user's completions and probing the index per row was quadratic:
    # 83 s for one search at 50k chats (bench.store_search measures it).
    plan = await store._read(
        lambda conn: conn.execute(
            "EXPLAIN QUERY PLAN " + sqlite_store.SEARCH_SQL, (fts_query("word"), ALICE, ALICE)
        ).fetchall()
    )
    scans = [row["detail"] for row in plan if row["detail"].startswith(("SCAN", "SEARCH"))]
    assert scans[0].startswith("SCAN completions_fts VIRTUAL TABLE"), scans
    assert not any(d.startswith("SCAN") for d in scans[1:] if "found" not in d), scans


@sqlite_only
async def test_a_write_completes_while_a_slow_read_holds_a_connection(store: Store) -> None:
    await new_chat(store, "before the read")
    reading, release = anyio.Event(), threading.Event()
    loop = anyio.lowlevel.current_token()  # the store's threads are not anyio's own

    def held() -> bool:
        # Called as the statement reads its rows (its snapshot taken): it says so, then waits.
        anyio.from_thread.run_sync(reading.set, token=loop)
        return release.wait(30)

    def slow_read(conn: sqlite3.Connection) -> int:
        # A slow SQL function: the read stays inside its statement until released.
        conn.create_function("held", 0, held)
        return int(conn.execute("SELECT count(*) FROM chats WHERE held()").fetchone()[0])

    counted: list[int] = []

    async def read() -> None:
        counted.append(await store._read(slow_read))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        with waiting_for("the slow read to start", 10):
            await reading.wait()
        try:
            with waiting_for("bob's write while alice's read is in progress", 10):
                chat_id, _ = await new_chat(store, "during the read", user=BOB)
                assert (await store.get_chat(BOB, chat_id)).id == chat_id
            assert not release.is_set() and not counted  # the read was still going
        finally:
            release.set()
    assert counted == [1]  # the read saw its snapshot: the chat written during it came later


async def test_claims_go_round_the_users_not_first_come(store: Store) -> None:
    alice_jobs = [await store.create_job(ALICE, request={"n": n}) for n in range(30)]
    bobs = await store.create_job(BOB, request={"n": 0})
    carols = await store.create_job("carol", request={"n": 0})

    first = await store.claim_next_job()
    second = await store.claim_next_job()
    third = await store.claim_next_job()
    assert [j.user_id for j in (first, second, third) if j] == [ALICE, BOB, "carol"]
    assert (second and second.id, third and third.id) == (bobs.id, carols.id)

    # With nobody else waiting, alice's jobs go on in their order.
    for job in (first, second, third):
        assert job is not None
        await store.set_job_status(job.id, "completed")
    rest = [await store.claim_next_job() for _ in range(3)]
    assert [j.id for j in rest if j] == [j.id for j in alice_jobs[1:4]]


async def test_the_user_whose_last_job_started_longest_ago_goes_first(
    store: Store,
) -> None:
    # Both have nothing running: bob's turn came before alice's, so he is next.
    for user in (BOB, ALICE):
        job = await store.create_job(user, request={})
        assert (claimed := await store.claim_next_job()) is not None and claimed.id == job.id
        await store.set_job_status(job.id, "completed")
    alices = await store.create_job(ALICE, request={})
    bobs = await store.create_job(BOB, request={})
    assert (claimed := await store.claim_next_job()) is not None and claimed.id == bobs.id
    assert (claimed := await store.claim_next_job()) is not None and claimed.id == alices.id


async def test_session_jobs_nobody_holds_fail_after_waiting(store: Store) -> None:
    orphan = await store.create_job(ALICE, request={}, miners="session:gone")
    held = await store.create_job(ALICE, request={}, miners="session:here")
    engines = await store.create_job(BOB, request={})
    error = "its session did not come back"

    now = orphan.updated_at
    assert await store.fail_waiting_jobs(now - timedelta(seconds=1), error) == []
    failed = await store.fail_waiting_jobs(now + timedelta(minutes=1), error, held=["session:here"])
    assert [(j.id, j.status, j.error) for j in failed] == [(orphan.id, "failed", error)]
    assert (await store.get_job(ALICE, held.id)).status == "pending"
    assert (await store.get_job(BOB, engines.id)).status == "pending"


async def test_a_database_of_schema_version_2_gains_fair_claims_and_leases(db_path: Path) -> None:
    running, waiting = str(uuid.uuid4()), str(uuid.uuid4())
    with closing(sqlite3.connect(db_path)) as conn, conn:  # what apex-mcp 0.2 left
        for script in sqlite_store.MIGRATIONS[:2]:
            conn.executescript(script)
        for job_id, status, at in ((running, "running", "01"), (waiting, "pending", "02")):
            stamp = f"2026-01-01T00:00:{at}.000000Z"
            conn.execute(
                "INSERT INTO jobs (id, user_id, status, request, created_at, updated_at)"
                " VALUES (?, ?, ?, '{}', ?, ?)",
                (job_id, ALICE, status, stamp, stamp),
            )
        conn.execute("PRAGMA user_version = 2")
    async with SqliteStore(db_path) as store:
        bobs = await store.create_job(BOB, request={})
        assert (claimed := await store.claim_next_job()) is not None and claimed.id == bobs.id
        assert (claimed := await store.claim_next_job()) is not None and claimed.id == waiting
        assert claimed.attempt == 1
        old = await store.get_job(ALICE, running)
        assert (old.status, old.attempt, old.takeovers) == ("running", 0, 0)
        assert await store.touch_jobs({running: 0}) == set()  # its runner holds it still
        assert await store.integrity_check() == "ok"
    assert user_version(db_path) == len(sqlite_store.MIGRATIONS)


async def test_a_key_is_claimed_once_then_answers_its_reply_per_user_for_24_hours(
    store: Store, backend: Any
) -> None:
    assert await store.claim_reply(ALICE, "k", "CreateCompletion", "digest") is None  # ours
    pending = await store.claim_reply(ALICE, "k", "CreateCompletion", "digest")
    assert pending is not None and pending.reply is None  # the first try is being answered
    assert await store.claim_reply(BOB, "k", "CreateCompletion", "digest") is None  # his own
    await store.remember_reply(ALICE, "k", b'{"id": 1}')
    kept = await store.claim_reply(ALICE, "k", "DeleteChats", "other")
    assert kept is not None
    assert (kept.method, kept.request_digest, kept.reply) == (
        "CreateCompletion",
        "digest",
        b'{"id": 1}',
    )
    await store.remember_reply(ALICE, "k", b"{}")  # the first reply stays
    assert (again := await store.claim_reply(ALICE, "k", "x", "y")) is not None
    assert again.reply == b'{"id": 1}'

    backend.query("UPDATE replies SET created_at = '2020-01-01T00:00:00.000000Z'")
    assert await store.claim_reply(ALICE, "k", "DeleteChats", "d2") is None  # forgotten
    assert backend.query("SELECT user_id, key, method FROM replies") == [
        (ALICE, "k", "DeleteChats")
    ]


async def test_a_key_whose_write_failed_is_let_go(store: Store) -> None:
    assert await store.claim_reply(ALICE, "k", "CreateCompletion", "digest") is None
    await store.forget_reply(ALICE, "k")
    assert await store.claim_reply(ALICE, "k", "CreateCompletion", "digest") is None
    await store.remember_reply(ALICE, "k", b"{}")
    await store.forget_reply(ALICE, "k")  # a kept reply is never let go
    assert (kept := await store.claim_reply(ALICE, "k", "CreateCompletion", "digest"))
    assert kept.reply == b"{}"


async def test_reads_waiting_for_a_connection_when_the_store_closes_are_told(
    db_path: Path,
) -> None:
    store = await open_store(db_path)
    release, started = threading.Event(), threading.Semaphore(0)

    def held(conn: sqlite3.Connection) -> None:
        started.release()
        release.wait(30)

    errors: list[ApexError] = []

    async def read_held() -> None:
        await store._read(held)

    async def read_waiting() -> None:
        try:  # a search: never tried on the event loop's thread (list_chats may be, and not wait)
            await store.search_chat_ids(ALICE, "anything")
        except ApexError as error:
            errors.append(error)

    with waiting_for("the reads and the close to end", 20):
        async with anyio.create_task_group() as tg:
            for _ in range(sqlite_store.READERS):
                tg.start_soon(read_held)
            for _ in range(sqlite_store.READERS):
                await anyio.to_thread.run_sync(started.acquire)
            tg.start_soon(read_waiting)
            await anyio.sleep(0.1)  # it waits for a connection
            tg.start_soon(store.close)
            await anyio.sleep(0.1)
            release.set()
    assert [e.code for e in errors] == [Code.UNAVAILABLE]
