import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """No test reads the developer's own config, keys or data: a fresh home for each."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("APEX_", "MACROCOSMOS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    yield home


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest tests first (they build wheels and run Node tools), so that the workers
    that run them in parallel are not left waiting on them at the end."""
    items.sort(key=lambda item: "tests/packaging/" not in item.nodeid)


@pytest.fixture(scope="module")
def module_database() -> Iterator[Any]:
    """A PostgreSQL database of the test module's own (tests/postgres.py), dropped after it:
    for servers and replicas that the module starts on it. Skips (or fails where CI requires
    PostgreSQL) when the server is not there."""
    from tests import postgres

    created = postgres.session_database()
    if isinstance(created, str):
        pytest.skip(created)
    yield created
    created.drop()
