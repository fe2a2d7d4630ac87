"""A hosted session's configuration, from the /mcp query string: what parses, what is refused
and how the refusal reads, and that a key never shows, in a message, a repr or a name."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, urlencode

import anyio
import pytest

from apex_mcp.apex import models as m
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.config import MinerSettings, Settings
from apex_mcp.engine import LocalApex, MinerPool
from apex_mcp.engine import local as engine_local
from apex_mcp.engine.store import SqliteStore
from apex_mcp.server.sessions import (
    FIELD_NAMES,
    MAX_QUERY_BYTES,
    SessionClients,
    SessionConfig,
    SessionConfigError,
    parse_query,
)
from apex_mcp.serving import engine_config

SECRET = "sk-SECRET-123"
OTHER_SECRET = "sk-OTHER-SECRET-456"


def refused(query: str | bytes) -> str:
    """The message parse_query refuses ``query`` with; it never holds a key given."""
    with pytest.raises(SessionConfigError) as caught:
        parse_query(query)
    message = str(caught.value)
    assert SECRET not in message and OTHER_SECRET not in message, message
    return message


def b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


# --- what parses ----------------------------------------------------------------------------


def test_smithery_dot_notation_configures_the_sessions_miner() -> None:
    config = parse_query(b"miner=openrouter&minerApiKey=sk-x&minerModel=a,b")
    assert config.miner == "openrouter" and config.miner_model == "a,b"
    assert config.miner_api_key is not None and config.miner_api_key.get_secret_value() == "sk-x"
    assert not config.is_remote and config != SessionConfig()
    miner = config.miner_config()
    assert miner.base_url == "https://openrouter.ai/api/v1"
    assert miner.models == ["a", "b"]


def test_the_apex_server_settings_configure_a_remote_session() -> None:
    config = parse_query("apexBaseUrl=https://apex.example&apexApiKey=" + SECRET)
    assert config.is_remote and config.miner is None
    assert config.apex_base_url == "https://apex.example"
    assert config.apex_api_key is not None and config.apex_api_key.get_secret_value() == SECRET
    # The key alone: the default Apex server, with the session's own key.
    assert parse_query("apexApiKey=" + SECRET).is_remote


# Its standard base64 has both "+" and "/": each spelling of them in a URL must decode.
CONFIG = {"miner": "openrouter", "minerApiKey": "sk-x??~>~>", "minerModel": "a,b"}
STANDARD = base64.b64encode(json.dumps(CONFIG).encode()).decode()
URLSAFE = base64.urlsafe_b64encode(json.dumps(CONFIG).encode()).decode()


def test_the_example_config_exercises_plus_slash_and_padding() -> None:
    assert "+" in STANDARD and "/" in STANDARD and STANDARD.endswith("=")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(quote(STANDARD, safe=""), id="standard-all-encoded"),  # URLSearchParams
        pytest.param(quote(STANDARD, safe="/"), id="standard-slash-raw"),
        pytest.param(quote(STANDARD, safe="/=").rstrip("="), id="standard-unpadded"),
        pytest.param(URLSAFE, id="urlsafe"),
        pytest.param(URLSAFE.rstrip("="), id="urlsafe-unpadded"),
        # Smithery's Python examples put b64encode(...) into the URL as it is.
        pytest.param(STANDARD, id="standard-raw"),
    ],
)
def test_a_base64_json_config_parses_like_the_dot_notation(value: str) -> None:
    assert parse_query("config=" + value) == parse_query(urlencode(CONFIG))


def test_the_platforms_own_parameters_are_ignored() -> None:
    assert parse_query("api_key=smithery-key&profile=straight-gull") == SessionConfig()
    with_them = parse_query(f"miner=openrouter&api_key=smithery-key&profile=p&minerApiKey={SECRET}")
    assert with_them == parse_query(f"miner=openrouter&minerApiKey={SECRET}")


def test_blank_values_count_as_unset() -> None:
    empty = parse_query("miner=&minerApiKey=&minerModel=%20&apexBaseUrl=&apexApiKey=")
    assert empty == SessionConfig()
    config = parse_query("miner=openrouter&minerApiKey=+&minerModel=")
    assert config == SessionConfig(miner="openrouter")
    assert config.miner_api_key is None and config.user_id is None
    assert parse_query("config=" + b64({"miner": "openrouter", "minerApiKey": ""})) == config


@pytest.mark.parametrize("query", [b"", ""])
def test_an_empty_query_is_the_empty_config(query: str | bytes) -> None:
    config = parse_query(query)
    assert config == SessionConfig()
    assert not config.is_remote and config.user_id is None


# --- what is refused, and how it reads --------------------------------------------------------


def test_a_misspelt_setting_is_named_with_the_valid_ones() -> None:
    message = refused(f"miner=openrouter&minerApikey={SECRET}")
    assert "minerApikey" in message
    for name in FIELD_NAMES:
        assert name in message
    assert set(FIELD_NAMES) == {"miner", "minerApiKey", "minerModel", "apexBaseUrl", "apexApiKey"}


def test_a_nested_dot_name_is_refused() -> None:
    message = refused(f"miner=openrouter&minerApiKey={SECRET}&a.b=1")
    assert "a.b" in message and "minerApiKey" in message


def test_an_unknown_setting_in_a_base64_config_is_refused() -> None:
    message = refused("config=" + b64({"miner": "openrouter", "minerKey": SECRET}))
    assert "minerKey" in message


def test_miner_and_apex_settings_together_are_refused() -> None:
    for query in (
        f"miner=openrouter&minerApiKey={SECRET}&apexApiKey={OTHER_SECRET}",
        f"minerModel=m&apexBaseUrl=https://apex.example&apexApiKey={OTHER_SECRET}",
    ):
        message = refused(query)
        assert "not both" in message and "miner" in message and "apexApiKey" in message


@pytest.mark.parametrize(
    ("query", "named"),
    [
        (f"minerApiKey={SECRET}", "minerApiKey"),
        ("minerModel=m1", "minerModel"),
        (f"minerApiKey={SECRET}&minerModel=m1", "minerApiKey and minerModel"),
    ],
)
def test_miner_settings_without_a_miner_are_refused(query: str, named: str) -> None:
    message = refused(query)
    assert named in message and "need miner" in message


def test_an_apex_base_url_without_its_key_is_refused() -> None:
    message = refused("apexBaseUrl=https://apex.example")
    assert "apexBaseUrl needs apexApiKey" in message


def test_an_unknown_miner_preset_is_refused_with_the_known_ones() -> None:
    message = refused(f"miner=olama&minerApiKey={SECRET}")
    assert "unknown miner preset 'olama'" in message
    assert "ollama" in message and "openrouter" in message


def test_a_miner_url_that_is_not_http_is_refused() -> None:
    message = refused(f"miner=ftp://user:{SECRET}@llm.example/v1&minerApiKey={SECRET}")
    assert "miner must be a preset or the http(s) URL" in message
    assert "llm.example" not in message  # a URL can hold credentials: not repeated


def test_an_apex_base_url_that_is_not_http_is_refused() -> None:
    message = refused(f"apexBaseUrl=ftp://apex.example&apexApiKey={SECRET}")
    assert "apexBaseUrl" in message


@pytest.mark.parametrize(
    "value",
    [
        "!!!not-base64!!!",
        "e3",  # decodes to "{" alone
        base64.b64encode(('{"minerApiKey": "' + SECRET + '"').encode()).decode(),  # no "}"
        b64([SECRET]),
        b64(SECRET),
        b64(42),
        base64.b64encode(b"\xff\xfe" + SECRET.encode()).decode(),  # not UTF-8
    ],
)
def test_a_config_that_is_not_base64_of_a_json_object_is_refused(value: str) -> None:
    assert refused("config=" + quote(value, safe="")) == "config is not base64 of a JSON object"


def test_a_key_of_the_wrong_type_is_refused_without_showing_it() -> None:
    message = refused("config=" + b64({"miner": "openrouter", "minerApiKey": [SECRET]}))
    assert "minerApiKey" in message


def test_an_oversized_query_is_refused() -> None:
    models = ",".join(f"model-{i}" for i in range(MAX_QUERY_BYTES // 8))
    query = f"miner=openrouter&minerApiKey={SECRET}&minerModel={models}"
    assert len(query) > MAX_QUERY_BYTES
    message = refused(query.encode())
    assert str(MAX_QUERY_BYTES) in message and "query" in message


# --- keys stay hidden ---------------------------------------------------------------------------


def test_reprs_and_dumps_never_show_a_key() -> None:
    for config in (
        parse_query(f"miner=openrouter&minerApiKey={SECRET}&minerModel=a"),
        parse_query(f"apexBaseUrl=https://apex.example&apexApiKey={SECRET}"),
    ):
        shown = [repr(config), str(config), config.model_dump_json(), str(config.model_dump())]
        for text in shown:
            assert SECRET not in text, text
        assert "**********" in config.model_dump_json()


def test_the_user_is_named_by_the_miner_key_alone() -> None:
    one = parse_query(f"miner=openrouter&minerApiKey={SECRET}")
    again = parse_query(f"miner=openrouter&minerApiKey={SECRET}")
    elsewhere = parse_query(f"miner=https://llm.example/v1&minerApiKey={SECRET}&minerModel=m")
    other = parse_query(f"miner=openrouter&minerApiKey={OTHER_SECRET}")
    assert one.user_id is not None and one.user_id == again.user_id == elsewhere.user_id
    assert other.user_id is not None and other.user_id != one.user_id
    assert SECRET not in one.user_id and OTHER_SECRET not in other.user_id
    assert parse_query("miner=openrouter").user_id is None
    assert parse_query(f"apexApiKey={SECRET}").user_id is None  # its chats are on that server


def test_the_fingerprint_changes_with_every_field_and_never_shows_a_key() -> None:
    queries = [
        "",
        "miner=openrouter",
        f"miner=openrouter&minerApiKey={SECRET}",
        f"miner=openrouter&minerApiKey={OTHER_SECRET}",
        f"miner=openrouter&minerApiKey={SECRET}&minerModel=a",
        f"miner=openrouter&minerApiKey={SECRET}&minerModel=b",
        f"miner=together&minerApiKey={SECRET}&minerModel=a",
        f"apexApiKey={SECRET}",
        f"apexApiKey={OTHER_SECRET}",
        f"apexBaseUrl=https://apex.example&apexApiKey={SECRET}",
        f"apexBaseUrl=https://other.example&apexApiKey={SECRET}",
    ]
    prints = [parse_query(q).fingerprint for q in queries]
    assert len(set(prints)) == len(queries)
    assert [parse_query(q).fingerprint for q in queries] == prints  # the same config, the same
    for fingerprint in prints:
        assert SECRET not in fingerprint and OTHER_SECRET not in fingerprint


def test_a_preset_miner_never_uses_the_servers_own_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "operator-key")
    operator = MinerSettings.parse("openrouter").resolved_api_key()  # the server's own miner does
    assert operator is not None and operator.get_secret_value() == "operator-key"

    assert parse_query(b"miner=openrouter").miner_config().resolved_api_key() is None
    own = parse_query(f"miner=openrouter&minerApiKey={SECRET}").miner_config().resolved_api_key()
    assert own is not None and own.get_secret_value() == SECRET


# --- a session's miner or server must be public -------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "setting"),
    [
        (f"miner=http://127.0.0.1:9/v1&minerApiKey={SECRET}", "miner"),
        (f"miner=http://10.0.0.1/v1&minerApiKey={SECRET}", "miner"),
        ("miner=http://169.254.169.254/", "miner"),
        ("miner=ollama", "miner"),  # a preset on the server's own loopback
        (f"apexBaseUrl=http://10.0.0.1&apexApiKey={SECRET}", "apexBaseUrl"),
        (f"apexBaseUrl=http://169.254.169.254/&apexApiKey={SECRET}", "apexBaseUrl"),
    ],
)
async def test_a_session_cannot_reach_a_private_address(
    tmp_path: Path, query: str, setting: str
) -> None:
    settings = Settings(db=tmp_path / "a.db", discover_local_miners=False)
    config = parse_query(query)
    async with MinerPool([], discover_local=False) as miners, anyio.create_task_group() as tasks:
        engine = LocalApex(SqliteStore(settings.db), miners, user_id="local")
        clients = SessionClients(settings, tasks)
        for _ in range(2):  # a refused endpoint is not kept for the next call either
            with pytest.raises(ApexError) as caught:
                await clients._client(config, engine, "session:anonymous")
            error = caught.value
            assert error.code is Code.PERMISSION_DENIED
            assert "private address" in error.message and setting in error.message
            assert SECRET not in str(error) and SECRET not in error.message
        await clients.aclose()


@pytest.mark.anyio
async def test_private_addresses_are_reachable_when_the_operator_allows_them(
    tmp_path: Path,
) -> None:
    settings = Settings(
        db=tmp_path / "a.db", discover_local_miners=False, allow_private_addresses=True
    )
    config = parse_query(f"miner=http://127.0.0.1:9/v1&minerApiKey={SECRET}")
    async with MinerPool([], discover_local=False) as miners, anyio.create_task_group() as tasks:
        engine = LocalApex(SqliteStore(settings.db), miners, user_id="local")
        clients = SessionClients(settings, tasks)
        view = await clients._client(config, engine, "session:anonymous")
        assert isinstance(view, LocalApex)
        assert view.user_id == config.user_id and view.miners is not miners
        assert view.miner_set is not None and SECRET not in view.miner_set
        again = await clients._client(config, engine, "session:anonymous")
        assert isinstance(again, LocalApex) and again.miners is view.miners  # one pool per config
        assert engine.miners is miners and engine.miner_set is None  # the engine is unchanged
        await clients.aclose()


@pytest.mark.anyio
async def test_the_least_recently_used_miner_sets_are_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays bounded however many sessions come: past the limit, the runner lets go of
    the set used longest ago (its pending jobs wait for its session, as after a restart)."""
    monkeypatch.setattr(engine_local, "MAX_MINER_SETS", 2)
    settings = Settings(
        db=tmp_path / "a.db", discover_local_miners=False, allow_private_addresses=True
    )
    ask = m.ChatCompletionRequest(messages=[m.ChatMessage(role="user", content="q")])
    configs = [parse_query(f"miner=http://127.0.0.1:9/v1&minerApiKey=k{i}") for i in range(3)]
    async with (
        LocalApex.open(engine_config(settings)) as engine,
        anyio.create_task_group() as tasks,
    ):
        assert engine.research is not None
        clients = SessionClients(settings, tasks)
        names = []
        for config in configs:
            view = await clients._client(config, engine, "session:anonymous")
            assert isinstance(view, LocalApex) and view.miner_set is not None
            names.append(view.miner_set)
        with pytest.raises(ApexError):  # the first set was let go of
            await engine.research.submit("u", ask, miners=names[0])
        await clients._client(configs[0], engine, "session:anonymous")  # its session is back
        with pytest.raises(ApexError):  # now the second is the one used longest ago
            await engine.research.submit("u", ask, miners=names[1])
        await clients.aclose()


def test_credentials_in_a_miner_url_are_basic_auth_and_never_shown() -> None:
    config = parse_query(f"miner=https://bob:{SECRET}@llm.example/v1&minerModel=m")
    shown = [repr(config), str(config), config.model_dump_json(), str(config.model_dump())]
    for text in shown:
        assert SECRET not in text, text
    miner = config.miner_config()
    assert miner.base_url == "https://llm.example/v1" and SECRET not in repr(miner)
    assert miner.basic_auth is not None
    assert miner.basic_auth.get_secret_value() == f"bob:{SECRET}"
    # Other credentials are another configuration: they never share a pool.
    other = parse_query(f"miner=https://bob:{OTHER_SECRET}@llm.example/v1&minerModel=m")
    assert other.fingerprint != config.fingerprint


def test_an_apex_server_url_with_credentials_is_refused_without_repeating_them() -> None:
    message = refused(f"apexBaseUrl=https://bob:{SECRET}@apex.example&apexApiKey=k".encode())
    assert message.endswith("apexBaseUrl must not hold credentials: give the key as apexApiKey")
    assert SECRET not in message
