"""The models against the proto and against the JSON samples of the public Apex docs."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from apex_mcp.apex import models
from apex_mcp.apex.client import RPCS

PROTO = Path(models.__file__).with_name("apex.proto").read_text()
SAMPLES = json.loads((Path(__file__).parent.parent / "data" / "apex_docs_samples.json").read_text())


def proto_messages() -> dict[str, list[tuple[str, str, bool]]]:
    """message name -> [(field name, type, optional)] read from apex.proto."""
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for name, body in re.findall(r"^message (\w+) \{(.*?)^\}", PROTO, re.S | re.M):
        fields = re.findall(r"^\s+(optional |repeated )?([\w.<>, ]+?) (\w+) = \d+;", body, re.M)
        out[name] = [(field, typ, label == "optional ") for label, typ, field in fields]
    return out


def test_every_proto_message_has_a_model_with_the_same_fields() -> None:
    messages = proto_messages()
    assert len(messages) == 54
    for name, fields in messages.items():
        model = getattr(models, name)
        assert set(model.model_fields) == {f for f, _, _ in fields}, name
        for field, _, optional in fields:
            info = model.model_fields[field]
            if optional:  # presence must survive: unset is None, never the zero value
                assert info.default is None, f"{name}.{field}"


def test_every_rpc_of_the_service_is_described() -> None:
    rpcs = re.findall(r"rpc (\w+)\((\S+)\) returns \((stream )?(\S+)\)", PROTO)
    assert len(rpcs) == 16
    for name, request, stream, response in rpcs:
        rpc = RPCS[name]
        assert rpc.request.__name__ == request.replace("google.protobuf.", "")
        assert rpc.response.__name__ == response
        assert rpc.streaming == bool(stream)


def test_output_uses_camel_case_int64_strings_and_omits_defaults() -> None:
    response = models.ChatCompletionResponse(
        id="x",
        created=1749034638,
        choices=[models.Choice(finish_reason="stop", message=models.ChatCompletionMessage())],
        usage=models.CompletionUsage(total_tokens=2**62),
    )
    assert response.to_wire() == {
        "id": "x",
        "created": "1749034638",
        "choices": [{"finishReason": "stop", "message": {}}],
        "usage": {"totalTokens": str(2**62)},
    }


def test_input_accepts_both_spellings_numbers_or_strings_null_and_unknown_fields() -> None:
    a = models.WebRetrievalRequest.from_wire(
        {"searchQuery": "q", "n_miners": "3", "nResults": 2, "maxResponseTime": None, "x": 1}
    )
    b = models.WebRetrievalRequest.from_wire({"search_query": "q", "nMiners": 3, "n_results": "2"})
    assert a == b
    assert a.n_miners == 3 and a.max_response_time is None


@pytest.mark.parametrize("bad", ["1.5", "abc", True, 1.5, 2**63, "9223372036854775808"])
def test_bad_int64_is_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        models.ChatCompletionRequest.from_wire({"seed": bad})


def test_optional_fields_keep_presence_through_a_round_trip() -> None:
    explicit = models.ChatCompletionRequest(seed=0, stream=False, model="", timeout=0)
    wire = explicit.to_wire()
    assert wire == {"seed": "0", "stream": False, "model": "", "timeout": "0"}
    assert models.ChatCompletionRequest.from_wire(wire) == explicit
    assert models.ChatCompletionRequest().to_wire() == {}
    params = models.SamplingParameters(top_k=0)
    assert params.to_wire() == {"topK": 0.0}


def test_timestamps_are_rfc3339_utc() -> None:
    chat = models.ChatSession.from_wire(
        {"createdAt": "2025-07-02T13:28:43.154364Z", "updatedAt": "2025-07-02T15:28:43+02:00"}
    )
    assert chat.created_at == datetime(2025, 7, 2, 13, 28, 43, 154364, tzinfo=UTC)
    assert chat.to_wire() == {
        "createdAt": "2025-07-02T13:28:43.154364Z",
        "updatedAt": "2025-07-02T13:28:43Z",
    }
    nanos = models.ChatSession.from_wire({"createdAt": "2025-07-02T13:28:43.123456789Z"})
    assert nanos.to_wire()["createdAt"] == "2025-07-02T13:28:43.123456Z"
    millis = models.ChatSession(created_at=datetime(2025, 1, 1, 0, 0, 0, 205000, tzinfo=UTC))
    assert millis.to_wire()["createdAt"] == "2025-01-01T00:00:00.205Z"
    with pytest.raises(ValidationError):
        models.ChatSession.from_wire({"createdAt": "yesterday"})


def test_struct_metadata_is_an_object_and_empty_struct_is_kept() -> None:
    meta = {"deep-researcher": {"jobId": "j", "n": 1.5, "ok": True, "list": [1, None]}}
    completion = models.StoredChatCompletion(id="c", metadata=meta)
    assert completion.to_wire()["metadata"] == meta
    assert models.ParsedCompletion(metadata={}).to_wire() == {"metadata": {}}


def shape_matches(ours: Any, sample: Any, path: str = "") -> None:
    """Our JSON equals the docs' sample, allowing only protobuf's own liberties."""
    if isinstance(sample, dict):
        assert isinstance(ours, dict), path
        for key, value in sample.items():
            if key not in ours:  # only default values may be left out
                assert value in ("", 0, False, [], None), f"{path}.{key} missing"
                continue
            shape_matches(ours[key], value, f"{path}.{key}")
        assert set(ours) <= set(sample), f"{path}: extra keys {set(ours) - set(sample)}"
    elif isinstance(sample, list):
        assert isinstance(ours, list) and len(ours) == len(sample), path
        for i, (a, b) in enumerate(zip(ours, sample, strict=True)):
            shape_matches(a, b, f"{path}[{i}]")
    elif isinstance(sample, int) and not isinstance(sample, bool) and isinstance(ours, str):
        assert ours == str(sample), path  # int64: a number in, a string out
    else:
        assert ours == sample, path


@pytest.mark.parametrize("rpc_name", [k for k in SAMPLES if not k.startswith("_")])
def test_docs_samples_parse_and_serialize_back_to_the_same_shape(rpc_name: str) -> None:
    rpc = RPCS[rpc_name]
    sample = SAMPLES[rpc_name]
    request = rpc.request.from_wire(sample["request"])
    response = rpc.response.from_wire(sample["response"])
    shape_matches(request.to_wire(), sample["request"])
    shape_matches(response.to_wire(), sample["response"])


def test_docs_sample_values_read_right() -> None:
    chat = models.ChatCompletionResponse.from_wire(SAMPLES["ChatCompletion"]["response"])
    assert chat.created == 1749034638
    assert chat.choices[0].message is not None
    assert chat.choices[0].message.content.startswith("In the quiet hum")
    job = models.GetDeepResearcherJobResponse.from_wire(SAMPLES["GetDeepResearcherJob"]["response"])
    assert job.result[0].seq_id == 1
    assert json.loads(job.result[0].chunk) == [{"content": "## Generating Research Plan\n"}]
    stored = models.GetStoredChatCompletionsResponse.from_wire(
        SAMPLES["GetStoredChatCompletions"]["response"]
    )
    meta = stored.chat_completions[0].metadata
    assert meta is not None and meta["deep-researcher"]["status"] == "completed"
