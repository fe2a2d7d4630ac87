"""manifests/k8s: a kustomize base and two overlays, ``sqlite`` (one replica, a volume) and
``postgres`` (three, on the database URL of the Secret, without sessions). Each overlay is built
with kubectl's kustomize, and every resource it makes passes kubernetes-validate (strict, the
newest Kubernetes schema it ships); the pieces fit together: probes, ports, Services, volumes,
the Secret, the settings each container reads, the image's user and version, the gateway's
arguments, and what running several replicas needs."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from apex_mcp.cli.main import parse_command_line
from tests.packaging.tooling import MANIFESTS, ROOT, settings_env_names, version_in_init

K8S = MANIFESTS / "k8s"
OVERLAYS = ("sqlite", "postgres")
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))


def patch_files() -> set[Path]:
    """The files overlays patch with: partial resources, valid only once merged."""
    found = set()
    for kustomization in KUSTOMIZATIONS:
        for patch in yaml.safe_load(kustomization.read_text()).get("patches", []):
            found.add((kustomization.parent / patch["path"]).resolve())
    return found


RESOURCE_FILES = sorted(
    p
    for p in K8S.rglob("*.yaml")
    if p.name != "kustomization.yaml" and p.resolve() not in patch_files()
)


@functools.cache
def _build(directory: Path) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        message = "kubectl is not installed: the overlays are built with its kustomize"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    built = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    return tuple(doc for doc in yaml.safe_load_all(built.stdout) if doc)


def resources(overlay: str) -> list[dict[str, Any]]:
    """What ``kubectl apply -k manifests/k8s/overlays/<overlay>`` would apply."""
    return copy.deepcopy(list(_build(K8S / "overlays" / overlay)))


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources(overlay) if r["kind"] == kind}


@pytest.mark.parametrize(
    "path", RESOURCE_FILES, ids=[str(p.relative_to(K8S)) for p in RESOURCE_FILES]
)
def test_each_resource_file_passes_kubernetes_validate(path: Path) -> None:
    version = kubernetes_validate.latest_version()
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_built_resource_passes_kubernetes_validate(overlay: str) -> None:
    version = kubernetes_validate.latest_version()
    for doc in resources(overlay):
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_refuses_a_broken_deployment() -> None:
    broken = of_kind("sqlite", "Deployment")["apex-mcp"]
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["paht"] = "/healthz"  # a typo, rejected when strict
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_each_kustomization_lists_every_file_beside_it() -> None:
    assert {k.parent.relative_to(K8S).as_posix() for k in KUSTOMIZATIONS} == {
        ".",
        "base",
        *(f"overlays/{overlay}" for overlay in OVERLAYS),
    }
    for kustomization in KUSTOMIZATIONS:
        listed = yaml.safe_load(kustomization.read_text())
        used = list(listed.get("resources", [])) + [p["path"] for p in listed.get("patches", [])]
        here = kustomization.parent
        files = sorted(p.name for p in here.glob("*.yaml") if p.name != "kustomization.yaml")
        assert sorted(u for u in used if (here / u).is_file()) == files, kustomization
        assert all((here / u).exists() for u in used), kustomization


def test_the_top_level_kustomization_is_the_sqlite_overlay() -> None:
    # kubectl apply -k manifests/k8s still does what it did before the overlays.
    assert list(_build(K8S)) == resources("sqlite")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_deployments_fit_together(overlay: str) -> None:
    deployments = of_kind(overlay, "Deployment")
    assert set(deployments) == {"apex-mcp", "apex-gateway"}
    services = of_kind(overlay, "Service")
    (secret_name,) = of_kind(overlay, "Secret")
    (config_name,) = of_kind(overlay, "ConfigMap")
    config = of_kind(overlay, "ConfigMap")[config_name]
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
        assert "APEX_DB" in env, name

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


def test_sqlite_runs_one_replica_per_file_on_a_volume() -> None:
    claims = set(of_kind("sqlite", "PersistentVolumeClaim"))
    deployments = of_kind("sqlite", "Deployment")
    files = set()
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        # One replica, replaced not rolled: one writer of the SQLite file at a time.
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        db = Path(env["APEX_DB"]["value"])
        claim = volumes[mounts[str(db.parent)]]["persistentVolumeClaim"]["claimName"]
        assert claim in claims
        files.add((claim, db.name))
    assert len({claim for claim, _ in files}) == len(deployments)  # a volume each


def test_postgres_runs_replicas_on_the_secrets_database_url() -> None:
    (secret_name,) = of_kind("postgres", "Secret")
    assert not of_kind("postgres", "PersistentVolumeClaim")
    budgets = of_kind("postgres", "PodDisruptionBudget")
    for name, deployment in of_kind("postgres", "Deployment").items():
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert spec["replicas"] == 3, name
        # Rolled with a new pod ready before an old one goes.
        assert spec["strategy"]["type"] == "RollingUpdate", name
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        # The database URL (with its password) from the Secret, required; no file, no volume.
        assert env["APEX_DB"]["valueFrom"]["secretKeyRef"] == {
            "name": secret_name,
            "key": "APEX_DB",
        }
        assert all("emptyDir" in volume for volume in pod["volumes"]), name
        # A disruption budget over its pods that leaves some answering.
        labels = spec["template"]["metadata"]["labels"]
        (budget,) = [
            b
            for b in budgets.values()
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert 0 < budget["spec"]["maxUnavailable"] < spec["replicas"], name
    # Any MCP replica answers any request, whatever the client's protocol version.
    server = of_kind("postgres", "Deployment")["apex-mcp"]["spec"]["template"]["spec"]
    server_env = {e["name"]: e for e in server["containers"][0]["env"]}
    assert server_env["APEX_HTTP_STATELESS"]["value"] == "true"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_secret_ships_no_key(overlay: str) -> None:
    (secret,) = of_kind(overlay, "Secret").values()
    assert not secret.get("data") and not secret.get("stringData")


def _dockerfile_user() -> int:
    users = [
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    return int(users[-1].split(":")[0])
