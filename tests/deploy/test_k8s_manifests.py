"""Offline checks of the Kubernetes manifests: structure, probes, references that resolve."""

from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SERVICES = ("request", "policy", "lifecycle", "notify", "audit")
NAMESPACED = {
    "ServiceAccount",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "ConfigMap",
    "Secret",
}


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


KUSTOMIZATION = documents("kustomization.yaml")[0]
ALL = [doc for name in KUSTOMIZATION["resources"] for doc in documents(name)]
SECRETS = {doc["metadata"]["name"]: doc for doc in documents("secret.example.yaml")}
CONFIG_MAPS = {doc["metadata"]["name"]: doc for doc in ALL if doc["kind"] == "ConfigMap"}


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in ALL if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_every_resource_is_well_formed_and_namespaced() -> None:
    assert all((K8S / name).exists() for name in KUSTOMIZATION["resources"])
    for doc in ALL + list(SECRETS.values()):
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"].get("name"), doc
        if doc["kind"] in NAMESPACED:
            assert doc["metadata"].get("namespace") == "team", doc["metadata"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_deployment_with_probes_and_a_matching_service(service: str) -> None:
    deployment = one("Deployment", service)
    spec = deployment["spec"]
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    svc = one("Service", service)
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    for port in svc["spec"]["ports"]:
        target = port["targetPort"]
        assert target in ports or target in ports.values(), port

    env = {e["name"]: e for e in container.get("env", [])}
    prefix = service.upper()
    assert f"{prefix}_DATABASE_URL" in env
    for item in env.values():
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            secret = SECRETS.get(ref["name"])
            assert secret is not None, f"secret {ref['name']} missing from secret.example.yaml"
            keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
            assert ref["key"] in keys, f"{ref['name']} lacks key {ref['key']}"
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] in CONFIG_MAPS


def test_the_shared_config_map_points_at_the_platform() -> None:
    data = next(iter(CONFIG_MAPS.values()))["data"]
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "OIDC_ISSUER", "OIDC_AUDIENCE"):
        assert data.get(key), key
