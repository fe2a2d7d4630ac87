"""The engine's package face: what it offers, what importing it costs, and the capability
types the server checks it by."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import apex_mcp.engine as engine
from apex_mcp.apex.client import ApexClient, CancelsResearch
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.engine import LocalApex, MinerConfig, MinerPool, MinerSet
from apex_mcp.engine.store import SqliteStore

ENGINE = Path(engine.__file__).parent


def test_importing_the_engine_loads_none_of_its_modules() -> None:
    """The server imports the face at start-up; the store, the miners' HTTP client and the
    web retriever load only when the engine is opened."""
    script = (
        "import sys, apex_mcp.engine\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('apex_mcp.engine')"
        " or m in ('httpx2', 'sqlite3', 'trafilatura'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == ["apex_mcp.engine"]


def test_every_public_name_is_there() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    assert engine.LocalApex is LocalApex


def test_the_engines_values_import_nothing_of_the_project_but_the_apex_package() -> None:
    """engine/config.py is what anyone may build the engine from: it depends on nothing above."""
    imported: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse((ENGINE / "config.py").read_text())):
        if isinstance(node, ast.ImportFrom):
            package = ["apex_mcp", "engine"][: max(0, 3 - node.level)] if node.level else []
            imported.append((node.lineno, ".".join([*package, node.module or ""]).strip(".")))
        elif isinstance(node, ast.Import):
            imported += [(node.lineno, alias.name) for alias in node.names]
    beyond = [
        f"line {line}: {name}"
        for line, name in imported
        if name.startswith("apex_mcp") and not name.startswith("apex_mcp.apex")
    ]
    assert not beyond, f"engine/config.py imports the project beyond apex_mcp.apex: {beyond}"


def test_cancelling_research_is_a_capability_of_the_engine_only(tmp_path: Path) -> None:
    local = LocalApex(SqliteStore(tmp_path / "a.db"), MinerPool([]), user_id="u")
    remote = RemoteApex("https://apex.example", "key")
    assert isinstance(local, ApexClient) and isinstance(local, CancelsResearch)
    assert isinstance(remote, ApexClient) and not isinstance(remote, CancelsResearch)


@pytest.mark.anyio
async def test_a_sessions_miners_are_vetted_once_and_shared_by_its_views(tmp_path: Path) -> None:
    """for_session: the engine holds each session's miner set, vetted before its first use; a
    set that is refused is not kept, and is vetted again next time."""
    vetted: list[str] = []

    async def admit(miners: MinerSet) -> None:
        vetted.append(miners.name)
        if miners.name == "session:refused":
            raise ApexError(Code.PERMISSION_DENIED, "not this one")

    async with MinerPool([], discover_local=False) as pool:
        engine = LocalApex(SqliteStore(tmp_path / "a.db"), pool, user_id="local")
        one = (MinerConfig(name="m", base_url="http://127.0.0.1:9/v1"),)
        alice = await engine.for_session("alice", MinerSet("session:a", one), admit=admit)
        bob = await engine.for_session("bob", MinerSet("session:a", one), admit=admit)
        assert (alice.user_id, bob.user_id) == ("alice", "bob")
        assert alice.miners is bob.miners and alice.miners is not pool
        assert alice.miner_set == bob.miner_set == "session:a"
        for _ in range(2):
            with pytest.raises(ApexError):
                await engine.for_session("eve", MinerSet("session:refused", one), admit=admit)
        assert vetted == ["session:a", "session:refused", "session:refused"]
        carol = await engine.for_session("carol")  # no miners of its own: the engine's
        assert carol.miners is pool and carol.miner_set is None and carol.user_id == "carol"
        assert engine.user_id == "local" and engine.miner_set is None  # the engine is unchanged
