"""The Kubernetes manifests: every overlay renders, every resource is valid
against the Kubernetes schemas (offline, strict), and the wiring holds:
probes hit endpoints that exist, environment names are settings, ports
match, grace periods cover the worker's."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from redis import Redis

from conftest import Stack, require_tool, wait_until
from phaser.config import Settings
from phaser.factory import result_store
from phaser.storage.job_store import script_text
from phaser.storage.objects import ObjectResultStore

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = sorted(p.name for p in (ROOT / "kubernetes" / "overlays").iterdir())
KUBERNETES_VERSION = "1.31.0"


def _render(overlay: str) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl", "its kustomize renders overlays")
    done = subprocess.run(
        [
            kubectl,
            "kustomize",
            str(ROOT / "kubernetes" / "overlays" / overlay),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return _render(request.param)


def _containers(
    resources: list[dict[str, Any]],
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for resource in resources:
        if resource["kind"] in {"Deployment", "StatefulSet"}:
            pod = resource["spec"]["template"]["spec"]
            for container in pod["containers"]:
                yield resource, container


def _by_kind(
    resources: list[dict[str, Any]], kind: str
) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def test_overlays_exist() -> None:
    assert OVERLAYS == ["dev", "production"]


def test_every_resource_is_valid(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 10
    for resource in rendered:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_probes_hit_real_endpoints(
    rendered: list[dict[str, Any]], metered_stack: tuple[Stack, str]
) -> None:
    stack, worker_url = metered_stack
    wait_until(lambda: _answers(f"{worker_url}/health"))
    checked = 0
    for resource, container in _containers(rendered):
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            spec = container.get(probe)
            if spec is None or "httpGet" not in spec:
                continue
            get = spec["httpGet"]
            name = resource["metadata"]["name"]
            assert get["port"] in ports, (name, get)
            # The probe's path, asked of the process the container runs.
            base = stack.url if container["args"][0] == "serve" else worker_url
            answer = httpx.get(base + get["path"], timeout=5)
            assert answer.status_code == 200, (name, get, answer.text)
            checked += 1
        if container["name"] in {"frontend", "worker"}:
            assert "livenessProbe" in container
    assert checked >= 3


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_ports_match_services_and_arguments(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = _by_kind(rendered, "Deployment")
    frontend = deployments["phaser-frontend"]["spec"]["template"]["spec"]
    container = frontend["containers"][0]
    port = int(container["args"][container["args"].index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port
    services = _by_kind(rendered, "Service")
    service = services["phaser-frontend"]["spec"]
    assert service["ports"][0]["targetPort"] == container["ports"][0]["name"]
    labels = deployments["phaser-frontend"]["spec"]["template"]["metadata"][
        "labels"
    ]
    assert service["selector"].items() <= labels.items()
    config = _by_kind(rendered, "ConfigMap")["phaser-config"]["data"]
    for resource, worker in _containers(rendered):
        if worker["args"] == ["worker"]:
            metrics = {p["containerPort"] for p in worker["ports"]}
            assert int(config["PHASER_METRICS_PORT"]) in metrics, resource
    redis = _by_kind(rendered, "StatefulSet").get("phaser-redis")
    secret = _by_kind(rendered, "Secret")["phaser-secrets"]["stringData"]
    if redis is not None:
        # In-cluster Redis: the URL names its Service and port, with AOF.
        assert "phaser-redis:6379" in secret["PHASER_REDIS_URL"]
        args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--appendonly") + 1] == "yes"
    else:
        assert "phaser-redis" not in secret["PHASER_REDIS_URL"]


def test_environment_names_are_settings(
    rendered: list[dict[str, Any]],
) -> None:
    known = {f"PHASER_{name.upper()}" for name in Settings.model_fields}
    config = _by_kind(rendered, "ConfigMap")["phaser-config"]["data"]
    secret = _by_kind(rendered, "Secret")["phaser-secrets"]["stringData"]
    names = set(config) | {k for k in secret if k.startswith("PHASER_")}
    for _, container in _containers(rendered):
        names |= {e["name"] for e in container.get("env", [])}
    phaser_names = {n for n in names if n.startswith("PHASER_")}
    assert phaser_names <= known, phaser_names - known
    # The ConfigMap's values are valid settings as they stand.
    env = {k: v for k, v in config.items() if k.startswith("PHASER_")}
    env["PHASER_REDIS_URL"] = secret["PHASER_REDIS_URL"]
    settings = Settings(
        **{k.removeprefix("PHASER_").lower(): v for k, v in env.items()}
    )
    assert settings.users_file == Path(config["PHASER_USERS_FILE"])


def test_grace_periods_cover_the_workers(
    rendered: list[dict[str, Any]],
) -> None:
    config = _by_kind(rendered, "ConfigMap")["phaser-config"]["data"]
    grace = int(config["PHASER_WORKER_GRACE_PERIOD"])
    for resource, container in _containers(rendered):
        if container["args"] == ["worker"]:
            pod = resource["spec"]["template"]["spec"]
            assert pod["terminationGracePeriodSeconds"] > grace, resource


def test_every_workload_has_resources_and_a_budget(
    rendered: list[dict[str, Any]],
) -> None:
    budgets = _by_kind(rendered, "PodDisruptionBudget")
    for resource, container in _containers(rendered):
        assert container["resources"]["requests"], resource
        assert container["resources"]["limits"]["memory"], resource
        if resource["kind"] == "Deployment":
            assert resource["metadata"]["name"] in budgets
    hpas = _by_kind(rendered, "HorizontalPodAutoscaler")
    target = hpas["phaser-frontend"]["spec"]["scaleTargetRef"]
    assert target["name"] in _by_kind(rendered, "Deployment")


def test_heavy_pool_consumes_the_queue_its_task_is_routed_to() -> None:
    resources = _render("production")
    config = _by_kind(resources, "ConfigMap")["phaser-config"]["data"]
    routes = dict(
        pair.split("=") for pair in config["PHASER_TASK_QUEUES"].split(",")
    )
    heavy = _by_kind(resources, "Deployment")["phaser-worker-heavy"]
    env = {
        e["name"]: e.get("value")
        for e in heavy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PHASER_QUEUE_NAME"] == routes["cone"]
    assert "StatefulSet" not in {r["kind"] for r in resources}


def test_production_keeps_results_in_a_bucket_not_a_shared_volume() -> None:
    resources = _render("production")
    assert "PersistentVolumeClaim" not in {r["kind"] for r in resources}
    config = _by_kind(resources, "ConfigMap")["phaser-config"]["data"]
    assert config["PHASER_RESULTS_URL"].startswith("s3://")
    for resource, container in _containers(resources):
        volumes = resource["spec"]["template"]["spec"]["volumes"]
        assert all("persistentVolumeClaim" not in v for v in volumes)
        # Every pod gets the bucket's credentials from the Secret.
        names = {e["name"] for e in container.get("env", [])}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names
    # The settings as a pod sees them open an object store.
    env = {k: v for k, v in config.items() if k.startswith("PHASER_")}
    settings = Settings(
        **{k.removeprefix("PHASER_").lower(): v for k, v in env.items()}
    )
    assert isinstance(result_store(settings), ObjectResultStore)


def test_readiness_reloads_scripts_redis_has_lost(
    metered_stack: tuple[Stack, str],
) -> None:
    stack, _ = metered_stack
    redis = Redis.from_url(stack.redis_url)
    try:
        redis.script_flush()  # as after a restart that kept no scripts
        answer = httpx.get(f"{stack.url}/ready", timeout=5)
        assert answer.status_code == 200, answer.text
        for name in ("create", "transition", "delete", "lease"):
            text = script_text(f"{name}.lua")
            sha = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324
            assert redis.script_exists(sha) == [True], name
    finally:
        redis.close()
