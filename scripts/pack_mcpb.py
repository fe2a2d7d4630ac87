"""Pack apex-mcp as a Claude Desktop extension bundle (``.mcpb``), from the built wheel.

    python scripts/pack_mcpb.py                  # -> dist/apex-mcp-<version>.mcpb
    python scripts/pack_mcpb.py --wheel dist/apex_mcp-0.1.0-py3-none-any.whl --out x.mcpb

The bundle is of the ``uv`` server type: ``manifests/mcpb/manifest.json`` and its icon, a
``pyproject.toml`` that lists the wheel's dependencies (the host installs them with uv), the
``apex_mcp`` package taken from the wheel, and ``server/main.py``, which runs it. The official
``mcpb`` CLI validates the manifest and packs the folder: the pinned one in ``.ci/node`` (see
``.ci/run``) when it is there, else ``mcpb`` on PATH, else ``npx @anthropic-ai/mcpb``.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_DIR = ROOT / "manifests" / "mcpb"
NODE_BIN = ROOT / ".ci" / "node" / "node_modules" / ".bin"
MCPB_PACKAGE = "@anthropic-ai/mcpb@2.1.2"  # the version .ci/node/package.json pins

MAIN = '''\
"""Entry point of the apex-mcp extension: serve MCP over stdio with the bundled package."""

import sys

from apex_mcp.cli.main import main

sys.exit(main())
'''


def version() -> str:
    """The package version, from its one source: ``apex_mcp/__init__.py``."""
    text = (ROOT / "apex_mcp" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        raise SystemExit("no __version__ in apex_mcp/__init__.py")
    return found.group(1)


def build_wheel(out: Path) -> Path:
    """Build the wheel as a release would, without the network when hatchling is here."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    try:
        import hatchling  # noqa: F401
    except ImportError:
        pass
    else:
        command.insert(4, "--no-build-isolation")
    subprocess.run(command, check=True)
    wheels = sorted(out.glob("apex_mcp-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {out}, found {wheels}")
    return wheels[0]


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def runtime_requirements(metadata: email.message.Message) -> list[str]:
    """The wheel's dependencies, without those of its extras."""
    return [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]


def stage(wheel: Path, into: Path) -> Path:
    """Lay the bundle's files out in ``into``; returns ``into``."""
    manifest = json.loads((MANIFEST_DIR / "manifest.json").read_text())
    metadata = wheel_metadata(wheel)
    if manifest["version"] != metadata["Version"]:
        raise SystemExit(
            f"manifest.json says {manifest['version']}, the wheel {metadata['Version']}: "
            "bump manifests/mcpb/manifest.json with apex_mcp/__init__.py"
        )
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy(MANIFEST_DIR / "manifest.json", into / "manifest.json")
    shutil.copy(MANIFEST_DIR / manifest["icon"], into / manifest["icon"])
    server = into / "server"
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("apex_mcp/") and not name.endswith("/"):
                target = server / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    (server / "main.py").write_text(MAIN)
    dependencies = "".join(f"    {json.dumps(r)},\n" for r in runtime_requirements(metadata))
    # No [build-system]: uv installs the dependencies and runs server/main.py, which finds
    # apex_mcp beside it.
    (into / "pyproject.toml").write_text(
        "[project]\n"
        f'name = "apex-mcp-extension"\n'
        f'version = "{metadata["Version"]}"\n'
        f'description = "The apex-mcp Claude Desktop extension"\n'
        f"requires-python = {json.dumps(metadata['Requires-Python'] or '>=3.11')}\n"
        f"dependencies = [\n{dependencies}]\n"
    )
    return into


def mcpb_command() -> list[str]:
    """How to run the official mcpb CLI here."""
    pinned = NODE_BIN / "mcpb"
    if pinned.exists():
        return [str(pinned)]
    found = shutil.which("mcpb")
    if found:
        return [found]
    if shutil.which("npx"):
        return ["npx", "--yes", MCPB_PACKAGE]
    raise SystemExit("no mcpb CLI: run .ci/node/install, or npm install -g @anthropic-ai/mcpb")


def node_environment() -> dict[str, str]:
    """The environment for the CLI: the pinned Node first on PATH, when it is there."""
    env = dict(os.environ)
    if NODE_BIN.is_dir():
        env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def pack(wheel: Path, out: Path) -> Path:
    """Stage, validate and pack the bundle at ``out``."""
    command, env = mcpb_command(), node_environment()
    with tempfile.TemporaryDirectory(prefix="apex-mcpb-") as work:
        folder = stage(wheel, Path(work) / "bundle")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        subprocess.run([*command, "pack", str(folder), str(out)], check=True, env=env)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a built apex-mcp wheel (default: build one)")
    parser.add_argument("--out", type=Path, help="the .mcpb to write (default: in dist/)")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "dist" / f"apex-mcp-{version()}.mcpb"
    if args.wheel:
        pack(args.wheel.resolve(), out.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="apex-wheel-") as built:
            pack(build_wheel(Path(built)), out.resolve())
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
