"""ApexError: one error type for every failure of an Apex call, local or remote."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Code(StrEnum):
    """The Connect error codes, as they appear on the wire."""

    CANCELED = "canceled"
    UNKNOWN = "unknown"
    INVALID_ARGUMENT = "invalid_argument"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    OUT_OF_RANGE = "out_of_range"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    DATA_LOSS = "data_loss"
    UNAUTHENTICATED = "unauthenticated"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]

    @classmethod
    def parse(cls, text: object) -> Code:
        """The code named by ``text``; ``unknown`` for anything else (a peer may add codes)."""
        try:
            return cls(str(text))
        except ValueError:
            return cls.UNKNOWN

    @classmethod
    def from_http_status(cls, status: int) -> Code:
        """The code for a non-200 answer that carries no Connect error body (a proxy's page)."""
        return _STATUS_CODE.get(status, cls.UNKNOWN)


_HTTP_STATUS = {
    Code.CANCELED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

_STATUS_CODE = {
    400: Code.INTERNAL,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    429: Code.UNAVAILABLE,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}

# What a user can do about each code, added to messages that do not already say it.
HINTS: dict[Code, str] = {
    Code.UNAUTHENTICATED: "check the API key (APEX_API_KEY, or the key the gateway gave you)",
    Code.PERMISSION_DENIED: "this key may not do that; ask whoever runs the Apex server",
    Code.RESOURCE_EXHAUSTED: "the server is rate limiting: wait a moment and try again",
    # Not "check APEX_BASE_URL": the engine raises it too, for its miners or search. RemoteApex
    # gives that advice itself when it cannot reach its server.
    Code.UNAVAILABLE: "it may be down or overloaded: try again shortly",
    Code.DEADLINE_EXCEEDED: "the call ran out of time: retry with a longer timeout",
    Code.UNIMPLEMENTED: "this Apex server does not offer that method: check APEX_BASE_URL",
}


class ApexError(Exception):
    """A failed Apex call: a Connect ``code`` and a ``message`` a user can act on.

    ``retry_after`` is the server's advice in seconds (from ``Retry-After``), when given;
    ``hint`` replaces the usual advice for the code where the raiser knows better.
    """

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        retry_after: float | None = None,
        details: list[Any] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = details or []
        self._hint = hint

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return f"ApexError({self.code.value!r}, {self.message!r})"

    @property
    def hint(self) -> str | None:
        """What to do about it: given by the raiser, else the usual advice for the code."""
        return self._hint or HINTS.get(self.code)

    @property
    def own_hint(self) -> str | None:
        """The advice its raiser gave, if any (not a code's usual one)."""
        return self._hint

    def with_hint(self, hint: str, *, keep_given: bool = False) -> ApexError:
        """This error advising ``hint`` instead (with ``keep_given``: unless its raiser gave
        advice of its own). For code that knows which part failed: a code's usual advice is
        for a remote Apex server ("check APEX_BASE_URL"), which misleads about anything else."""
        if keep_given and self._hint:
            return self
        return ApexError(
            self.code, self.message, retry_after=self.retry_after, details=self.details, hint=hint
        )

    def explain(self) -> str:
        """The message with what to do about it, for people (tool errors, CLI output)."""
        hint = self.hint
        if hint and hint not in self.message:
            return f"{self.message} ({hint})"
        return self.message

    def redacted(self, secret: str) -> ApexError:
        """This error with ``secret`` cut out of its message and advice (a server may echo
        what it was sent)."""
        if not secret or secret not in self.explain():
            return self
        message = self.message.replace(secret, "[redacted]")
        hint = self._hint.replace(secret, "[redacted]") if self._hint else None
        return ApexError(
            self.code, message, retry_after=self.retry_after, details=self.details, hint=hint
        )

    @classmethod
    def explained(cls, code: Code, text: str, **fields: Any) -> ApexError:
        """The error whose ``explain()`` is ``text``: a trailing parenthesis is its advice. So
        advice that crossed the wire in the message (the gateway sends ``explain()``) is read
        back as advice, and a code's usual advice is not added on top of it."""
        message, hint = _split_advice(text)
        return cls(code, message, hint=hint, **fields)


def _split_advice(text: str) -> tuple[str, str | None]:
    """``"message (advice)"`` -> message and advice, minding parentheses inside the advice."""
    if not text.endswith(")"):
        return text, None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            if i >= 2 and text[i - 1] == " ":
                return text[: i - 1], text[i + 1 : -1] or None
            return text, None
    return text, None


def invalid_argument(message: str) -> ApexError:
    return ApexError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ApexError:
    return ApexError(Code.NOT_FOUND, message)
