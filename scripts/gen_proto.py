"""Generate apex_mcp/apex/gen/ from apex_mcp/apex/apex.proto: protobuf messages (apex_pb2.py,
apex_pb2.pyi), the connect-python service code (apex_connect.py) and the service's method
table in plain Python (apex_methods.py, which the stdio server reads without protobuf).

Run after changing the proto: ``python scripts/gen_proto.py``; tests/apex/test_generated.py
checks that the committed files are what this writes. ``--out DIR`` writes elsewhere.
Needs the dev extra (grpcio-tools for protoc, protoc-gen-connect-python).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "apex_mcp" / "apex"
OUT = PROTO_DIR / "gen"
FILES = ("apex_pb2.py", "apex_pb2.pyi", "apex_connect.py", "apex_methods.py")
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
    (out / "apex_methods.py").write_text(method_table(out))


def method_table(out: Path) -> str:
    """apex.v1.ApexService's methods as a tuple of plain values, read from the generated
    descriptor (so protoc alone parses the proto)."""
    sys.path.insert(0, str(out))
    try:
        import apex_pb2  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(out))
        sys.modules.pop("apex_pb2", None)
    service = apex_pb2.DESCRIPTOR.services_by_name["ApexService"]
    rows = []
    for method in service.methods:
        options = method.GetOptions()
        read_only = options.idempotency_level == options.NO_SIDE_EFFECTS
        rows.append(
            f"    Method({json.dumps(method.name)}, {json.dumps(method.input_type.name)}, "
            f"{json.dumps(method.output_type.name)}, streaming={method.server_streaming}, "
            f"read_only={read_only}),"
        )
    return (
        HEADER
        + "\nfrom typing import NamedTuple\n\n"
        + f"SERVICE = {json.dumps(service.full_name)}\n\n\n"
        + "class Method(NamedTuple):\n"
        + "    name: str  # the RPC's name, as on the wire\n"
        + "    request: str  # the request message's name in package apex.v1 (or Empty)\n"
        + "    response: str\n"
        + "    streaming: bool  # server streaming\n"
        + "    read_only: bool  # idempotency_level = NO_SIDE_EFFECTS: safe to retry, GET-able\n"
        + "\n\n"
        + "METHODS = (\n"
        + "\n".join(rows)
        + "\n)\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
