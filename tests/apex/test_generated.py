"""apex_mcp/apex/gen is what scripts/gen_proto.py makes of apex.proto: the proto is the one
declaration of the contract, and the committed code follows it."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.servers import run_process

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "apex_mcp" / "apex" / "gen"


def test_regenerating_from_the_proto_gives_the_committed_files(tmp_path: Path) -> None:
    done = run_process(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        what="scripts/gen_proto.py",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    generated = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in GEN.iterdir() if p.is_file())
    assert generated == committed
    stale = [
        name for name in generated if (tmp_path / name).read_bytes() != (GEN / name).read_bytes()
    ]
    assert not stale, f"run scripts/gen_proto.py: {stale} differ from what apex.proto gives"


def test_the_generated_service_has_every_rpc_of_the_contract() -> None:
    from apex_mcp.apex.client import RPCS
    from apex_mcp.apex.gen import apex_pb2

    service = apex_pb2.DESCRIPTOR.services_by_name["ApexService"]
    assert sorted(m.name for m in service.methods) == sorted(RPCS)
    for method in service.methods:
        rpc = RPCS[method.name]
        assert method.server_streaming == rpc.streaming
        assert method.input_type.name == rpc.request.__name__
        assert method.output_type.name == rpc.response.__name__
        # reads, safe to retry, are the methods Connect may send as GETs
        no_side_effects = (
            method.GetOptions().idempotency_level == method.GetOptions().NO_SIDE_EFFECTS
        )
        assert no_side_effects == rpc.read_only, method.name
