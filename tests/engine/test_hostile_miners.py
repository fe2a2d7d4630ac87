"""Miners that hurt and users who flood (issue 11): answers too big to hold, streams of
keep-alives only, rate limits with Retry-After, credentials in a miner's URL, and one user's
calls to a dead miner. The server holds: bounded memory, a failure on record, the others served.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.models import ChatCompletionChunkResponse, ChatCompletionRequest, ChatMessage
from apex_mcp.config import MinerSettings, Settings
from apex_mcp.engine import LocalApex, MinerConfig, MinerPool
from apex_mcp.serving import engine_config, engine_miner
from tests.fakes import answer_lifespan
from tests.fakes.hostile_miner import MIB, PIECE, HostileMiner, serve_hostile
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import connect, stdio_params, text_of
from tests.servers import free_port, run_process, serve_asgi, waiting_for

pytestmark = pytest.mark.anyio

PEAK_GROWTH_BOUND = 64 * MIB  # what the hostile answers below may add to the server's peak RSS
PASSWORD = "pw-0123456789-secret"
MAX_ANSWER_CHARS = 1_000_000  # of a completion's text: the contract's limit


def ask(text: str = "hello", **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(messages=[ChatMessage(role="user", content=text)], **fields)


def text_of_chunks(chunks: list[ChatCompletionChunkResponse]) -> str:
    return "".join(c.delta.content for chunk in chunks for c in chunk.choices if c.delta)


async def collect(pool: MinerPool, request: ChatCompletionRequest, **options: Any) -> str:
    return text_of_chunks([chunk async for chunk in pool.stream(request, **options)])


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


# --- item 1: answers too big to hold ---------------------------------------------------------


def server_pid() -> int:
    """The apex-mcp server this test process started (the SDK's stdio client's child)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{me}\n" in status and b"apex_mcp" in cmdline:
            return int(entry.name)
    raise AssertionError("found no apex-mcp server process started by this test")


