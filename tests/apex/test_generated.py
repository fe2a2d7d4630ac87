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


def test_every_message_model_has_the_protos_fields_under_their_json_names() -> None:
    from apex_mcp.apex import models
    from apex_mcp.apex.gen import apex_pb2

    for name, message in apex_pb2.DESCRIPTOR.message_types_by_name.items():
        model = getattr(models, name, None)
        assert isinstance(model, type) and issubclass(model, models.Message), name
        aliases = {field.alias or key for key, field in model.model_fields.items()}
        proto = {field.json_name for field in message.fields}
        assert aliases == proto, f"{name}: the model's fields differ from the proto's"
        for field in message.fields:  # repeated fields are lists in the model
            repeated = field.default_value == []  # the one default a repeated field has
            shown = next(
                f for k, f in model.model_fields.items() if (f.alias or k) == field.json_name
            )
            is_list = "list[" in str(shown.annotation) or "dict[" in str(shown.annotation)
            assert not repeated or is_list, f"{name}.{field.json_name} is repeated in the proto"


def test_every_client_serves_each_rpc_of_the_proto_under_its_name() -> None:
    import inspect

    from apex_mcp.apex.client import RPCS, ApexClient
    from apex_mcp.apex.gen import apex_pb2
    from apex_mcp.apex.remote import RemoteApex
    from apex_mcp.engine.local import LocalApex

    service = apex_pb2.DESCRIPTOR.services_by_name["ApexService"]
    wanted = {RPCS[method.name].attr for method in service.methods}
    methods = inspect.getmembers(ApexClient, inspect.isfunction)
    contract = {name for name, _ in methods if not name.startswith("_")}
    assert contract == wanted, "the ApexClient Protocol and the proto's service differ"
    for implementation in (RemoteApex, LocalApex):
        missing = [attr for attr in wanted if not callable(getattr(implementation, attr, None))]
        assert not missing, f"{implementation.__name__} lacks {missing}"
        for method in service.methods:  # the same request type, as the first argument
            rpc = RPCS[method.name]
            signature = inspect.signature(getattr(implementation, rpc.attr))
            first = list(signature.parameters.values())[1]
            assert method.input_type.name in str(first.annotation), (implementation, rpc.attr)
            assert method.output_type.name in str(signature.return_annotation), rpc.attr
