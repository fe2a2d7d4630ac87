"""Database URLs: config.py reads APEX_DB with them and the engine's store opens them. Below
every layer, so it imports nothing of the project."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")


def is_database_url(value: object) -> bool:
    """Whether ``value`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``), not a
    SQLite file's path."""
    return isinstance(value, str) and value.lower().startswith(SCHEMES)


def redacted_url(url: str) -> str:
    """``url`` without its password: what errors, logs and reprs may show."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:  # e.g. a port that is not a number: show none of it
        return f"{url.partition('://')[0]}://(a URL that cannot be read)"
