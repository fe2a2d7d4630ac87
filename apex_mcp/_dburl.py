"""Database URLs: config.py reads APEX_DB with them and the engine's store opens them. Below
every layer, so it imports nothing of the project."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")
_PASSWORD_PARAMETER = re.compile(r"(?i)(^|&)(password=)[^&]*")


def is_database_url(value: object) -> bool:
    """Whether ``value`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``), not a
    SQLite file's path."""
    return isinstance(value, str) and value.lower().startswith(SCHEMES)


def url_passwords(url: str) -> list[str]:
    """The passwords ``url`` holds: after the user name, or as a ``password=`` parameter."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return []
    found += [value for key, value in parse_qsl(parts.query) if key.lower() == "password"]
    return [password for password in found if password]


def redacted_url(url: str) -> str:
    """``url`` without its password: what errors, logs and reprs may show."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.hostname or ""
            if ":" in host:  # an IPv6 address
                host = f"[{host}]"
            netloc = f"{parts.username or ''}:***@{host}"
            if parts.port is not None:
                netloc += f":{parts.port}"
            parts = parts._replace(netloc=netloc)
        query = _PASSWORD_PARAMETER.sub(r"\1\2***", parts.query)
        return urlunsplit(parts._replace(query=query))
    except ValueError:  # e.g. a port that is not a number: show none of it
        return f"{url.partition('://')[0]}://(a URL that cannot be read)"
