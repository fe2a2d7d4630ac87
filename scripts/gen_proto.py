"""Generate apex_mcp/apex/gen/ from apex_mcp/apex/apex.proto: protobuf messages (apex_pb2.py,
apex_pb2.pyi) and the connect-python service code (apex_connect.py).

Run after changing the proto: ``python scripts/gen_proto.py``; tests/apex/test_generated.py
checks that the committed files are what this writes. ``--out DIR`` writes elsewhere.
Needs the dev extra (grpcio-tools for protoc, protoc-gen-connect-python).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "apex_mcp" / "apex"
OUT = PROTO_DIR / "gen"
FILES = ("apex_pb2.py", "apex_pb2.pyi", "apex_connect.py")
HEADER = '"""Generated from apex_mcp/apex/apex.proto by scripts/gen_proto.py: do not edit."""\n'


def generate(out: Path) -> None:
    plugin = shutil.which("protoc-gen-connect-python", path=str(Path(sys.executable).parent))
    if plugin is None:
        raise SystemExit("protoc-gen-connect-python not found: pip install -e '.[dev]'")
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{Path(plugin).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--connect-python_out={out}",
            "--connect-python_opt=imports=relative",
            "apex.proto",
        ],
        check=True,
        cwd=PROTO_DIR,
        env=env,
    )
    (out / "__init__.py").write_text(HEADER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
