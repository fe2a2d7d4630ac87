"""The Connect protocol codec, shared by the remote client and the wire server.

Only the parts Apex uses: unary calls with JSON bodies, server streaming with
``application/connect+json`` envelopes, error bodies, timeouts and gzip.
See https://connectrpc.com/docs/protocol for the specification.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .errors import ApexError, Code
from .models import Message

M = TypeVar("M", bound=Message)

PROTOCOL_VERSION = "1"
UNARY_CONTENT_TYPE = "application/json"
STREAM_CONTENT_TYPE = "application/connect+json"

FLAG_COMPRESSED = 0x01
FLAG_END_STREAM = 0x02
_PREFIX = struct.Struct(">BI")

COMPRESS_MIN_BYTES = 1024  # smaller bodies are not worth gzip's header and CPU

# Writes a client may send again when the connection is lost before the answer: sent with an
# Idempotency-Key header (one per logical call, the same on every retry), the server does one
# and answers a retry with the reply it kept (per user, 24 h). ChatCompletion stores nothing.
IDEMPOTENCY_KEY_HEADER = "idempotency-key"
KEYED_RPCS = frozenset(
    {
        "CreateChatAndCompletion",
        "CreateCompletion",
        "SubmitDeepResearcherJob",
        "UpdateChatAttributes",
        "UpdateCompletionAttributes",
        "DeleteChats",
        "DeleteCompletions",
    }
)
MAX_IDEMPOTENCY_KEY_CHARS = 128
# Sent by a wire server that keeps those replies: only then does a client send a write again
# after a connection lost once the request was out (another server might do it twice).
KEEPS_REPLIES_HEADER = "apex-keeps-replies"


# --- messages -------------------------------------------------------------------------------


def encode_json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def encode_message(message: Message) -> bytes:
    return encode_json(message.to_wire())


def describe_validation_error(error: ValidationError, whole: str = "message") -> str:
    """A short sentence naming each bad field and why; never the input (it may hold a key).
    A problem of the whole object is put under ``whole``, or stands alone if that is empty."""
    problems = field_problems(error, whole)
    shown = problems[:5]
    if len(problems) > len(shown):
        shown.append(f"and {len(problems) - len(shown)} more")
    return "; ".join(shown)


def field_problems(error: ValidationError, whole: str = "message") -> list[str]:
    """One ``field: problem`` per bad field (its first problem), in plain words, such as
    ``max_new_tokens: at most 65536``; never the input (it may hold a key)."""
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or whole  # messages.0.role
        problem = plain_problem(item)
        problems.setdefault(where, f"{where}: {problem}" if where else problem)
    return list(problems.values())


def plain_problem(item: ErrorDetails) -> str:
    """What pydantic found wrong, in the words a person would use, for the common kinds."""
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind in BOUNDS:
        key, words = BOUNDS[kind]
        return f"{words} {_number(ctx[key])}"
    if kind in LENGTHS:
        key, words, unit = LENGTHS[kind]
        size = ctx[key]
        if words == "at least" and size == 1:
            return "must not be empty"
        return f"{words} {size} {unit}{'' if size == 1 else 's'}"
    if kind in ("literal_error", "enum"):
        first, _, last = str(ctx["expected"]).rpartition(" or ")  # "'a', 'b' or 'c'"
        return f"must be one of {first}, {last}" if first else f"must be {last}"
    if kind in ("value_error", "assertion_error"):  # our own validators' words
        return item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return TYPE_WORDS.get(kind, item["msg"])


BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}
LENGTHS = {
    "string_too_short": ("min_length", "at least", "character"),
    "string_too_long": ("max_length", "at most", "character"),
    "too_short": ("min_length", "at least", "item"),
    "too_long": ("max_length", "at most", "item"),
}
TYPE_WORDS = {
    "missing": "required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "extra_forbidden": "unknown field",
    "json_invalid": "not valid JSON",
}


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def decode_message(cls: type[M], data: bytes) -> M:
    """Parse a JSON message; raise ``ApexError(invalid_argument)`` saying what is wrong."""
    try:
        raw = json.loads(data) if data.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApexError(Code.INVALID_ARGUMENT, f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # nested deeper than Python's parser goes
        raise _too_deep() from None
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise _too_deep()
    if not isinstance(raw, dict):
        raise ApexError(
            Code.INVALID_ARGUMENT, f"expected a JSON object for {cls.__name__}"
        ) from None
    try:
        return cls.from_wire(raw)
    except ValidationError as exc:
        raise ApexError(
            Code.INVALID_ARGUMENT,
            f"invalid {cls.__name__}: {describe_validation_error(exc)}",
        ) from None


MAX_JSON_DEPTH = 100  # nesting of objects and lists in a message; Apex's go 4 deep


def json_depth(value: Any) -> int:
    """How deeply ``value``'s lists and objects nest (a scalar is 0), without recursion."""
    deepest, todo = 0, [(value, 1)] if isinstance(value, dict | list) else []
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        todo.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _too_deep() -> ApexError:
    return ApexError(
        Code.INVALID_ARGUMENT,
        f"the body nests lists or objects more than {MAX_JSON_DEPTH} deep: send a flatter message",
    )


