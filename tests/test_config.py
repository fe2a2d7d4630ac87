"""Settings: environment variables, the TOML file, shorthands and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from apex_mcp.apex.connect import describe_validation_error
from apex_mcp.config import MinerSettings, Settings, default_config_file, load_settings
from apex_mcp.engine import MinerPool
from apex_mcp.serving import engine_config, engine_miner

MINER_SECRET = "sk-test-0123456789abcdef"

TWO_MINERS = """
db = "~/apex/chats.db"

[[miners]]
name = "local"
preset = "ollama"
base_url = "http://127.0.0.1:11434/v1"
models = ["llama3.2", "qwen2.5:7b"]

[[miners]]
name = "chutes"
base_url = "https://llm.chutes.ai/v1"
api_key_env = "CHUTES_API_KEY"
models = ["deepseek-ai/DeepSeek-V3"]
timeout = 60

[gateway_keys]
alice = "alice-secret-key"
"""


def test_defaults_use_the_embedded_engine_and_the_user_data_dir(isolated_environment: Path) -> None:
    settings = load_settings()
    assert settings.resolved_backend == "local"
    assert settings.db.is_relative_to(isolated_environment)
    assert settings.db.name == "apex.db"
    assert settings.miners == []


def test_a_key_or_base_url_selects_the_remote_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MACROCOSMOS_API_KEY", "mc-key")
    assert load_settings().resolved_backend == "remote"
    assert load_settings(backend="local").resolved_backend == "local"
    monkeypatch.delenv("MACROCOSMOS_API_KEY")
    monkeypatch.setenv("APEX_BASE_URL", "http://127.0.0.1:8765/")
    settings = load_settings()
    assert settings.resolved_backend == "remote" and settings.base_url == "http://127.0.0.1:8765"


def test_the_toml_file_configures_two_miners_and_gateway_keys(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = default_config_file()
    path.parent.mkdir(parents=True)
    path.write_text(TWO_MINERS)
    monkeypatch.setenv("CHUTES_API_KEY", "cpk-123")
    settings = load_settings()
    assert [m.name for m in settings.miners] == ["local", "chutes"]
    assert settings.miners[0].models == ["llama3.2", "qwen2.5:7b"]
    assert settings.miners[1].resolved_api_key() is not None
    assert settings.db == isolated_environment / "apex" / "chats.db"
    assert settings.gateway_user("alice-secret-key") == "alice"
    assert settings.gateway_user("wrong") is None and settings.gateway_user(None) is None


def test_environment_beats_the_file(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = isolated_environment / "elsewhere.toml"
    path.write_text('db = "/from/file.db"\nlog_level = "INFO"\n')
    monkeypatch.setenv("APEX_CONFIG", str(path))
    monkeypatch.setenv("APEX_DB", "/from/env.db")
    settings = load_settings()
    assert settings.db == Path("/from/env.db") and settings.log_level == "INFO"
    assert load_settings(db="/from/flag.db").db == Path("/from/flag.db")


def test_a_missing_config_file_named_explicitly_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APEX_CONFIG", "/no/such/config.toml")
    with pytest.raises(FileNotFoundError, match="APEX_CONFIG"):
        load_settings()


def test_one_line_miner_shorthand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_MINER", "https://inference.example/v1")
    monkeypatch.setenv("APEX_MINER_API_KEY", "sk-miner-key")
    monkeypatch.setenv("APEX_MINER_MODEL", "m-large,m-small")
    settings = load_settings()
    (miner,) = settings.miners
    assert miner.base_url == "https://inference.example/v1"
    assert miner.models == ["m-large", "m-small"]
    assert miner.resolved_api_key() is not None
    monkeypatch.setenv("APEX_MINER", "ollama:llama3.2")
    monkeypatch.delenv("APEX_MINER_MODEL")
    (ollama,) = load_settings().miners
    assert ollama.base_url == "http://127.0.0.1:11434/v1" and ollama.models == ["llama3.2"]


def test_miners_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "APEX_MINERS", '[{"name": "a", "base_url": "http://127.0.0.1:1/v1", "models": ["x"]}]'
    )
    assert [m.name for m in load_settings().miners] == ["a"]


def test_bad_settings_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_MINER", "olama")
    with pytest.raises(ValidationError, match="unknown miner preset 'olama'"):
        load_settings()
    monkeypatch.delenv("APEX_MINER")
    monkeypatch.setenv("APEX_BACKEND", "cloud")
    with pytest.raises(ValidationError, match="backend"):
        load_settings()


def test_secrets_stay_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APEX_API_KEY", "apex-key-secret-1")
    monkeypatch.setenv("APEX_MINER", "openai")
    monkeypatch.setenv("APEX_MINER_API_KEY", "miner-key-secret-2")
    monkeypatch.setenv("APEX_GATEWAY_KEYS", '{"bob": "gateway-key-secret-3"}')
    monkeypatch.setenv("APEX_HTTP_TOKEN", "http-token-secret-4")
    settings = Settings()
    text = repr(settings) + str(settings) + str(settings.model_dump())
    for secret in ("apex-key-secret-1", "miner-key-secret-2", "gateway-key-secret-3", "http-token"):
        assert secret not in text


@pytest.mark.parametrize(
    "url",
    ["postgresql://apex:db-secret-8@db.example:5433/apex", "POSTGRES://apex:db-secret-8@db/apex"],
)
def test_a_postgresql_url_is_the_store_and_its_password_never_shows(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("APEX_DB", url)
    settings = load_settings()
    assert settings.store_target == url  # what the engine opens: the whole URL
    assert engine_config(settings).db == url
    shown = str(settings.db)
    assert shown.startswith(url.split(":")[0].lower() + "://apex:***@db")
    assert shown.endswith("/apex")
    engine = engine_config(settings)
    text = f"{settings.db} {settings!r} {settings} {settings.model_dump()} {engine!r}"
    assert "db-secret-8" not in text


def test_a_file_path_and_a_sqlite_url_stay_files(tmp_path: Path) -> None:
    assert load_settings(db=str(tmp_path / "a.db")).store_target == tmp_path / "a.db"
    assert load_settings(db="sqlite:////data/apex.db").store_target == Path("/data/apex.db")


@pytest.mark.parametrize("url", ["mysql://u:db-secret-9@h/apex", "sqlserver://h", "redis://h"])
def test_another_database_url_is_refused_with_what_to_give(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        load_settings(db=url)
    message = describe_validation_error(refused.value)
    assert "not a store apex-mcp can use: give a PostgreSQL URL" in message
    assert "db-secret-9" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APEX_API_KEY", "apex-key-secret-5551234"),
        ("MACROCOSMOS_API_KEY", "apex-key-secret-5551234"),
        ("APEX_BASE_URL", "https://apex.example"),
        ("APEX_BACKEND", "remote"),
    ],
)
def test_session_configuration_is_refused_on_a_remote_backend(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("APEX_HTTP_SESSION_CONFIG", "true")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    shown = describe_validation_error(caught.value, "")  # what the command line prints
    assert "APEX_HTTP_SESSION_CONFIG" in shown and "APEX_API_KEY" in shown
    assert "apex-key-secret-5551234" not in shown + str(caught.value)


def test_session_configuration_is_accepted_on_the_embedded_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APEX_HTTP_SESSION_CONFIG", "true")
    settings = load_settings()
    assert settings.http_session_config and settings.resolved_backend == "local"
    monkeypatch.setenv("APEX_API_KEY", "apex-key-secret-5551234")
    assert load_settings(backend="local").http_session_config  # the engine, chosen outright
    monkeypatch.setenv("APEX_HTTP_SESSION_CONFIG", "false")
    assert load_settings().resolved_backend == "remote"  # without sessions, the key is fine


def test_miner_presets_and_specs() -> None:
    ollama = MinerSettings.parse("ollama")
    assert (ollama.name, ollama.base_url, ollama.models) == (
        "ollama",
        "http://127.0.0.1:11434/v1",
        [],
    )
    tagged = MinerSettings.parse("ollama:llama3.2:3b,qwen2.5")
    assert (
        tagged.models == ["llama3.2:3b", "qwen2.5"]
        and engine_miner(tagged).default_model == "llama3.2:3b"
    )
    openai = MinerSettings.parse("openai:gpt-4o-mini")
    assert openai.api_key_env == "OPENAI_API_KEY" and not openai.supports_top_k
    chutes = MinerSettings.from_preset("chutes", models=["deepseek-ai/DeepSeek-V3"])
    assert chutes.base_url == "https://llm.chutes.ai/v1" and chutes.api_key_env == "CHUTES_API_KEY"
    assert MinerSettings.parse("targon").base_url == "https://api.targon.com/v1"
    custom = MinerSettings.parse("https://llm.example.com:8443/v1/", models=["m"])
    assert (custom.name, custom.base_url, custom.preset) == (
        "llm.example.com:8443",
        "https://llm.example.com:8443/v1",
        None,
    )
    with pytest.raises(ValueError, match=r"unknown miner preset 'olama'.*ollama, lmstudio"):
        MinerSettings.parse("olama")


def test_a_miners_key_comes_from_the_environment_and_never_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", MINER_SECRET)
    together = MinerSettings.parse("together")
    key = together.resolved_api_key()
    assert key is not None and key.get_secret_value() == MINER_SECRET
    explicit = MinerSettings.parse("together", api_key=SecretStr("sk-other"))
    assert explicit.resolved_api_key() == SecretStr("sk-other")
    assert MINER_SECRET not in repr(MinerSettings.parse("openai", api_key=SecretStr(MINER_SECRET)))
    assert MINER_SECRET not in repr(
        MinerPool([engine_miner(MinerSettings.parse("openai", api_key=SecretStr(MINER_SECRET)))])
    )


def test_http_tokens_name_users_and_a_bad_value_never_shows_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APEX_HTTP_TOKENS", '{"alice": "http-tok-secret-a", "bob": "tok-b-secret"}')
    settings = load_settings()
    assert settings.serves_users
    assert {u: t.get_secret_value() for u, t in settings.http_tokens.items()} == {
        "alice": "http-tok-secret-a",
        "bob": "tok-b-secret",
    }
    assert "http-tok-secret-a" not in repr(settings) + str(settings.model_dump())
    for value, said in (
        ('{"alice": "same-secret-x", "bob": "same-secret-x"}', "the same token"),
        ('{"alice": "unclosed-secret-y"', "not valid JSON"),
        ('{"alice": " "}', "an empty token"),
    ):
        monkeypatch.setenv("APEX_HTTP_TOKENS", value)
        with pytest.raises(ValidationError) as caught:
            load_settings()
        shown = describe_validation_error(caught.value, "")  # what the command line prints
        assert said in shown and "secret" not in shown


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"APEX_API_KEY": "apex-key-secret-5551234"}, "remote Apex server"),
        ({"APEX_HTTP_SESSION_CONFIG": "true"}, "choose one"),
        ({"APEX_OAUTH_TOKEN_CHECK": "introspection"}, "APEX_OAUTH_CLIENT_ID"),
    ],
)
def test_oauth_is_refused_where_it_cannot_hold(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], said: str
) -> None:
    monkeypatch.setenv("APEX_OAUTH_ISSUER", "https://id.example.com/realms/team")
    assert load_settings().serves_users
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    shown = describe_validation_error(caught.value, "")
    assert said in shown and "apex-key-secret" not in shown


def test_a_settings_error_never_repeats_the_value_given() -> None:
    """pydantic's own message for a bad value (what a program using Settings sees) leaves the
    value out: it may hold keys."""
    secret = "sk-live-SECRET-4242"
    with pytest.raises(ValidationError) as refused:
        Settings(http_tokens=f'{{"alice": ["{secret}"]}}')  # type: ignore[arg-type]
    assert secret not in str(refused.value) and secret not in repr(refused.value)
