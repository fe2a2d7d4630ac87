"""The Claude Desktop extension: its manifest passes the official ``mcpb validate`` and says
what the package is; scripts/pack_mcpb.py packs a bundle that runs the way a host runs it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.packaging.tooling import (
    MANIFESTS,
    ROOT,
    UV_CACHE,
    dev_bin,
    expected_tool_names,
    node_env,
    node_tool,
    settings_env_names,
    stdio_tools_list,
    version_in_init,
)
from tests.servers import run_process

MANIFEST = MANIFESTS / "mcpb" / "manifest.json"
SUBSTITUTION = re.compile(r"\$\{user_config\.([A-Za-z0-9_]+)\}")


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return data


def mcpb(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run_process(
        [*node_tool("mcpb"), *args], what=f"mcpb {args[0]}", timeout=120, env=node_env(), cwd=cwd
    )


def test_the_official_cli_validates_the_manifest(tmp_path: Path) -> None:
    done = mcpb("validate", str(MANIFEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Manifest schema validation passes!" in done.stdout
    # ...and it does reject what is wrong: the same manifest with an unknown server type.
    broken = manifest()
    broken["server"]["type"] = "ruby"
    (tmp_path / "manifest.json").write_text(json.dumps(broken))
    shutil.copy(MANIFEST.parent / "icon.png", tmp_path / "icon.png")
    refused = mcpb("validate", str(tmp_path / "manifest.json"))
    assert refused.returncode != 0 and "server" in refused.stdout + refused.stderr


def test_the_manifest_describes_this_package() -> None:
    data = manifest()
    assert data["manifest_version"] == "0.4"  # the newest the pinned mcpb knows; adds "uv"
    assert data["version"] == version_in_init()
    assert data["server"]["type"] == "uv" and data["server"]["entry_point"] == "server/main.py"
    assert {t["name"] for t in data["tools"]} == expected_tool_names()
    assert data["compatibility"]["runtimes"]["python"] == ">=3.11"

    # Each user_config entry reaches the server as a setting it reads, and every one is used.
    options = data["user_config"]
    env = data["server"]["mcp_config"]["env"]
    used = {m for value in env.values() for m in SUBSTITUTION.findall(value)}
    assert used == set(options)
    assert set(env) <= settings_env_names(), set(env) - settings_env_names()
    for name, option in options.items():
        secret = any(word in name for word in ("key", "token", "secret", "password"))
        assert option.get("sensitive", False) is secret, f"{name}: sensitive must be {secret}"
        # Nothing is required: with no settings the server finds a local Ollama or LM Studio.
        assert not option.get("required", False), name


@pytest.fixture
def fake_miner() -> Iterator[str]:
    with serve_openai(FakeOpenAI(models=["m1"])) as url:
        yield url


def test_the_packed_bundle_runs_as_claude_desktop_runs_it(tmp_path: Path, fake_miner: str) -> None:
    node_tool("mcpb")  # skip (or fail in CI) with the reason before packing
    bundle = tmp_path / "apex-mcp.mcpb"
    packed = run_process(
        [sys.executable, str(ROOT / "scripts" / "pack_mcpb.py"), "--out", str(bundle)],
        what="scripts/pack_mcpb.py to pack the bundle",
        timeout=300,
        env=node_env(),
    )
    assert packed.returncode == 0, packed.stdout[-3000:] + packed.stderr[-3000:]
    unpacked = tmp_path / "extension"
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        archive.extractall(unpacked)
    assert {"manifest.json", "icon.png", "pyproject.toml", "server/main.py"} <= names
    assert "server/apex_mcp/cli/main.py" in names and "server/apex_mcp/server/app.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "server/tests/"))]
    assert not [n for n in names if "__pycache__" in n or n.startswith(".")]
    assert json.loads((unpacked / "manifest.json").read_text()) == manifest()
    assert "[build-system]" not in (unpacked / "pyproject.toml").read_text()

    # Run it as the host does: mcp_config, with ${__dirname} and ${user_config.*} filled in
    # (the settings left empty are empty strings), over stdio.
    values = {"miner": fake_miner, "miner_model": "m1"}
    config = manifest()["server"]["mcp_config"]

    def fill(text: str) -> str:
        text = text.replace("${__dirname}", str(unpacked))
        return SUBSTITUTION.sub(lambda m: values.get(m.group(1), ""), text)

    command = [fill(config["command"]), *(fill(a) for a in config["args"])]
    assert command[0] == "uv"
    command[0] = str(dev_bin() / "uv")
    env = {
        **node_env(),
        **{k: fill(v) for k, v in config["env"].items()},
        "APEX_DB": str(tmp_path / "apex.db"),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "UV_CACHE_DIR": str(UV_CACHE),
        "UV_PYTHON": sys.executable,
        "UV_NO_PROGRESS": "1",
    }
    tools = stdio_tools_list(command, env, tmp_path)
    assert {t["name"] for t in tools} == expected_tool_names()
