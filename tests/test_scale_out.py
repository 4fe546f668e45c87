"""The scale-out deployment examples agree with the proxy: the cluster compose file, its
config and balancer, and the Kubernetes example in docs/scale-out.md (checked statically)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from proxy.config.load import MIN_CLUSTER_KEY_LENGTH
from proxy.config.schema import CLUSTER_KEY_ENV, REDIS_PASSWORD_ENV
from tests.support.paths import ROOT

COMPOSE = ROOT / "docker-compose.cluster.yml"
DOC = ROOT / "docs" / "scale-out.md"
REPLICAS = ("proxy-1", "proxy-2", "proxy-3")


def _services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    services = document["services"]
    assert isinstance(services, dict)
    return services


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repo path (or volume name) of each short-syntax volume."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def test_three_replicas_share_one_redis_behind_a_balancer() -> None:
    """Redis, three identical replicas with the cluster config, and HAProxy on 8080 in front."""
    services = _services()
    assert {"mock-graph", "redis", *REPLICAS, "balancer"} <= set(services)
    configs = {tuple(services[name]["command"]) for name in REPLICAS}
    assert configs == {("serve", "--config", "/etc/freebusy-proxy/proxy.toml")}
    assert "8080:8080" in services["balancer"]["ports"]
    for name in REPLICAS:
        service = services[name]
        assert "ports" not in service, "replicas are reached through the balancer"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"]
        assert _mounts(service)["/etc/freebusy-proxy/proxy.toml"] == "./config/cluster.toml"


def test_the_replicas_config_shares_through_the_redis_service(tmp_path: Path) -> None:
    """config/cluster.toml passes check-config with the compose environment, points at the
    redis service, and the password the replicas send is the one Redis requires."""
    services = _services()
    env = {str(k): str(v) for k, v in services["proxy-1"]["environment"].items()}
    assert len(env[CLUSTER_KEY_ENV]) >= MIN_CLUSTER_KEY_LENGTH
    assert env[REDIS_PASSWORD_ENV] in services["redis"]["command"]
    assert "--appendonly" in services["redis"]["command"]
    # Each replica advertises where the others reach it (its own service, its own port).
    for name in REPLICAS:
        advertised = services[name]["environment"]["FREEBUSY_PROXY_CLUSTER__ADVERTISE_URL"]
        assert advertised == f"http://{name}:8080"
    document = tomllib.loads((ROOT / "config" / "cluster.toml").read_text())
    assert document["cluster"]["redis_url"].startswith("redis://redis:6379/")
    fake_ca = tmp_path / "mock-ca.pem"
    fake_ca.write_text("placeholder\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FREEBUSY_PROXY_")}
    result = subprocess.run(  # noqa: S603 (our own interpreter and a repo file)
        [sys.executable, "-m", "proxy", "check-config", str(ROOT / "config" / "cluster.toml")],
        cwd=ROOT,
        env={**clean, **env, "FREEBUSY_PROXY_GRAPH__CA_FILE": str(fake_ca)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_balancer_checks_readiness_of_every_replica() -> None:
    """HAProxy balances over the three replicas on 8080, takes one out on its /readyz, and
    refuses the replicas' own /cluster/ routes from outside."""
    text = (ROOT / "config" / "haproxy.cfg").read_text()
    assert "http-request deny deny_status 404 if { path_beg /cluster/ }" in text
    assert _mounts(_services()["balancer"])["/usr/local/etc/haproxy/haproxy.cfg"] == (
        "./config/haproxy.cfg"
    )
    assert re.search(r"^\s*bind :8080$", text, re.MULTILINE)
    assert "option httpchk GET /readyz" in text
    servers = re.findall(r"^\s*server (\S+) (\S+)$", text, re.MULTILINE)
    assert servers == [(name, f"{name}:8080") for name in REPLICAS]


def test_the_kubernetes_example_probes_readiness_and_liveness() -> None:
    """docs/scale-out.md's example: a Deployment of replicas with /readyz and /healthz probes
    and every secret from a Secret, and a Service in front of its pods."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)
    documents = [d for block in blocks for d in yaml.safe_load_all(block)]
    kinds = {d["kind"]: d for d in documents}
    deployment, service = kinds["Deployment"], kinds["Service"]
    assert deployment["spec"]["replicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    env = {e["name"]: e for e in container["env"]}
    for secret in (CLUSTER_KEY_ENV, REDIS_PASSWORD_ENV, "FREEBUSY_PROXY_CLIENT_SECRET"):
        assert "secretKeyRef" in env[secret]["valueFrom"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    assert "docker compose -f docker-compose.cluster.yml up --build" in DOC.read_text()
