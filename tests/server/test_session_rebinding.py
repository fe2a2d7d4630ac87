"""A hosted session's miner or Apex server whose name rebinds (public when checked, 127.0.0.1
when connected to: DNS rebinding) never reaches the loopback server. The name's answers come
from the system resolver, replaced for that one name; the "public" answer is never dialled."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from apex_mcp.config import Settings
from apex_mcp.gateway import create_gateway_app
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import text_of
from tests.server.test_hosted_sessions import ALICE_KEY, session
from tests.server.test_session_lifecycle import served
from tests.servers import serve_asgi

pytestmark = pytest.mark.anyio

NAME = "rebinding.example"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """``NAME`` resolves to a public address once, then to 127.0.0.1."""
    asked: Counter[str] = Counter()
    real = socket.getaddrinfo

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (NAME, NAME.encode()):  # anyio asks with the IDNA bytes
            asked[NAME] += 1
            host = "8.8.8.8" if asked[NAME] == 1 else "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    yield asked


def rebound(url: str) -> str:
    """``url`` with its host replaced by the rebinding name."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{NAME}:{parts.port}").geturl()


async def test_a_sessions_miner_that_rebinds_to_loopback_is_never_reached(
    tmp_path: Path, lookups: Counter[str]
) -> None:
    loopback = FakeOpenAI(models=["a1"], api_key=ALICE_KEY, answer="from loopback")
    with (
        serve_openai(loopback) as loopback_url,
        served(tmp_path, APEX_ALLOW_PRIVATE_ADDRESSES="false") as s,
    ):
        query = urlencode({"miner": rebound(loopback_url), "minerApiKey": ALICE_KEY})
        async with session(s.url, query) as alice:
            result = await alice.call_tool("chat", {"user_prompt": "hi"})
    assert result.is_error
    assert f"refused: {NAME} is a private address (127.0.0.1)" in text_of(result)
    assert "from loopback" not in text_of(result) and ALICE_KEY not in text_of(result)
    assert loopback.calls == []  # never reached
    assert lookups[NAME] >= 2  # checked early, then looked up (and refused) to connect


async def test_a_sessions_apex_server_that_rebinds_to_loopback_is_never_reached(
    tmp_path: Path, lookups: Counter[str]
) -> None:
    miner = FakeOpenAI(models=["g1"], answer="from the loopback gateway")
    with serve_openai(miner) as miner_url:
        gateway = Settings(
            db=tmp_path / "gateway.db",
            miners=[{"name": "g", "base_url": miner_url}],
            discover_local_miners=False,
            gateway_keys={"carol": "gk-carol-SECRET"},
        )
        with (
            serve_asgi(create_gateway_app(gateway)) as gateway_url,
            served(tmp_path, APEX_ALLOW_PRIVATE_ADDRESSES="false") as s,
        ):
            own = urlencode({"apexBaseUrl": rebound(gateway_url), "apexApiKey": "gk-carol-SECRET"})
            async with session(s.url, own) as carol:
                result = await carol.call_tool("chat", {"user_prompt": "hi"})
    assert result.is_error
    assert f"address was refused: {NAME} is a private address (127.0.0.1)" in text_of(result)
    assert "APEX_BASE_URL" not in text_of(result)  # the server's setting is not the session's
    assert "from the loopback gateway" not in text_of(result)
    assert miner.calls == []  # the gateway never answered a chat
    assert lookups[NAME] >= 2
