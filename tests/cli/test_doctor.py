"""``apex-mcp doctor``: every FAIL line says what to do, naming the setting; nothing secret
is printed. In-process, against fake miners and closed ports on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from apex_mcp.cli.doctor import doctor
from apex_mcp.config import Settings
from apex_mcp.engine.search import BraveSearch
from apex_mcp.gateway import create_gateway_app
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearchApi, FakeSearxng, hit, serve_searxng
from tests.servers import free_port, serve_asgi

pytestmark = pytest.mark.anyio

SECRET = "sk-doctor-secret-5521"
SET_A_MINER = (
    "set APEX_MINER (a preset such as ollama or openrouter, or an endpoint URL), "
    "APEX_MINER_API_KEY and APEX_MINER_MODEL"
)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "apex.db"
    monkeypatch.setenv("APEX_DB", str(path))
    return path


def closed() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


async def run_doctor(
    capsys: pytest.CaptureFixture[str], local_probe: list[tuple[str, str]] | None = None
) -> tuple[int, list[str]]:
    """doctor with the environment as it is; its exit code and its check lines."""
    code = await doctor(Settings(), local_probe=local_probe or [])
    out = capsys.readouterr().out
    assert SECRET not in out
    return code, [line for line in out.splitlines() if line.startswith("[")]


def host_of(url: str) -> str:
    """The name APEX_MINER gives a miner at ``url``: its host and port."""
    return url.removeprefix("http://").split("/")[0]


def fails(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("[FAIL]")]


@pytest.fixture
def miner() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI(models=["m1"])
    with serve_openai(fake) as url:
        yield fake, url


# --- no miner configured ----------------------------------------------------------------------


async def test_nothing_running_and_nothing_set_says_start_ollama_or_set_a_miner(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ollama, lmstudio = closed(), closed()
    code, lines = await run_doctor(capsys, [("Ollama", ollama), ("LM Studio", lmstudio)])
    assert code == 1
    assert lines[-3:] == [
        f"[--  ] miner Ollama: {ollama} (looked for locally): unreachable",
        f"[--  ] miner LM Studio: {lmstudio} (looked for locally): unreachable",
        "[FAIL] miners: none configured, and none runs here: start Ollama (`ollama serve`) or "
        f"start LM Studio's local server; or {SET_A_MINER}",
    ]


async def test_no_miner_and_no_looking_says_what_to_set(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APEX_DISCOVER_LOCAL_MINERS", "false")
    code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        "[FAIL] miners: none configured, and looking for local ones is off "
        f"(APEX_DISCOVER_LOCAL_MINERS): {SET_A_MINER}"
    ]


async def test_one_local_server_is_enough(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lmstudio = closed()
    with serve_openai(FakeOpenAI(models=["llama3.2:latest"])) as ollama:
        code, lines = await run_doctor(capsys, [("Ollama", ollama), ("LM Studio", lmstudio)])
    assert (code, fails(lines)) == (0, [])
    assert f"[--  ] miner LM Studio: {lmstudio} (looked for locally): unreachable" in lines


async def test_a_local_server_without_a_model_says_to_pull_one(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_openai(FakeOpenAI(models=[])) as ollama:
        code, lines = await run_doctor(capsys, [("Ollama", ollama)])
    assert code == 1
    assert fails(lines) == [
        f"[FAIL] miner Ollama: {ollama} (looked for locally): answers; lists 0 model(s): "
        "pull one (`ollama pull llama3.2`)"
    ]


# --- a miner set with APEX_MINER --------------------------------------------------------------


async def test_a_refused_key_names_apex_miner_api_key(
    db: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    miner: tuple[FakeOpenAI, str],
) -> None:
    fake, url = miner
    fake.api_key = "sk-the-right-one"  # it refuses ours, and echoes it back
    monkeypatch.setenv("APEX_MINER", url)
    monkeypatch.setenv("APEX_MINER_API_KEY", SECRET)
    code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        f"[FAIL] miner {host_of(url)}: {url} (configured): "
        "HTTP 401 (Incorrect API key provided: ***): the key was refused: set "
        "APEX_MINER_API_KEY to a valid key"
    ]


async def test_a_preset_without_its_key_names_both_variables(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No key: doctor stops before asking anything of openrouter.ai.
    monkeypatch.setenv("APEX_MINER", "openrouter")
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        "[FAIL] miner openrouter: https://openrouter.ai/api/v1 (configured): no API key: "
        "set APEX_MINER_API_KEY (or OPENROUTER_API_KEY)"
    ]


async def test_an_unreachable_miner_names_apex_miner(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = closed()
    monkeypatch.setenv("APEX_MINER", url)
    code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        f"[FAIL] miner {host_of(url)}: {url} (configured): unreachable: check that it is "
        "running, and that APEX_MINER is its address"
    ]


async def test_an_ollama_that_is_not_running_says_start_it(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = closed()  # the ollama preset, on another port than its usual one
    entry = f'{{"name": "ollama", "base_url": "{url}", "preset": "ollama"}}'
    monkeypatch.setenv("APEX_MINERS", f"[{entry}]")
    code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        f"[FAIL] miner ollama: {url} (configured): unreachable: start Ollama (`ollama serve`), "
        "or check that the base_url of the miner 'ollama' in APEX_MINERS is its address"
    ]


# --- a miner of the config file or APEX_MINERS ------------------------------------------------


def answering(status: int) -> Any:
    """An ASGI app that answers every request with ``status`` and an OpenAI error."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b'{"error": {"message": "no such thing"}}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (
            404,
            "no OpenAI-compatible API answers there: the base_url of the miner 'x' in "
            "APEX_MINERS should be its API root, usually ending in /v1",
        ),
        (503, "the server itself failed: try again later, or look at its logs"),
        (
            429,
            "it is rate limiting this key: wait, or check the account's limits and credit",
        ),
    ],
)
async def test_a_miner_of_apex_miners_that_fails_says_what_to_do(
    db: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    fix: str,
) -> None:
    with serve_asgi(answering(status)) as url:
        monkeypatch.setenv("APEX_MINERS", f'[{{"name": "x", "base_url": "{url}/v1"}}]')
        code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        f"[FAIL] miner x: {url}/v1 (configured): HTTP {status} (no such thing): {fix}"
    ]


