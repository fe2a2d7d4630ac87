"""A scripted ApexClient: records what it is asked and answers what the test told it to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from apex_mcp.apex.client import RPCS
from apex_mcp.apex.errors import ApexError
from apex_mcp.apex.models import Message

Answer = Message | ApexError | list[Any] | Callable[[Message], Any]


class ScriptedApex:
    """Every ApexClient method, answering from ``answers[attr]``.

    An answer is a message, an ApexError to raise, a list (of chunks for the stream, where an
    ApexError item is raised at that point), or a callable taking the request. ``delay`` makes
    each call sleep first; ``calls`` records (method, request, timeout).
    """

    def __init__(self, **answers: Answer) -> None:
        self.answers: dict[str, Answer] = dict(answers)
        self.calls: list[tuple[str, Message, float | None]] = []
        self.delay = 0.0
        for rpc in RPCS.values():
            if rpc.streaming:
                setattr(self, rpc.attr, self._streamer(rpc.attr))
            else:
                setattr(self, rpc.attr, self._unary(rpc.attr))

    def _answer(self, attr: str, request: Message) -> Any:
        answer = self.answers.get(attr)
        if answer is None:
            raise AssertionError(f"the test gave no answer for {attr}")
        return answer(request) if callable(answer) else answer

    def _unary(self, attr: str) -> Callable[..., Any]:
        async def call(request: Message, *, timeout: float | None = None) -> Message:
            self.calls.append((attr, request, timeout))
            if self.delay:
                await anyio.sleep(self.delay)
            answer = self._answer(attr, request)
            if isinstance(answer, ApexError):
                raise answer
            return answer  # type: ignore[no-any-return]

        return call

    def _streamer(self, attr: str) -> Callable[..., AsyncIterator[Message]]:
        async def stream(
            request: Message, *, timeout: float | None = None
        ) -> AsyncIterator[Message]:
            self.calls.append((attr, request, timeout))
            answer = self._answer(attr, request)
            if isinstance(answer, ApexError):
                raise answer
            for item in answer:
                if self.delay:
                    await anyio.sleep(self.delay)
                if isinstance(item, ApexError):
                    raise item
                yield item

        return stream
