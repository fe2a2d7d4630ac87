"""manifests/server.json, the MCP registry entry: it passes the registry's published rules,
names this package at its version, and the README carries the ownership line the registry
checks on PyPI. The rules are shown to refuse what the registry refuses."""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from tests.packaging import registry_rules
from tests.packaging.tooling import MANIFESTS, ROOT, settings_env_names, version_in_init

SERVER_JSON = MANIFESTS / "server.json"


def server() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SERVER_JSON.read_text())
    return data


def test_server_json_passes_the_registry_rules() -> None:
    assert registry_rules.problems(server()) == []


def test_server_json_names_this_package_at_its_version() -> None:
    data, version = server(), version_in_init()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert data["version"] == version
    (pypi,) = [p for p in data["packages"] if p["registryType"] == "pypi"]
    assert pypi["identifier"] == project["name"] and pypi["version"] == version
    assert pypi["transport"] == {"type": "stdio"} and pypi["runtimeHint"] == "uvx"
    names = {e["name"] for e in pypi["environmentVariables"]}
    assert names <= settings_env_names(), names - settings_env_names()
    (remote,) = data["remotes"]
    assert remote["type"] == "streamable-http" and remote["url"].endswith("/mcp")
    assert [h["name"] for h in remote["headers"]] == ["Authorization"]
    # The repository everything else points at.
    owner_repo = data["repository"]["url"].removeprefix("https://github.com/")
    assert data["name"] == f"io.github.{owner_repo.split('/')[0]}/apex-mcp"
    assert project["urls"]["Repository"] == data["repository"]["url"]


def test_the_readme_declares_the_server_name_for_the_registry() -> None:
    readme = (ROOT / "README.md").read_text()
    name = server()["name"]
    assert registry_rules.readme_declares(readme, name)
    assert not registry_rules.readme_declares(readme, name + "-other")
    assert not registry_rules.readme_declares(readme, name[:-1])


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


BREAKAGES = {
    "description over 100 characters": _set("description", "x" * 101),
    "a name with two slashes": _set("name", "io.github.apex-mcp/apex/mcp"),
    "a name without a namespace": _set("name", "apex-mcp"),
    "a version range": _set("version", "^0.1.0"),
    "latest as a package version": _set("packages.0.version", "latest"),
    "a wildcard package version": _set("packages.0.version", "0.1.x"),
    "an unknown transport": _set("packages.0.transport", {"type": "websocket"}),
    "a url on stdio": _set("packages.0.transport", {"type": "stdio", "url": "http://x/mcp"}),
    "a private registry mirror": _set("packages.0.registryBaseUrl", "https://pypi.example.com"),
    "a key not marked secret": _set("packages.0.environmentVariables.1.isSecret", False),
    "a remote over plain http": _set("remotes.0.url", "http://{host}/mcp"),
    "a remote on loopback": _set("remotes.0.url", "https://127.0.0.1/mcp"),
    "an undeclared url variable": _set("remotes.0.url", "https://{host}:{port}/mcp"),
    "a token header not marked secret": _set("remotes.0.headers.0.isSecret", False),
    "an old schema": _set("$schema", registry_rules.SCHEMA_URL.replace("2025-12-11", "2025-07-09")),
    "a repository that is not one": _set("repository.url", "https://example.com/apex-mcp"),
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=list(BREAKAGES))
def test_the_rules_refuse_what_the_registry_refuses(breakage: str) -> None:
    broken = copy.deepcopy(server())
    BREAKAGES[breakage](broken)
    assert registry_rules.problems(broken), breakage
