"""``apex-mcp doctor``: what is configured and whether each part answers. No secret is shown."""

from __future__ import annotations

from typing import Any

from .apex.errors import ApexError
from .config import Settings, config_file_path


def _line(ok: bool | None, what: str, detail: str) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
    return f"[{mark}] {what}: {detail}"


async def doctor(settings: Settings) -> int:
    from . import __version__

    failures = 0

    def report(ok: bool | None, what: str, detail: str) -> None:
        nonlocal failures
        failures += ok is False
        print(_line(ok, what, detail))

    print(f"apex-mcp {__version__}")
    config_file = config_file_path()
    report(None, "config file", str(config_file) if config_file else "none (environment only)")
    backend = settings.resolved_backend
    report(None, "backend", f"{backend} ({settings.backend})")
    if backend == "remote":
        await _check_remote(settings, report)
    else:
        await _check_local(settings, report)
    print("all good" if not failures else f"{failures} problem(s)")
    return 1 if failures else 0


async def _check_remote(settings: Settings, report: Any) -> None:
    from .apex import models as m
    from .apex.remote import RemoteApex

    async with RemoteApex(settings.base_url, settings.api_key, timeout=20) as remote:
        report(None, "Apex server", remote.base_url)
        report(None, "API key", "set" if remote.has_api_key else "not set (APEX_API_KEY)")
        try:
            await remote.get_chat_sessions(m.GetChatSessionsRequest())
            report(True, "key accepted", "the server answered GetChatSessions")
        except ApexError as error:
            report(False, "key accepted", error.explain())


async def _check_local(settings: Settings, report: Any) -> None:
    from .engine.miners import MinerPool
    from .engine.store import open_store

    try:
        store = await open_store(settings.db)
        try:
            integrity = await store.integrity_check()
        finally:
            await store.close()
        report(integrity == "ok", "store", f"{settings.db} (integrity: {integrity})")
    except ApexError as error:
        report(False, "store", f"{settings.db}: {error.explain()}")
    async with MinerPool(settings.miners, discover_local=settings.discover_local_miners) as pool:
        statuses = await pool.check()
    if not statuses:
        report(False, "miners", "none configured or found: set APEX_MINER (see the README)")
    for status in statuses:
        origin = "found locally" if status.discovered else "configured"
        models = f"; models: {', '.join(status.models[:5])}" if status.models else ""
        report(
            status.ok,
            f"miner {status.name}",
            f"{status.base_url} ({origin}) {status.detail}{models}",
        )