# --- errors ---------------------------------------------------------------------------------


def error_json(error: ApexError) -> dict[str, Any]:
    # Advice its raiser gave travels in the message, as people read it; the code's usual
    # advice is the client's to add.
    message = error.explain() if error.own_hint else error.message
    body: dict[str, Any] = {"code": error.code.value, "message": message}
    if error.details:
        body["details"] = error.details
    return body


def error_from_json(data: Any) -> ApexError | None:
    """The ApexError a Connect error object describes, or None if ``data`` is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        return None
    message = data.get("message")
    details = data.get("details")
    return ApexError.explained(
        Code.parse(data["code"]),
        message if isinstance(message, str) and message else data["code"],
        details=details if isinstance(details, list) else None,
    )


# Advice for an HTTP status that came without a Connect error: the server is not (only) an
# Apex server, so its address is the first thing to check.
HTTP_STATUS_HINTS = {
    Code.UNAVAILABLE: "check APEX_BASE_URL and that the Apex server there runs; try again shortly",
    Code.UNIMPLEMENTED: "check that APEX_BASE_URL is an Apex server",
}


def error_from_http(status: int, body: bytes, headers: Mapping[str, str]) -> ApexError:
    """The ApexError of a failed unary answer: its Connect error body, else its HTTP status."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    error = None
    if "json" in headers.get("content-type", ""):
        try:
            error = error_from_json(json.loads(body))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            error = None
    if error is None:  # not an Apex server's answer: a proxy's, or no Apex server there
        code = Code.from_http_status(status)
        error = ApexError(
            code,
            f"the server answered HTTP {status}{_describe_body(body)}",
            hint=HTTP_STATUS_HINTS.get(code),
        )
    error.retry_after = retry_after
    return error


def _describe_body(body: bytes) -> str:
    # A proxy's page: name it, but never paste HTML into a user-facing message.
    text = body[:200].decode("utf-8", "replace").strip()
    if not text:
        return ""
    if text.lstrip().startswith("<"):
        return " with an HTML page (likely a proxy or load balancer, not an Apex server)"
    return f": {text.splitlines()[0][:120]}"


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: too rare here to be worth parsing
    return max(0.0, seconds)


# --- envelopes (streaming) ------------------------------------------------------------------


def pack_envelope(data: bytes, flags: int = 0, *, compress: bool = False) -> bytes:
    if compress:
        data = gzip_compress(data)
        flags |= FLAG_COMPRESSED
    return _PREFIX.pack(flags, len(data)) + data


def end_stream_envelope(error: ApexError | None = None) -> bytes:
    body: dict[str, Any] = {}
    if error is not None:
        body["error"] = error_json(error)
    return pack_envelope(encode_json(body), FLAG_END_STREAM)


def parse_end_stream(data: bytes) -> ApexError | None:
    """The error an end-of-stream envelope carries, if any."""
    try:
        body = json.loads(data) if data.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return ApexError(Code.INTERNAL, "the stream ended with an unreadable trailer")
    if not isinstance(body, dict) or body.get("error") is None:
        return None
    return error_from_json(body["error"]) or ApexError(
        Code.UNKNOWN, "the stream ended with an error the server did not describe"
    )


class EnvelopeReader:
    """Splits a byte stream into (flags, payload) envelopes, inflating compressed ones."""

    def __init__(self, max_message_bytes: int) -> None:
        self._buffer = bytearray()
        self._max = max_message_bytes

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        out = []
        while len(self._buffer) >= _PREFIX.size:
            flags, length = _PREFIX.unpack_from(self._buffer)
            if length > self._max:
                raise ApexError(
                    Code.RESOURCE_EXHAUSTED,
                    f"a stream message of {length} bytes is over the {self._max}-byte limit",
                )
            end = _PREFIX.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_PREFIX.size : end])
            del self._buffer[:end]
            if flags & FLAG_COMPRESSED:
                payload = gunzip(payload, self._max)
            out.append((flags, payload))
        return out

    @property
    def pending(self) -> int:
        """Bytes of an envelope begun but not finished."""
        return len(self._buffer)


# --- compression and timeouts ---------------------------------------------------------------


def gzip_compress(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=5)  # most of the gain, a fraction of level 9's CPU


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """Inflate gzip data, refusing to grow past ``max_bytes`` (a zip bomb stops early)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error:
        raise ApexError(Code.INVALID_ARGUMENT, "the body is not valid gzip") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise ApexError(
            Code.RESOURCE_EXHAUSTED, f"the message inflates past the {max_bytes}-byte limit"
        )
    return out


def format_timeout(seconds: float) -> str:
    # The header takes at most 10 digits of milliseconds, at least 1.
    return str(min(max(1, int(seconds * 1000)), 9_999_999_999))


def parse_timeout(value: str | None) -> float | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 10:
        raise ApexError(Code.INVALID_ARGUMENT, f"Connect-Timeout-Ms must be 1-10 digits: {value!r}")
    return int(value) / 1000
