"""compose.yaml, for local multi-replica runs (not run here: no Docker in CI): PostgreSQL,
several apex-mcp replicas on its URL without sessions, and a round-robin balancer in front, each
piece pointing at the others as it should."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.packaging.tooling import ROOT, settings_env_names

COMPOSE = ROOT / "compose.yaml"


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_services_are_postgres_replicas_and_a_balancer() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "apex-mcp", "balancer"}
    replicas = services["apex-mcp"]
    assert replicas["deploy"]["replicas"] >= 2
    # Replicas cannot share a host port: only the balancer publishes one, on loopback.
    assert "ports" not in replicas and "container_name" not in replicas
    (published,) = services["balancer"]["ports"]
    assert published.startswith("127.0.0.1:")
    assert replicas["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]


def test_the_replicas_use_the_postgres_service_without_sessions() -> None:
    services = compose()["services"]
    env = services["apex-mcp"]["environment"]
    assert {name for name in env if name != "PORT"} <= settings_env_names()
    assert env["APEX_HTTP_STATELESS"] == "true"
    url = urlsplit(env["APEX_DB"])
    database = services["postgres"]["environment"]
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert (url.username, url.password, url.path) == (
        database["POSTGRES_USER"],
        database["POSTGRES_PASSWORD"],
        "/" + database["POSTGRES_DB"],
    )
    # The token comes from the caller's environment, required; never written here.
    assert re.fullmatch(r"\$\{APEX_HTTP_TOKEN:\?.+\}", env["APEX_HTTP_TOKEN"])
    # The Host the balancer passes on is one the replicas accept.
    assert "localhost:*" in json.loads(env["APEX_HTTP_ALLOWED_HOSTS"])


def test_the_balancer_round_robins_over_the_replicas_port() -> None:
    document = compose()
    balancer = document["services"]["balancer"]
    (config,) = balancer["configs"]
    nginx = document["configs"][config["source"]]["content"]
    assert config["target"].startswith("/etc/nginx/conf.d/")
    port = document["services"]["apex-mcp"]["environment"]["PORT"]
    upstream = re.search(r"upstream (\w+) \{\s*server apex-mcp:(\d+);\s*\}", nginx)
    assert upstream is not None and upstream.group(2) == port
    assert f"proxy_pass http://{upstream.group(1)};" in nginx
    # Round-robin (nginx's default), nothing sticky, streams unbuffered, the client's Host.
    assert not re.search(r"\b(ip_hash|hash|sticky|least_conn)\b", nginx)
    assert "proxy_buffering off;" in nginx
    assert "proxy_set_header Host $$http_host;" in nginx  # $$: compose's escape of $
    (published,) = balancer["ports"]
    assert published.endswith(":80") and "listen 80;" in nginx
