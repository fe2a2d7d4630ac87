"""The MCP registry's published rules for a server.json, offline: its JSON schema (version
2025-12-11, as published at static.modelcontextprotocol.io) and the checks the official
registry adds when it accepts a server (modelcontextprotocol/registry,
internal/validators: server name grammar, exact versions, transports, remote URLs, repository
URL, the 4 KB publisher metadata), the ``mcp-name:`` line it looks for in a PyPI package's
README, and one rule of this project: every input that holds a secret says so."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "server.schema.2025-12-11.json"
SCHEMA_SHA256 = "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"

NAMESPACE = r"[a-zA-Z0-9][a-zA-Z0-9.-]*[a-zA-Z0-9]"
NAME_PART = r"[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]"
SERVER_NAME = re.compile(f"^{NAMESPACE}/{NAME_PART}$")

_V = r"v?\d+(?:\.\d+){0,3}(?:-[0-9A-Za-z.-]+)?"
VERSION_RANGES = [
    re.compile(rf"^\s*(?:\^|~|>=|<=|>|<|=)\s*{_V}\s*$"),
    re.compile(rf"^\s*{_V}\s-\s*{_V}\s*$"),
    re.compile(rf"^\s*(?:{_V}\s*)(?:\|\|\s*{_V}\s*)+$"),
]
DOTTED_WILDCARD = re.compile(
    r"^\s*(?:v?\d+|x|X|\*)(?:\.(?:\d+|x|X|\*)){1,2}(?:-[0-9A-Za-z.-]+)?\s*$"
)
REPOSITORY_URLS = {
    "github": re.compile(r"^https?://(www\.)?github\.com/[\w.-]+/[\w.-]+/?$"),
    "gitlab": re.compile(r"^https?://(www\.)?gitlab\.com/[\w.-]+/[\w.-]+/?$"),
}
REGISTRY_BASE_URLS = {
    "npm": {"https://registry.npmjs.org"},
    "pypi": {"https://pypi.org"},
    "nuget": {"https://api.nuget.org/v3/index.json", "https://api.nuget.org"},
}
TEMPLATE = re.compile(r"\{([^}]+)\}")
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "AUTHORIZATION", "CREDENTIAL")


@cache
def schema() -> dict[str, Any]:
    raw = SCHEMA_FILE.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256, "not the published schema"
    data: dict[str, Any] = json.loads(raw)
    assert data["$id"] == SCHEMA_URL
    return data


def problems(server: dict[str, Any]) -> list[str]:
    """Everything the registry (and this project) would refuse in ``server``; empty: none."""
    found = [
        f"schema: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in jsonschema.Draft7Validator(schema()).iter_errors(server)
    ]
    if server.get("$schema") != SCHEMA_URL:
        found.append(f"$schema: use the current schema, {SCHEMA_URL}")
    name = server.get("name", "")
    if name.count("/") != 1 or not SERVER_NAME.match(name):
        found.append(f"name: {name!r} is not reverse-DNS namespace/name with one slash")
    found += _version("version", server.get("version", ""))
    repository = server.get("repository")
    if repository:
        pattern = REPOSITORY_URLS.get(repository.get("source", ""))
        if pattern is None or not pattern.match(repository.get("url", "")):
            found.append(f"repository: {repository.get('url')!r} is not a repository URL")
    if "websiteUrl" in server and urlsplit(server["websiteUrl"]).scheme != "https":
        found.append("websiteUrl: must be an absolute https URL")
    meta = server.get("_meta") or {}
    if set(meta) - {"io.modelcontextprotocol.registry/publisher-provided"}:
        found.append("_meta: only io.modelcontextprotocol.registry/publisher-provided is kept")
    provided = meta.get("io.modelcontextprotocol.registry/publisher-provided")
    if provided is not None and len(json.dumps(provided, separators=(",", ":"))) > 4096:
        found.append("_meta: publisher-provided metadata is over 4 KB")
    for i, package in enumerate(server.get("packages") or []):
        found += _package(f"packages[{i}]", package)
    for i, remote in enumerate(server.get("remotes") or []):
        found += _remote(f"remotes[{i}]", remote)
    return found


def readme_declares(readme: str, server_name: str) -> bool:
    """The registry's ownership check of a PyPI package: ``mcp-name: <name>`` in its README,
    the name ending there (not a longer name that starts the same)."""
    prefix = "mcp-name: "
    start = 0
    while (at := readme.find(prefix, start)) >= 0:
        end = at + len(prefix) + len(server_name)
        if readme.startswith(server_name, at + len(prefix)) and (
            end == len(readme) or not re.match(r"[a-zA-Z0-9._/-]", readme[end])
        ):
            return True
        start = at + len(prefix)
    return False


def _version(where: str, version: str) -> list[str]:
    if version == "latest":
        return [f"{where}: 'latest' is reserved; give the exact version"]
    trimmed = version.strip()
    ranged = any(p.match(trimmed) for p in VERSION_RANGES) or (
        DOTTED_WILDCARD.match(trimmed) is not None and any(c in trimmed for c in "xX*")
    )
    return [f"{where}: {version!r} is a range, not an exact version"] if ranged else []


def _package(where: str, package: dict[str, Any]) -> list[str]:
    found = []
    kind = package.get("registryType", "")
    if " " in package.get("identifier", ""):
        found.append(f"{where}.identifier: no spaces")
    if kind in REGISTRY_BASE_URLS:
        if not package.get("version"):
            found.append(f"{where}.version: {kind} packages give their exact version")
        base = package.get("registryBaseUrl")
        if base is not None and base not in REGISTRY_BASE_URLS[kind]:
            found.append(f"{where}.registryBaseUrl: {base} is not the public {kind} registry")
    found += _version(f"{where}.version", package.get("version", ""))
    variables = [e["name"] for e in package.get("environmentVariables") or []]
    for arg in (package.get("runtimeArguments") or []) + (package.get("packageArguments") or []):
        variables += [arg[k] for k in ("name", "valueHint") if arg.get(k)]
    transport = package.get("transport") or {}
    if transport.get("type") == "stdio":
        if transport.get("url"):
            found.append(f"{where}.transport: stdio takes no url")
    elif transport.get("type") in ("streamable-http", "sse"):
        found += _templated_url(f"{where}.transport.url", transport.get("url", ""), variables)
    else:
        found.append(f"{where}.transport: unknown transport type {transport.get('type')!r}")
    for env in package.get("environmentVariables") or []:
        found += _secret_marked(f"{where}.environmentVariables.{env['name']}", env["name"], env)
    return found


def _remote(where: str, remote: dict[str, Any]) -> list[str]:
    found = []
    if remote.get("type") not in ("streamable-http", "sse"):
        return [f"{where}: remotes are streamable-http or sse, not {remote.get('type')!r}"]
    url = remote.get("url", "")
    variables = list(remote.get("variables") or {})
    found += _templated_url(f"{where}.url", url, variables)
    host = urlsplit(_placeholders(url)).hostname or ""
    if urlsplit(url).scheme != "https":
        found.append(f"{where}.url: a remote is reached over https")
    if _internal(host):
        found.append(f"{where}.url: {host} is not a public host")
    for header in remote.get("headers") or []:
        found += _secret_marked(f"{where}.headers.{header['name']}", header["name"], header)
    return found


def _templated_url(where: str, url: str, variables: list[str]) -> list[str]:
    parts = urlsplit(_placeholders(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [f"{where}: {url!r} is not an http(s) URL"]
    unknown = [v for v in TEMPLATE.findall(url) if v not in variables]
    return [f"{where}: {{{v}}} is not a declared variable" for v in unknown]


def _placeholders(url: str) -> str:
    """The registry's way to parse a URL template: known names, ports, then "placeholder"."""
    for name, value in {"{host}": "example.com", "{port}": "8080", "{path}": "api"}.items():
        url = url.replace(name, value)
    url = re.sub(r":(\{[^}]+\})(/|$)", r":8080\2", url)
    return TEMPLATE.sub("placeholder", url)


def _internal(host: str) -> bool:
    host = host.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")
    return not ip.is_global


def _secret_marked(where: str, name: str, field: dict[str, Any]) -> list[str]:
    found = []
    holds_secret = any(word in name.upper() for word in SECRET_WORDS)
    if holds_secret and not field.get("isSecret"):
        found.append(f"{where}: holds a secret and must say isSecret: true")
    for variable, spec in (field.get("variables") or {}).items():
        if holds_secret and not spec.get("isSecret"):
            found.append(f"{where}.variables.{variable}: holds a secret: isSecret: true")
    return found
