"""manifests/k8s: every resource passes kubernetes-validate (strict, the newest Kubernetes
schema it ships), and the pieces fit together: probes, ports, Services, volumes, the Secret,
the settings each container reads, the image's user and version, the gateway's arguments."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from apex_mcp.cli.main import parse_command_line
from tests.packaging.tooling import MANIFESTS, ROOT, settings_env_names, version_in_init

K8S = MANIFESTS / "k8s"
RESOURCE_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def resources() -> list[dict[str, Any]]:
    found = []
    for path in RESOURCE_FILES:
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources() if r["kind"] == kind}


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=[p.name for p in RESOURCE_FILES])
def test_each_resource_passes_kubernetes_validate(path: Path) -> None:
    version = kubernetes_validate.latest_version()
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_refuses_a_broken_deployment() -> None:
    broken = copy.deepcopy(of_kind("Deployment")["apex-mcp"])
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["paht"] = "/healthz"  # a typo, rejected when strict
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in RESOURCE_FILES]


def test_the_deployments_fit_together() -> None:
    deployments = of_kind("Deployment")
    assert set(deployments) == {"apex-mcp", "apex-gateway"}
    services = of_kind("Service")
    claims = set(of_kind("PersistentVolumeClaim"))
    (secret_name,) = of_kind("Secret")
    (config_name,) = of_kind("ConfigMap")
    config = of_kind("ConfigMap")[config_name]
    known = settings_env_names()
    assert set(config["data"]) <= known, set(config["data"]) - known
    dockerfile_user = _dockerfile_user()

    for name, deployment in deployments.items():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        (container,) = pod["containers"]
        assert container["image"].endswith(f":{version_in_init()}"), container["image"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e for e in container["env"]}
        assert {n for n in env if n != "PORT"} <= known, set(env) - known

        # One replica, replaced not rolled, when it writes a SQLite file on a volume.
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        db_dir = str(Path(env["APEX_DB"]["value"]).parent)
        claim = volumes[mounts[db_dir]]["persistentVolumeClaim"]["claimName"]
        assert claim in claims
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", name

        # Probes on /healthz, on a port the container has.
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            check = container[probe]["httpGet"]
            assert check["path"] == "/healthz" and check["port"] in ports, (name, probe)

        # Requests and limits, a non-root user (the image's), nothing to escalate to.
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == dockerfile_user
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]

        # Keys come from the Secret, the rest from the ConfigMap.
        for variable in env.values():
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret_name and ref["key"] == variable["name"]
            else:
                assert not any(w in variable["name"] for w in ("KEY", "TOKEN")), variable
        assert container["envFrom"] == [{"configMapRef": {"name": config_name}}]

        # A Service in front of it, on a port it listens on.
        (service,) = [
            s for s in services.values() if s["spec"]["selector"].items() <= labels.items()
        ]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports

    # The MCP server listens on $PORT (the image's entrypoint), the gateway where its args say.
    server = deployments["apex-mcp"]["spec"]["template"]["spec"]["containers"][0]
    assert (
        int({e["name"]: e for e in server["env"]}["PORT"]["value"])
        == server["ports"][0]["containerPort"]
    )
    assert "command" not in server and "args" not in server
    assert {e["name"] for e in server["env"]} >= {"APEX_HTTP_TOKEN", "APEX_HTTP_ALLOWED_HOSTS"}
    gateway = deployments["apex-gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["command"] == ["apex-mcp"]
    parsed = parse_command_line(gateway["args"])
    assert parsed.command == "gateway" and parsed.host == "0.0.0.0"
    assert parsed.port == gateway["ports"][0]["containerPort"]
    assert "APEX_GATEWAY_KEYS" in {e["name"] for e in gateway["env"]}


def test_the_secret_ships_no_key() -> None:
    (secret,) = of_kind("Secret").values()
    assert not secret.get("data") and not secret.get("stringData")


def _dockerfile_user() -> int:
    users = [
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    return int(users[-1].split(":")[0])
