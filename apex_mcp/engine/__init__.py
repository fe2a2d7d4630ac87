"""The embedded Apex engine: ``LocalApex`` over a store, the miners and the web.

Everything outside the engine imports it from here, never from its modules. Importing the
package costs nothing: each name loads its module when first used (the MCP server's stdio
start-up must not pay for the HTTP clients, SQLite and the web retriever).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import (
        DEFAULT_USER,
        LOCAL_PROBE,
        EngineConfig,
        MinerConfig,
        MinerSet,
        ResearchLimits,
    )
    from .local import LocalApex
    from .miners import MinerPool, MinerStatus
    from .search import SearchStatus, check_search
    from .store import open_store

# Each public name, and the module (of this package) that defines it.
_HOMES = {
    "DEFAULT_USER": "config",
    "LOCAL_PROBE": "config",
    "EngineConfig": "config",
    "MinerConfig": "config",
    "MinerSet": "config",
    "ResearchLimits": "config",
    "LocalApex": "local",
    "MinerPool": "miners",
    "MinerStatus": "miners",
    "SearchStatus": "search",
    "check_search": "search",
    "open_store": "store",
}

__all__ = [
    "DEFAULT_USER",
    "LOCAL_PROBE",
    "EngineConfig",
    "LocalApex",
    "MinerConfig",
    "MinerPool",
    "MinerSet",
    "MinerStatus",
    "ResearchLimits",
    "SearchStatus",
    "check_search",
    "open_store",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once: later lookups do not come back here
    return value
