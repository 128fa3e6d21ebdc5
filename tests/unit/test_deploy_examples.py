"""The deployment examples in deploy/ load as they stand, with the secrets their instructions name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"


def _env_references(config: Path) -> set[str]:
    return set(re.findall(r'"env:([A-Z0-9_]+)"', config.read_text(encoding="utf-8")))


def _env_file_names(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#") and "=" in line}


@pytest.mark.parametrize("config", [DEPLOY / "production.example.toml", KUBERNETES / "channelhub.toml"], ids=str)
def test_a_production_example_loads_once_its_secrets_are_set(config: Path) -> None:
    environ = {name: f"value-of-{name.lower()}" for name in _env_references(config)}
    settings = load_settings(config, environ)
    assert {account.channel.value for account in settings.accounts} == {"messenger", "whatsapp", "viber"}
    assert settings.server.public_url.startswith("https://")


def test_a_production_example_names_the_secret_it_lacks() -> None:
    config = DEPLOY / "production.example.toml"
    environ = {name: "x" for name in _env_references(config) if name != "VIBER_AUTH_TOKEN"}
    with pytest.raises(ConfigError, match="VIBER_AUTH_TOKEN"):
        load_settings(config, environ)


def test_the_kubernetes_secret_example_lists_every_secret_the_configuration_reads() -> None:
    named = _env_file_names(KUBERNETES / "secrets.env.example")
    assert _env_references(KUBERNETES / "channelhub.toml") <= named
    assert "CHANNELHUB_DATABASE_URL" in named  # the configuration leaves the database to the Secret


def test_the_kubernetes_configuration_uses_postgresql_from_the_secret() -> None:
    config = KUBERNETES / "channelhub.toml"
    environ = dict.fromkeys(_env_references(config), "x")
    environ["CHANNELHUB_DATABASE_URL"] = "postgresql://channelhub:pw@postgres.internal/channelhub"
    settings = load_settings(config, environ)
    assert settings.database_url.startswith("postgresql")


def test_the_kustomization_lists_only_files_that_exist() -> None:
    text = (KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8")
    named = re.findall(r"^\s+- ([\w.-]+\.ya?ml)$", text, flags=re.MULTILINE)
    named += [n.strip() for group in re.findall(r"(?:files|envs): \[([^\]]+)\]", text) for n in group.split(",")]
    assert "deployment.yaml" in named
    assert "channelhub.toml" in named
    missing = [name for name in named if not (KUBERNETES / name).exists() and name != "secrets.env"]
    assert missing == []
    assert (KUBERNETES / "secrets.env.example").exists()  # secrets.env itself is made from it and never committed


def test_the_probes_point_at_the_health_routes() -> None:
    text = (KUBERNETES / "deployment.yaml").read_text(encoding="utf-8")
    assert re.search(r"readinessProbe:\s+httpGet: \{path: /readyz", text)
    assert re.search(r"livenessProbe:\s+httpGet: \{path: /healthz", text)


def test_behind_the_shipped_proxies_the_hub_trusts_them_and_they_forward_the_client() -> None:
    compose = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    [trusted] = re.findall(r"CHANNELHUB_SERVER_TRUSTED_PROXIES: ([\d.]+)", compose)
    assert re.search(rf"ipv4_address: {re.escape(trusted)}\b", compose)  # nginx's own address, nobody else's
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in nginx
    config = KUBERNETES / "channelhub.toml"
    settings = load_settings(config, dict.fromkeys(_env_references(config), "x"))
    assert settings.server.trusted_proxies  # the Ingress controller's network


def test_on_kubernetes_metrics_have_a_port_of_their_own_that_prometheus_is_told_of() -> None:
    config = KUBERNETES / "channelhub.toml"
    settings = load_settings(config, dict.fromkeys(_env_references(config), "x"))
    port = settings.metrics.port
    assert port is not None  # else /metrics answers loopback clients only
    assert port != settings.server.port
    assert settings.metrics.host == "0.0.0.0"  # noqa: S104 - Prometheus scrapes from another pod
    deployment = (KUBERNETES / "deployment.yaml").read_text(encoding="utf-8")
    assert re.search(rf"\{{name: metrics, containerPort: {port}\}}", deployment)
    assert 'prometheus.io/scrape: "true"' in deployment
    assert f'prometheus.io/port: "{port}"' in deployment
    service = (KUBERNETES / "service.yaml").read_text(encoding="utf-8")
    assert re.search(r"\{name: metrics, port: \d+, targetPort: metrics\}", service)


def test_the_compose_replicas_share_one_media_directory_the_hub_user_may_write() -> None:
    """Several replicas each keeping files in its own container would serve a file only from the one that fetched
    it, and lose it when recreated: one named volume, mounted in every replica where the media path points."""
    compose = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    [replicas] = re.findall(r"replicas: (\d+)", compose)
    assert int(replicas) > 1
    [path] = re.findall(r"CHANNELHUB_MEDIA_PATH: (\S+)", compose)
    [volume] = re.findall(rf"\b(\w+):{re.escape(path)}\]", compose)
    assert re.search(rf"^volumes:\n(?:  \w+:\n)*  {volume}:$", compose, flags=re.MULTILINE)
    # a fresh named volume takes the image's directory's owner: the hub's user must own it to write there
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"mkdir -p {re.escape(path)} && chown -R channelhub /data\b", dockerfile)
    assert path.startswith("/data/")


def test_the_kubernetes_pods_share_one_media_store() -> None:
    """A pod's /data is an emptyDir of its own: the pods must keep files in one bucket (or a shared volume)."""
    config = KUBERNETES / "channelhub.toml"
    settings = load_settings(config, dict.fromkeys(_env_references(config), "x"))
    deployment = (KUBERNETES / "deployment.yaml").read_text(encoding="utf-8")
    assert int(re.findall(r"replicas: (\d+)", deployment)[0]) > 1
    shared_volume = settings.media.path is not None and "ReadWriteMany" in deployment
    assert (settings.media.url or "").startswith("s3://") or shared_volume
