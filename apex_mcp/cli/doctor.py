"""``apex-mcp doctor``: what is configured and whether each part answers; for each problem,
what to do about it, naming the setting to change. No secret is shown."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..apex.errors import ApexError, Code
from ..config import DatabaseUrl, MinerSettings, Settings, config_file_path
from ._shared import server_options, set_up, settings_from

if TYPE_CHECKING:
    from ..engine import MinerStatus

# Setting up a miner from nothing, in one line.
SET_A_MINER = (
    "set APEX_MINER (a preset such as ollama or openrouter, or an endpoint URL), "
    "APEX_MINER_API_KEY and APEX_MINER_MODEL"
)
# What to do for a local server that was looked for and is not running, by its label.
_START_LOCAL = {
    "Ollama": "start Ollama (`ollama serve`)",
    "LM Studio": "start LM Studio's local server",
}
_PULL_LOCAL = {
    "Ollama": "pull one (`ollama pull llama3.2`)",
    "LM Studio": "download and load one in LM Studio",
}
_STORE_FIXES = {
    Code.DATA_LOSS: "move the file away (or restore a backup), or set APEX_DB to another file",
    Code.RESOURCE_EXHAUSTED: "free some space on that disk, or set APEX_DB to a file elsewhere",
    Code.UNAVAILABLE: "another process holds the database: stop it, or set APEX_DB to another file",
}


def _line(ok: bool | None, what: str, detail: str) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
    return f"[{mark}] {what}: {detail}"


async def doctor(
    settings: Settings, *, local_probe: Sequence[tuple[str, str]] | None = None
) -> int:
    """Check each part and print a line for it; 1 if any failed. ``local_probe``: where to
    look for local servers, if not on their usual ports."""
    from .. import __version__

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
        await _check_local(settings, report, local_probe)
    if settings.oauth_issuer:
        await _check_issuer(settings, report)
    print("all good" if not failures else f"{failures} problem(s)")
    return 1 if failures else 0


async def _check_remote(settings: Settings, report: Any) -> None:
    from ..apex import models as m
    from ..apex.remote import RemoteApex

    async with RemoteApex(settings.base_url, settings.api_key, timeout=20) as remote:
        report(None, "Apex server", remote.base_url)
        report(None, "API key", "set" if remote.has_api_key else "not set (APEX_API_KEY)")
        try:
            await remote.get_chat_sessions(m.GetChatSessionsRequest())
            report(True, "key accepted", "the server answered GetChatSessions")
        except ApexError as error:
            # A code's usual advice is about the server (APEX_BASE_URL) or the key; else both.
            fix = error.hint or "check APEX_BASE_URL and APEX_API_KEY"
            report(False, "key accepted", error.with_hint(fix).explain())


async def _check_issuer(settings: Settings, report: Any) -> None:
    """The OAuth issuer's metadata and keys (or introspection endpoint), as serving uses them."""
    from ..server.auth import IssuerUnavailable, OAuthTokens

    tokens = OAuthTokens(settings, settings.oauth_resource_url or "")  # no token to check
    try:
        report(True, "OAuth issuer", await tokens.describe_issuer())
    except IssuerUnavailable as error:
        said = str(error)
        fix = "" if "APEX_OAUTH_ISSUER" in said else ": check APEX_OAUTH_ISSUER"
        report(False, "OAuth issuer", said + fix)
    finally:
        await tokens.aclose()


async def _check_local(
    settings: Settings, report: Any, local_probe: Sequence[tuple[str, str]] | None
) -> None:
    from ..engine import LOCAL_PROBE, MinerPool, check_search, open_store
    from ..serving import engine_config, engine_miner

    try:
        store = await open_store(settings.store_target)
        try:
            integrity = await store.integrity_check()
        finally:
            await store.close()
        detail = f"{settings.db} (integrity: {integrity})"
        if integrity != "ok":
            detail += f": the file is damaged: {_STORE_FIXES[Code.DATA_LOSS]}"
        report(integrity == "ok", "store", detail)
    except ApexError as error:
        if isinstance(settings.db, DatabaseUrl):
            fix = (
                "check that PostgreSQL runs at that address, that the database exists and "
                "that the user may connect to it and create tables"
            )
        else:
            fix = _STORE_FIXES.get(
                error.code, "check that APEX_DB names a file in a folder you can write"
            )
        report(False, "store", f"{settings.db}: {error.message}: {fix}")
    for search in await check_search(engine_config(settings)):
        report(search.ok, "web search", f"{search.label}: {search.detail}")
    async with MinerPool(
        [engine_miner(miner) for miner in settings.miners],
        discover_local=settings.discover_local_miners,
        local_probe=LOCAL_PROBE if local_probe is None else local_probe,
    ) as pool:
        statuses = await pool.check()
    if settings.miners:
        for status in statuses:
            _report_miner(status, _SettingNames.of(settings, status.name), report)
    else:
        _report_discovery(settings, statuses, report)