async def test_a_refused_key_of_apex_miners_names_its_variable(
    db: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    miner: tuple[FakeOpenAI, str],
) -> None:
    fake, url = miner
    fake.api_key = "sk-the-right-one"
    monkeypatch.setenv("TEAM_MINER_KEY", SECRET)
    entry = f'{{"name": "team", "base_url": "{url}", "api_key_env": "TEAM_MINER_KEY"}}'
    monkeypatch.setenv("APEX_MINERS", f"[{entry}]")
    code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        f"[FAIL] miner team: {url} (configured): HTTP 401 (Incorrect API key provided: ***): "
        "the key was refused: set TEAM_MINER_KEY (its api_key_env) to a valid key"
    ]


# --- the store --------------------------------------------------------------------------------


async def test_a_damaged_store_says_what_to_do(
    db: Path, capsys: pytest.CaptureFixture[str], miner: tuple[FakeOpenAI, str]
) -> None:
    db.write_text("this is not a database, it only has its name")
    code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines)[0] == (
        f"[FAIL] store: {db}: {db} is damaged or not an apex-mcp database: file is not a "
        "database: move the file away (or restore a backup), or set APEX_DB to another file"
    )


# --- a remote Apex server ---------------------------------------------------------------------


async def test_a_remote_server_that_refuses_the_key_names_apex_api_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = Settings(
        db=tmp_path / "gateway.db",
        discover_local_miners=False,
        gateway_keys={"u": SecretStr("the-right-key")},
    )
    with serve_asgi(create_gateway_app(gateway)) as url:
        monkeypatch.setenv("APEX_BASE_URL", url)
        monkeypatch.setenv("APEX_API_KEY", SECRET)
        code, lines = await run_doctor(capsys)
    assert code == 1
    assert fails(lines) == [
        "[FAIL] key accepted: missing or unknown API key: ask the gateway's operator for one "
        "(check the API key (APEX_API_KEY, or the key the gateway gave you))"
    ]


# --- web search -------------------------------------------------------------------------------


async def test_each_search_provider_is_asked_once_and_a_refused_key_said_without_it(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SearXNG and the keyed APIs are asked one query each, in the order they are tried;
    DuckDuckGo (no key, no address) is only named, so that doctor needs no internet."""
    monkeypatch.setenv("APEX_DISCOVER_LOCAL_MINERS", "false")
    searxng = FakeSearxng(hits=[hit("http://pages.example", "/bees")])
    brave = FakeSearchApi("brave", "the-right-key")
    with serve_searxng(searxng) as searxng_url, serve_asgi(brave) as brave_url:
        monkeypatch.setenv("APEX_SEARCH_PROVIDER", "searxng,brave,duckduckgo")
        monkeypatch.setenv("APEX_SEARXNG_URL", searxng_url)
        monkeypatch.setenv("APEX_BRAVE_API_KEY", SECRET)  # not the key Brave knows
        monkeypatch.setattr(BraveSearch, "base_url", brave_url)
        _, lines = await run_doctor(capsys)
    assert [line for line in lines if "web search" in line] == [
        f"[ok  ] web search: searxng at {searxng_url}: 1 hit(s)",
        "[FAIL] web search: brave: the API key was refused (HTTP 401): check "
        "APEX_BRAVE_API_KEY and the network, or add a fallback",
        "[--  ] web search: duckduckgo: keyless: not asked here",
    ]
    assert len(searxng.queries) == 1 and len(brave.requests) == 1
