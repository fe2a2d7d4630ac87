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
    Code.UNAVAILABLE: "the Apex server is unreachable or overloaded: check APEX_BASE_URL "
    "and try again shortly",
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


def invalid_argument(message: str) -> ApexError:
    return ApexError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ApexError:
    return ApexError(Code.NOT_FOUND, message)