def memory(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory figure (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def recorded_errors(db: Path) -> dict[str, str]:
    """Each stored completion's prompt -> the error recorded on it ('' if none)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT user_prompt_text, metadata FROM completions").fetchall()
    return {prompt: json.loads(metadata).get("error", "") for prompt, metadata in rows}


async def test_huge_answers_fail_early_with_bounded_memory_and_on_record(
    tmp_path: Path, stack: ExitStack
) -> None:
    hostile = HostileMiner("ok", size=200 * MIB)
    bad_url = stack.enter_context(serve_hostile(hostile))
    good_url = stack.enter_context(serve_openai(FakeOpenAI(models=["m1"])))
    db = tmp_path / "apex.db"
    miners = [
        {"name": "hostile", "base_url": bad_url, "models": ["big", "m1"], "timeout": 30},
        {"name": "good", "base_url": good_url, "models": ["m1"], "timeout": 30},
    ]
    env = {
        "APEX_DB": str(db),
        "APEX_MINERS": json.dumps(miners),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_BACKEND": "local",
    }
    sent: dict[str, int] = {}
    with waiting_for("the chats with a hostile miner", 240):
        async with connect("stdio", env) as client:
            warm = await client.call_tool("chat", {"user_prompt": "warm up"})
            assert not warm.is_error and "hostile ok" in text_of(warm)
            pid = server_pid()
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from here
            baseline = memory(pid, "VmRSS")

            # A line that never ends, before any text: the next miner answers instead.
            hostile.mode = "huge_line"
            line = await client.call_tool("chat", {"user_prompt": "line"})
            sent["line"] = hostile.sent
            assert not line.is_error, text_of(line)
            assert "echo: line" in text_of(line)

            # Text past the limit: too late for another miner; the turn fails and says why.
            hostile.mode = "huge_answer"
            answer = await client.call_tool("chat", {"user_prompt": "answer"})
            sent["answer"] = hostile.sent
            assert answer.is_error
            assert f"over {MAX_ANSWER_CHARS:,} characters" in text_of(answer)

            # Three proposals of 200 MB each, asked at once: each refused at 8 MiB.
            hostile.mode = "huge_body"
            mixture = await client.call_tool(
                "chat",
                {"user_prompt": "mixture", "model": "big", "inference_mode": "Mixture-of-Agents"},
            )
            sent["mixture"] = hostile.sent
            assert mixture.is_error
            assert "hostile: answered with over 8 MiB" in text_of(mixture)

            growth = memory(pid, "VmHWM") - baseline
    print(f"peak RSS growth under hostile answers: {growth / MIB:.1f} MiB; sent {sent}")
    assert growth < PEAK_GROWTH_BOUND, (
        f"the server's peak RSS grew {growth / MIB:.0f} MiB under hostile answers "
        f"(bound {PEAK_GROWTH_BOUND / MIB:.0f} MiB)"
    )
    # The server hung up long before the end (what was sent includes the sockets' buffers).
    assert all(size < 64 * MIB for size in sent.values()), sent
    errors = recorded_errors(db)
    assert errors["line"] == ""
    assert f"over {MAX_ANSWER_CHARS:,} characters" in errors["answer"]
    assert "answered with over 8 MiB" in errors["mixture"]


async def test_a_long_streamed_answer_under_the_limit_passes(stack: ExitStack) -> None:
    size = MAX_ANSWER_CHARS // PIECE * PIECE  # in the fake's pieces, just under the limit
    hostile = HostileMiner("huge_answer", size=size)
    url = stack.enter_context(serve_hostile(hostile))
    async with MinerPool([MinerConfig(name="big", base_url=url)]) as pool:
        text = await collect(pool, ask())
    assert len(text) == size


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        (200 * MIB, "answered with over 8 MiB"),
        (2 * MIB, f"its answer went over {MAX_ANSWER_CHARS:,} characters"),
    ],
)
async def test_a_too_big_answer_falls_over_to_the_next_miner(
    stack: ExitStack, caplog: pytest.LogCaptureFixture, size: int, reason: str
) -> None:
    hostile = HostileMiner("huge_body", size=size)
    bad_url = stack.enter_context(serve_hostile(hostile))
    good_url = stack.enter_context(serve_openai(FakeOpenAI()))
    miners = [
        MinerConfig(name="big", base_url=bad_url),
        MinerConfig(name="good", base_url=good_url),
    ]
    async with MinerPool(miners) as pool:
        response = await pool.complete(ask())
    assert response.system_fingerprint == "miner:good"
    assert f"miner big failed: {reason}" in caplog.text


# --- item 7: keep-alives only, Retry-After ----------------------------------------------------


async def test_keepalives_alone_do_not_hold_a_chat(stack: ExitStack) -> None:
    hostile = HostileMiner("keepalive")
    bad_url = stack.enter_context(serve_hostile(hostile))
    good_url = stack.enter_context(serve_openai(FakeOpenAI()))
    miners = [
        MinerConfig(name="chatty", base_url=bad_url, timeout=0.5),
        MinerConfig(name="good", base_url=good_url),
    ]
    async with MinerPool(miners) as pool:
        with waiting_for("the fallback from a miner sending only keep-alives", 30):
            text = await collect(pool, ask("hi"))
        with (
            waiting_for("the failure of a miner sending only keep-alives", 30),
            pytest.raises(ApexError) as alone,
        ):
            await collect(pool.sibling(miners[:1]), ask("hi"))
    assert text == "echo: hi"
    assert "chatty: stopped answering (nothing for 0.5s)" in alone.value.message


async def test_retry_after_sends_calls_elsewhere_until_then(stack: ExitStack) -> None:
    limited = HostileMiner("rate_limited", retry_after="30")
    good = FakeOpenAI()
    limited_url = stack.enter_context(serve_hostile(limited))
    good_url = stack.enter_context(serve_openai(good))
    miners = [
        MinerConfig(name="busy", base_url=limited_url),
        MinerConfig(name="good", base_url=good_url),
    ]
    async with MinerPool(miners) as pool:
        first = await pool.complete(ask())
        second = await pool.complete(ask())
        streamed = await collect(pool, ask("streamed"))
    assert first.system_fingerprint == second.system_fingerprint == "miner:good"
    assert streamed == "echo: streamed"
    assert limited.calls == 1  # asked to wait 30 s, it was not called again
    assert len(good.requests) == 3


async def test_retry_after_of_the_only_miner_is_waited_for_within_the_deadline(
    stack: ExitStack,
) -> None:
    limited = HostileMiner("rate_limited", retry_after="1", times=1)
    url = stack.enter_context(serve_hostile(limited))
    async with MinerPool([MinerConfig(name="busy", base_url=url)]) as pool:
        with waiting_for("the answer after the miner's rest", 30):
            response = await pool.complete(ask())
        limited.times = 1
        with waiting_for("the streamed answer after the miner's rest", 30):
            streamed = await collect(pool, ask())
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "hostile ok"
    assert streamed == "hostile ok"
    assert limited.calls == 4


async def test_retry_after_beyond_reach_says_when_to_retry(stack: ExitStack) -> None:
    limited = HostileMiner("rate_limited", retry_after="600")
    url = stack.enter_context(serve_hostile(limited))
    async with MinerPool([MinerConfig(name="busy", base_url=url)]) as pool:
        with waiting_for("the rate-limit error", 30), pytest.raises(ApexError) as caught:
            await pool.complete(ask())
        with waiting_for("the rate-limit error, again", 30), pytest.raises(ApexError) as again:
            await collect(pool, ask())
    error = caught.value
    assert error.code == again.value.code == Code.RESOURCE_EXHAUSTED
    assert "every miner is rate limited: busy: HTTP 429 (slow down)" in error.message
    assert "it asked not to be called before" in error.message and "(in 600s)" in error.message
    assert error.hint is not None and error.hint.startswith("retry after ")
    assert error.hint.endswith(" UTC (in 600s)")
    assert limited.calls == 1  # the second call knew without asking


async def test_retry_after_past_the_callers_deadline_fails_at_once(stack: ExitStack) -> None:
    limited = HostileMiner("rate_limited", retry_after="30")
    dated = HostileMiner("rate_limited", retry_after="Fri, 01 Jan 2100 00:00:00 GMT")
    url = stack.enter_context(serve_hostile(limited))
    dated_url = stack.enter_context(serve_hostile(dated))
    async with MinerPool([MinerConfig(name="busy", base_url=url)]) as pool:
        # 30 s of rest would outlast this caller's 20 s: it hears so now, not at its deadline.
        with anyio.fail_after(20), pytest.raises(ApexError) as caught:
            await pool.complete(ask())
        with anyio.fail_after(20), pytest.raises(ApexError) as dated_error:
            await pool.sibling([MinerConfig(name="dated", base_url=dated_url)]).complete(ask())
    assert caught.value.code == Code.RESOURCE_EXHAUSTED and "(in 30s)" in caught.value.message
    assert "(in 86400s)" in dated_error.value.message  # an HTTP date; past a day is a day


# --- item 3: one user's flood does not hold another user's chat -------------------------------


async def test_one_users_flood_at_a_dead_miner_does_not_delay_another_user(
    tmp_path: Path, stack: ExitStack
) -> None:
    dead = FakeOpenAI(stall_after=0)
    dead_url = stack.enter_context(serve_openai(dead))
    good_url = stack.enter_context(serve_openai(FakeOpenAI()))
    settings = Settings(db=tmp_path / "apex.db", discover_local_miners=False)
    finished: list[str] = []
    async with LocalApex.open(engine_config(settings)) as engine:
        flooder = engine.for_user("flooder").with_miners(
            "dead", engine.miners.sibling([MinerConfig(name="dead", base_url=dead_url)])
        )
        other = engine.for_user("other").with_miners(
            "good", engine.miners.sibling([MinerConfig(name="good", base_url=good_url)])
        )

        async def flood_one() -> None:
            try:
                await flooder.chat_completion(ask("flood"))
            finally:
                finished.append("flooder")

        async with anyio.create_task_group() as tg:
            for _ in range(70):
                tg.start_soon(flood_one)
            with waiting_for("the flooder's calls to reach the dead miner", 30):
                while len(dead.requests) < 8:
                    await anyio.sleep(0.01)
            with waiting_for("the other user's chat", 30):
                answer = await other.chat_completion(ask("me too"))
            finished.append("other")
            reached = len(dead.requests)
            tg.cancel_scope.cancel()
    assert answer.system_fingerprint == "miner:good"
    assert finished[0] == "other"  # every flooder call was still waiting on the dead miner
    assert reached == 8  # the flooder's calls at once: APEX_MINER_CALLS_PER_USER's default


async def test_a_call_waiting_too_long_for_its_turn_is_resource_exhausted(
    tmp_path: Path, stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = FakeOpenAI(stall_after=0)
    dead_url = stack.enter_context(serve_openai(dead))
    monkeypatch.setenv("APEX_MINER", dead_url)
    monkeypatch.setenv("APEX_MINER_CALLS_PER_USER", "2")
    monkeypatch.setenv("APEX_MINER_QUEUE_SECONDS", "0.2")
    settings = Settings(db=tmp_path / "apex.db", discover_local_miners=False)
    async with LocalApex.open(engine_config(settings)) as engine, anyio.create_task_group() as tg:
        alice, bob = engine.for_user("alice"), engine.for_user("bob")
        for _ in range(2):
            tg.start_soon(alice.chat_completion, ask())
        with waiting_for("alice's two calls to reach the miner", 30):
            while len(dead.requests) < 2:
                await anyio.sleep(0.01)
        with (
            waiting_for("alice's third call to give up its wait", 30),
            pytest.raises(ApexError) as caught,
        ):
            async for _ in alice.chat_completion_stream(ask()):
                pass
        tg.start_soon(bob.chat_completion, ask())  # bob's turns are his own
        with waiting_for("bob's call to reach the miner", 30):
            while len(dead.requests) < 3:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    error = caught.value
    assert error.code == Code.RESOURCE_EXHAUSTED
    assert error.message == (
        "this user already has 2 calls to the miners running, "
        "and this one waited 0.2s for one of them to end"
    )
    assert error.hint is not None and "APEX_MINER_CALLS_PER_USER" in error.hint
    assert len(dead.requests) == 3  # alice's third never reached the miner; bob's did


async def test_a_users_research_takes_that_users_turns_at_the_miners(
    tmp_path: Path, stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = FakeOpenAI(stall_after=0)
    monkeypatch.setenv("APEX_MINER", stack.enter_context(serve_openai(dead)))
    monkeypatch.setenv("APEX_MINER_CALLS_PER_USER", "1")
    monkeypatch.setenv("APEX_MINER_QUEUE_SECONDS", "0.2")
    settings = Settings(db=tmp_path / "apex.db", discover_local_miners=False)
    async with LocalApex.open(engine_config(settings)) as engine, anyio.create_task_group() as tg:
        alice, bob = engine.for_user("alice"), engine.for_user("bob")
        await alice.submit_deep_researcher_job(ask("why?"))
        with waiting_for("alice's research to ask the miner for its plan", 30):
            while len(dead.requests) < 1:
                await anyio.sleep(0.01)
        with (
            waiting_for("alice's chat to give up its wait", 30),
            pytest.raises(ApexError) as caught,
        ):
            await alice.chat_completion(ask())
        tg.start_soon(bob.chat_completion, ask())  # bob's turn is his own
        with waiting_for("bob's call to reach the miner", 30):
            while len(dead.requests) < 2:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert caught.value.code == Code.RESOURCE_EXHAUSTED  # her one turn was her research's


# --- item 8: credentials in a miner's URL -----------------------------------------------------


def with_credentials(url: str, user: str = "alice", password: str = PASSWORD) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}:{password}@{rest}"


async def test_url_credentials_are_basic_auth_and_never_shown(
    stack: ExitStack, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeOpenAI()
    url = stack.enter_context(serve_openai(fake))
    closed = f"http://127.0.0.1:{free_port()}/v1"
    miner = engine_miner(MinerSettings.parse(with_credentials(url, "al ice", PASSWORD + "%40")))
    down = engine_miner(MinerSettings.parse(with_credentials(closed)))
    caplog.set_level(logging.DEBUG)
    async with MinerPool([down, miner]) as pool:
        response = await pool.complete(ask())
        statuses = await pool.check()
        with pytest.raises(ApexError) as caught:
            await pool.sibling([down]).complete(ask())
    assert miner.base_url == url and miner.name == url.split("//")[1].split("/")[0]
    assert down.base_url == closed
    token = fake.calls[0].headers["authorization"].removeprefix("Basic ")
    assert base64.b64decode(token).decode() == f"al ice:{PASSWORD}@"
    assert response.system_fingerprint == f"miner:{miner.name}"
    shown = [repr(miner), repr(pool), caught.value.message, caplog.text]
    shown += [f"{s.base_url} {s.detail} {s.name}" for s in statuses]
    for text in shown:
        assert PASSWORD not in text and "alice" not in text
    # httpx2 logged its requests, with the URL it was given: the one without credentials.
    assert f"POST {url}/chat/completions" in caplog.text


def test_url_credentials_stay_out_of_settings_and_doctor(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    env = {"APEX_MINER": with_credentials(closed), "APEX_DB": str(tmp_path / "apex.db")}
    settings = Settings(miner=env["APEX_MINER"], db=tmp_path / "apex.db")
    assert PASSWORD not in repr(settings) and settings.miners[0].basic_auth is not None
    assert settings.miners[0].basic_auth.get_secret_value() == f"alice:{PASSWORD}"
    doctor = run_process(
        [sys.executable, "-m", "apex_mcp", "doctor"],
        what="apex-mcp doctor",
        timeout=60,
        env={**os.environ, **env, "APEX_DISCOVER_LOCAL_MINERS": "false"},
    )
    printed = doctor.stdout + doctor.stderr
    assert closed in printed, printed
    assert PASSWORD not in printed and "alice" not in printed


async def test_url_credentials_never_reach_the_store_logs_or_tool_errors(
    tmp_path: Path, stack: ExitStack
) -> None:
    failing = FakeOpenAI()
    failing.fail(500)
    answering = stack.enter_context(serve_openai(failing))
    closed = f"http://127.0.0.1:{free_port()}/v1"
    miners = [
        {"name": "down", "base_url": with_credentials(closed)},
        {"name": "failing", "base_url": with_credentials(answering)},
    ]
    data = tmp_path / "data"
    data.mkdir()
    env = {
        "APEX_DB": str(data / "apex.db"),
        "APEX_MINERS": json.dumps(miners),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_BACKEND": "local",
        "APEX_LOG_LEVEL": "DEBUG",  # httpx2's own request logging too
    }
    stderr = tmp_path / "stderr.txt"
    with waiting_for("a chat through the server", 60), stderr.open("w") as errlog:
        async with Client(stdio_client(stdio_params(env), errlog=errlog)) as client:
            answer = await client.call_tool("chat", {"user_prompt": "hi"})
    assert answer.is_error and f"down: unreachable at {closed}; failing: HTTP 500" in text_of(
        answer
    )
    assert failing.calls[0].headers["authorization"].startswith("Basic ")
    for path in [stderr, *data.iterdir()]:  # the logs, the database and its WAL
        written = path.read_bytes()
        assert PASSWORD.encode() not in written and b"alice:" not in written, path
    assert f"HTTP Request: POST {answering}/chat/completions".encode() in stderr.read_bytes()


async def test_a_rate_limit_holds_only_the_key_it_was_given_to(stack: ExitStack) -> None:
    limited = HostileMiner("rate_limited", retry_after="600", times=1)
    url = stack.enter_context(serve_hostile(limited))
    async with MinerPool() as root:
        # Two sessions with keys of their own to one endpoint.
        first = root.sibling([MinerConfig(name="x", base_url=url, api_key="key-a")])
        second = root.sibling([MinerConfig(name="x", base_url=url, api_key="key-b")])
        with pytest.raises(ApexError) as limited_error:
            await first.complete(ask())
        answer = await second.complete(ask())
        with pytest.raises(ApexError) as still_limited:
            await first.complete(ask())
    assert limited_error.value.code == still_limited.value.code == Code.RESOURCE_EXHAUSTED
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == "hostile ok"
    assert limited.calls == 2  # the first key's second call never left


# --- what the SSE reader replaced: line ends of every kind, split anywhere --------------------


def sse_app(pieces: list[bytes]) -> Any:
    """An ASGI miner that streams ``pieces`` as they are, for any chat request."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await anyio.sleep(0.01)  # each piece its own read
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def test_sse_lines_end_in_lf_crlf_or_cr_split_anywhere(stack: ExitStack) -> None:
    def event(text: str, end: str) -> str:
        delta = {"content": text}
        choices = {"choices": [{"index": 0, "delta": delta}]}
        return f"data: {json.dumps(choices, ensure_ascii=False)}{end}{end}"

    stream = (
        ": a keep-alive\r\n\r\n"
        + event("one ", "\r\n")
        + event("two ", "\r")
        + event("thr\u00e9e ", "\n")
        + event("four", "\r\n")
        + 'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\r\r'
        + "data: [DONE]\r\n\r\n"
    ).encode()
    # Split everywhere a reader could trip: between CR and LF, inside a UTF-8 character.
    cuts = sorted({stream.index(b"\r\n") + 1, stream.index("\u00e9".encode()) + 1, 7, 100})
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    url = stack.enter_context(serve_asgi(sse_app(pieces)))
    async with MinerPool([MinerConfig(name="odd", base_url=url)]) as pool:
        text = await collect(pool, ask())
    assert text == "one two thr\u00e9e four"


async def test_chunks_before_any_text_are_held_within_bounds(stack: ExitStack) -> None:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    empty = {"choices": [{"index": 0, "delta": {}}]}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
    }
    events = [role, *[empty] * 5000, finish, usage]
    stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    url = stack.enter_context(serve_asgi(sse_app([stream.encode()])))
    async with MinerPool([MinerConfig(name="quiet", base_url=url)]) as pool:
        chunks = [chunk async for chunk in pool.stream(ask())]
    # An empty answer, whole: its role, its finish and its usage, without the 5,000 empty ones.
    assert len(chunks) <= 16
    assert chunks[0].choices[0].delta is not None
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 3
