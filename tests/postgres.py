"""A PostgreSQL database of the test session's own, on the machine's server.

``TEST_POSTGRES_URL`` names the server's maintenance database (default: the local server,
``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth). Each session (each xdist
worker) creates ``apex_test_<random>`` there and drops it at the end. When the server cannot
be reached, the PostgreSQL cases skip with the reason, unless ``TEST_POSTGRES_REQUIRED=1``
(CI sets it): then they fail, so that nothing is skipped where PostgreSQL should be.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL") or SERVER_URL


def required() -> bool:
    return os.environ.get("TEST_POSTGRES_REQUIRED") == "1"


class TestDatabase:
    """A database created for this session; ``url`` is what a store is opened with."""

    __test__ = False  # not a test class

    def __init__(self, server: str) -> None:
        self.name = f"apex_test_{secrets.token_hex(6)}"
        self.server = server
        parts = urlsplit(server)
        self.url = urlunsplit(parts._replace(path="/" + self.name))
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"CREATE DATABASE {self.name}")
        self._conn = psycopg.connect(self.url, autocommit=True)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` run on the database by a connection of the test's own."""
        cursor = self._conn.execute(sql.encode() if not params else sql, params or None)
        return cursor.fetchall() if cursor.description is not None else []

    def schema_url(self, schema: str) -> str:
        """The database's URL with ``schema`` first on the search path: a fresh, empty
        schema for a store to create its tables in."""
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def drop(self) -> None:
        self._conn.close()
        with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def session_database() -> TestDatabase | str:
    """A new database, or why there cannot be one (the server is not reachable)."""
    server = server_url()
    try:
        return TestDatabase(server)
    except psycopg.OperationalError as e:
        reason = f"PostgreSQL is not reachable at {server}: {str(e).strip()}"
        if required():
            raise RuntimeError(reason + " (TEST_POSTGRES_REQUIRED=1)") from e
        return reason
