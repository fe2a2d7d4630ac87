"""The built wheel, tested as users get it: its file list and metadata; then installed into a
fresh venv, run by ``uvx`` and by ``pipx run`` (which installs with pip), away from the source
tree: --help, --version, ``python -m apex_mcp``, doctor against a fake miner, and a stdio
tools/list."""

from __future__ import annotations

import email.parser
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from apex_mcp import __version__
from tests.packaging.tooling import (
    MANIFESTS,
    PIP_CACHE,
    ROOT,
    UV_CACHE,
    dev_bin,
    expected_tool_names,
    stdio_tools_list,
    version_in_init,
)
from tests.server.harness import user_miner_env
from tests.servers import run_process

SECRET = "sk-packaging-secret-31"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from the source tree as a release would build it (offline: the
    hatchling of the dev environment, no build isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    built = run_process(
        [*pip_wheel, "-q", "-w", str(out), str(ROOT)], what="pip to build the wheel", timeout=120
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture
def miner_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """What a user sets: one miner (the fake OpenAI server) with its key and model."""
    with user_miner_env(tmp_path, SECRET) as env:
        yield env


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no dev venv on PATH, no APEX_* of the tests'."""
    dev = str(dev_bin())
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != dev)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APEX_", "VIRTUAL_ENV"))}
    env["PATH"] = path
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_process(command, what=" ".join(command)[:200], timeout=300, env=env, cwd=cwd)


def test_the_wheel_holds_the_package_and_nothing_else(wheel: Path) -> None:
    version = version_in_init()
    assert wheel.name == f"apex_mcp-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.parser.Parser().parsestr(
            archive.read(f"apex_mcp-{version}.dist-info/METADATA").decode()
        )
        entry_points = archive.read(f"apex_mcp-{version}.dist-info/entry_points.txt").decode()
    assert all(n.startswith(("apex_mcp/", f"apex_mcp-{version}.dist-info/")) for n in names), [
        n for n in names if not n.startswith("apex_mcp")
    ]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or "/tests/" in n]
    assert not [n for n in names if Path(n).name in ("conftest.py", "test_quality.py")]
    # Every module of the source tree is in it, and the protocol file the code reads.
    sources = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "apex_mcp").rglob("*")
        if p.is_file() and p.suffix in (".py", ".proto") and "__pycache__" not in p.parts
    }
    assert sources <= set(names), sources - set(names)
    assert metadata["Name"] == "apex-mcp" and metadata["Version"] == version
    assert metadata["Requires-Python"] == ">=3.11"
    assert "apex-mcp = apex_mcp.cli.main:main" in entry_points
    # The README is the long description on PyPI, where the MCP registry looks for this line.
    name = json.loads((MANIFESTS / "server.json").read_text())["name"]
    assert f"mcp-name: {name}" in str(metadata.get_payload())


def test_a_fresh_venv_runs_the_installed_wheel(
    wheel: Path, miner_env: dict[str, str], tmp_path: Path
) -> None:
    # A stdlib venv; uv installs the wheel and its dependencies into it, as pip would, in a
    # fraction of the time (pip itself is exercised by pipx run below).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python, command = venv / "bin" / "python", venv / "bin" / "apex-mcp"
    env = clean_env(UV_CACHE_DIR=str(UV_CACHE), UV_NO_PROGRESS="1")
    uv_pip = [str(dev_bin() / "uv"), "pip", "install", "--python", str(python), "-q"]
    install = run([*uv_pip, "--refresh-package", "apex-mcp", str(wheel)], env, tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]

    where = run([str(python), "-c", "import apex_mcp; print(apex_mcp.__file__)"], env, tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # not the source tree

    helped = run([str(command), "--help"], env, tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: apex-mcp"), helped.stderr
    for sub in ("serve", "call", "doctor", "config", "gateway"):
        assert sub in helped.stdout
    assert run([str(command), "--version"], env, tmp_path).stdout.strip() == (
        f"apex-mcp {__version__}"
    )
    as_module = run([str(python), "-m", "apex_mcp", "--version"], env, tmp_path)
    assert as_module.stdout.strip() == f"apex-mcp {__version__}", as_module.stderr

    doctor = run([str(command), "doctor"], {**env, **miner_env}, tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "[ok  ] miner" in doctor.stdout and "all good" in doctor.stdout
    assert SECRET not in doctor.stdout + doctor.stderr

    tools = stdio_tools_list([str(command)], {**env, **miner_env}, tmp_path)
    assert {t["name"] for t in tools} == expected_tool_names()


def test_uvx_runs_the_wheel(wheel: Path, miner_env: dict[str, str], tmp_path: Path) -> None:
    uvx = [str(dev_bin() / "uvx"), "--from", str(wheel), "--refresh-package", "apex-mcp"]
    env = clean_env(UV_CACHE_DIR=str(UV_CACHE), UV_NO_PROGRESS="1")
    shown = run([*uvx, "apex-mcp", "--version"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.strip() == f"apex-mcp {__version__}"
    tools = stdio_tools_list([*uvx, "apex-mcp"], {**env, **miner_env}, tmp_path)
    assert {t["name"] for t in tools} == expected_tool_names()


def test_pipx_run_runs_the_wheel(wheel: Path, miner_env: dict[str, str], tmp_path: Path) -> None:
    pipx = [str(dev_bin() / "pipx"), "run", "--spec", str(wheel)]
    env = clean_env(PIPX_HOME=str(tmp_path / "pipx"), PIP_CACHE_DIR=str(PIP_CACHE))
    shown = run([*pipx, "apex-mcp", "--version"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.strip() == f"apex-mcp {__version__}"
    tools = stdio_tools_list([*pipx, "apex-mcp"], {**env, **miner_env}, tmp_path)
    assert {t["name"] for t in tools} == expected_tool_names()
