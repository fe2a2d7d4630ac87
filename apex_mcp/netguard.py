"""Whether a URL leads to the public internet. What the server fetches for someone else (a web
page; a hosted session's miner or Apex server) must not be its own loopback, LAN or cloud
metadata address.

The name is resolved here and again when the connection is made: a name that changes its
answer in between (DNS rebinding) gets past this check; an egress firewall is the place for
that.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import anyio


class NotPublic(ValueError):
    """The URL is not http(s), cannot be resolved, or resolves to a non-public address."""


async def check_public_url(url: str) -> None:
    """Return if every address ``url``'s host resolves to is public; else raise NotPublic."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotPublic("not an http(s) URL")
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError):  # ValueError: a bad port
            raise NotPublic(f"cannot resolve {host}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not is_public(address):
            raise NotPublic(f"{host} is a private address ({address})")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address.is_global and not address.is_multicast