def _report_miner(status: MinerStatus, names: _SettingNames, report: Any) -> None:
    """A configured miner: whether it answers, and if not, what to set or do."""
    # What the fix says is left out of the detail: the address, the key's variable.
    detail = status.detail.removesuffix(f" at {status.base_url}").split("; check its API key")[0]
    if status.problem == "no_key":
        detail = "no API key"
    where = f"{status.base_url} (configured)"
    if status.ok:
        models = f"; models: {', '.join(status.models[:5])}" if status.models else ""
        if status.problem == "model_missing":
            detail += f" (if chats fail, set {names.model} to one it lists)"
        report(True, f"miner {status.name}", f"{where} {detail}{models}")
    else:
        report(False, f"miner {status.name}", f"{where}: {detail}: {names.fix(status)}")


def _report_discovery(settings: Settings, statuses: list[MinerStatus], report: Any) -> None:
    """No miner configured: the local servers looked for, and one problem if none will do."""
    if not statuses:  # nothing looked for
        report(
            False,
            "miners",
            "none configured, and looking for local ones is off "
            f"(APEX_DISCOVER_LOCAL_MINERS): {SET_A_MINER}",
        )
        return
    for status in statuses:
        where = f"{status.base_url} (looked for locally)"
        detail = status.detail.removesuffix(f" at {status.base_url}")
        if status.ok and status.problem == "no_models":
            pull = _PULL_LOCAL.get(status.name, "add one to it")
            report(False, f"miner {status.name}", f"{where}: {detail}: {pull}")
        elif status.ok:
            models = f"; models: {', '.join(status.models[:5])}" if status.models else ""
            report(True, f"miner {status.name}", f"{where} {detail}{models}")
        else:  # not running: a problem only if nothing else is (below)
            report(None, f"miner {status.name}", f"{where}: {detail}")
    if not any(s.ok for s in statuses):
        start = " or ".join(_START_LOCAL.get(s.name, f"start {s.name}") for s in statuses)
        report(False, "miners", f"none configured, and none runs here: {start}; or {SET_A_MINER}")


@dataclass(frozen=True)
class _SettingNames:
    """Where a configured miner's address, key and model are set, in the words of the fix."""

    miner: MinerSettings
    url: str
    key: str
    model: str

    @classmethod
    def of(cls, settings: Settings, name: str) -> _SettingNames:
        miner = next(m for m in settings.miners if m.name == name)
        if _is_shorthand(settings, miner):
            # APEX_MINER_API_KEY is the key sent; else the preset's variable, if it has one.
            key = "APEX_MINER_API_KEY"
            if miner.api_key is None and miner.api_key_env:
                key += f" (or {miner.api_key_env})"
            return cls(miner, "APEX_MINER", key, "APEX_MINER_MODEL")
        source = "APEX_MINERS" if os.environ.get("APEX_MINERS") else "the config file"
        entry = f"of the miner {name!r} in {source}"
        if miner.api_key is None and miner.api_key_env:
            key = f"{miner.api_key_env} (its api_key_env)"
        else:
            key = f"the api_key {entry}"
        return cls(miner, f"the base_url {entry}", key, f"the models {entry}")

    def fix(self, status: MinerStatus) -> str:
        """What to do about a miner that failed its check."""
        problem = status.problem
        if problem == "no_key":
            return f"set {self.key}"
        if problem == "key_refused":
            if self.miner.resolved_api_key() is None:
                return f"it wants an API key: set {self.key}"
            return f"the key was refused: set {self.key} to a valid key"
        if problem == "unreachable":
            start = _START_LOCAL.get(_LOCAL_LABELS.get(self.miner.preset or "", ""), "")
            running = f"{start}, or check" if start else "check that it is running, and"
            return f"{running} that {self.url} is its address"
        if problem == "timeout":
            return "it is up but too slow to answer: check it (or its load), or try again"
        if problem == "connection":
            return f"check {self.url} (http or https?) and any proxy in between (HTTPS_PROXY)"
        if problem in ("not_found", "malformed"):
            return (
                f"no OpenAI-compatible API answers there: {self.url} should be its API root, "
                "usually ending in /v1"
            )
        if problem == "rate_limited":
            return "it is rate limiting this key: wait, or check the account's limits and credit"
        if problem == "server_error":
            return "the server itself failed: try again later, or look at its logs"
        return f"check {self.url} and {self.key}"


_LOCAL_LABELS = {"ollama": "Ollama", "lmstudio": "LM Studio"}


def _is_shorthand(settings: Settings, miner: MinerSettings) -> bool:
    """Whether ``miner`` is the one APEX_MINER made (see Settings._shorthand_miner)."""
    if not settings.miner:
        return False
    try:
        return MinerSettings.parse(settings.miner).name == miner.name
    except ValueError:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    server_options(parser, serves_tools=False)


def run(args: argparse.Namespace) -> int:
    import anyio

    settings = settings_from(args)
    set_up()
    return anyio.run(doctor, settings)
