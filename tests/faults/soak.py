"""A bounded soak over streamable HTTP: concurrent clients, each opening sessions one after
another and making a fixed number of calls of what users do most, while the server
process's resident memory is read from /proc before and after (and sampled in between)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.faults.processes import SECRETS, cpu_seconds, mcp_client, rss_kib, text_of


@dataclass
class SoakReport:
    clients: int
    calls: int = 0
    sessions: int = 0
    errors: list[str] = field(default_factory=list)
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    rss_peak_kib: int = 0
    seconds: float = 0.0
    server_cpu_seconds: float = 0.0

    @property
    def growth_kib(self) -> int:
        return self.rss_after_kib - self.rss_before_kib

    def lines(self) -> list[str]:
        rate = self.calls / self.seconds if self.seconds else 0.0
        per_call = 1000 * self.server_cpu_seconds / self.calls if self.calls else 0.0
        return [
            f"{self.clients} clients, {self.sessions} sessions, {self.calls} calls in "
            f"{self.seconds:.1f} s ({rate:.0f} calls/s), {len(self.errors)} errors; server "
            f"CPU {self.server_cpu_seconds:.1f} s ({per_call:.1f} ms per call)",
            f"server RSS {self.rss_before_kib / 1024:.1f} MiB -> {self.rss_after_kib / 1024:.1f}"
            f" MiB (growth {self.growth_kib / 1024:+.1f} MiB, peak {self.rss_peak_kib / 1024:.1f}"
            " MiB)",
            *self.errors[:10],
        ]


def calls_of(client_no: int, n: int, chat_id: str | None) -> tuple[str, dict[str, Any]]:
    """The n-th call of a client: mostly chats and reads of stored chats, now and then a web
    search (which reads and extracts a page)."""
    step = n % 10
    if step in (0, 4, 7) or chat_id is None:
        return "chat", {"user_prompt": f"soak {client_no} {n}"}
    if step == 1:
        return "chat", {"user_prompt": f"more {client_no} {n}", "chat_id": chat_id}
    if step == 2:
        return "list_chats", {"limit": 5}
    if step in (3, 8):
        return "get_chat", {"chat_id": chat_id}
    if step == 5:
        return "search_chats", {"search_term": f"soak {client_no}"}
    if step == 6:
        return "chat", {"user_prompt": f"unsaved {client_no} {n}", "save": False}
    return "web_search", {"search_query": "honeybees", "n_results": 1}


async def run_client(
    url: str,
    client_no: int,
    calls: int,
    calls_per_session: int,
    report: SoakReport,
    subscribe_to: str,
) -> None:
    chat_id: str | None = None
    n = 0
    while n < calls:
        async with mcp_client(url) as client:
            report.sessions += 1
            # As hosts do: follow a research report, and end the session without unsubscribing
            # (the handshake era's resources/subscribe, which the SDK marks deprecated).
            try:
                with warnings.catch_warnings(category=MCPDeprecationWarning, action="ignore"):
                    await client.subscribe_resource(subscribe_to)
            except Exception as error:
                report.errors.append(f"subscribe: {type(error).__name__}: {error}")
            for _ in range(min(calls_per_session, calls - n)):
                name, arguments = calls_of(client_no, n, chat_id)
                n += 1
                report.calls += 1
                try:
                    result = await client.call_tool(name, arguments)
                except Exception as error:
                    report.errors.append(f"{name}: {type(error).__name__}: {error}")
                    continue
                text = text_of(result)
                if result.is_error:
                    report.errors.append(f"{name}: {text}")
                elif any(secret in text for secret in SECRETS):
                    report.errors.append(f"{name}: a secret in the answer")
                elif name == "chat" and arguments.get("save") is not False:
                    assert result.structured_content is not None
                    chat_id = result.structured_content.get("chat_id") or chat_id


async def soak(
    url: str,
    pid: int,
    *,
    clients: int,
    calls_per_client: int,
    calls_per_session: int,
    warmup_calls: int = 10,
) -> SoakReport:
    """Warm up (every client once, so that what is built once is built), then measure RSS
    around ``clients`` x ``calls_per_client`` calls. Every session subscribes to the report
    of one research job."""
    async with mcp_client(url) as client:
        job = await client.call_tool(
            "deep_research_start", {"user_prompt": "what do bees do", "save": False}
        )
    assert job.structured_content is not None, text_of(job)
    report_uri = f"apex://research/{job.structured_content['job_id']}"
    warmup = SoakReport(clients)
    async with anyio.create_task_group() as tg:
        for c in range(clients):
            tg.start_soon(run_client, url, c, warmup_calls, warmup_calls, warmup, report_uri)
    report = SoakReport(clients, errors=warmup.errors)
    report.rss_before_kib = report.rss_peak_kib = rss_kib(pid)
    started, cpu = time.monotonic(), cpu_seconds(pid)
    async with anyio.create_task_group() as tg:

        async def sample() -> None:
            while True:
                report.rss_peak_kib = max(report.rss_peak_kib, rss_kib(pid))
                await anyio.sleep(0.1)

        tg.start_soon(sample)
        async with anyio.create_task_group() as clients_group:
            for c in range(clients):
                clients_group.start_soon(
                    run_client, url, c, calls_per_client, calls_per_session, report, report_uri
                )
        tg.cancel_scope.cancel()
    report.seconds = time.monotonic() - started
    report.server_cpu_seconds = cpu_seconds(pid) - cpu
    report.rss_after_kib = rss_kib(pid)
    report.rss_peak_kib = max(report.rss_peak_kib, report.rss_after_kib)
    return report
