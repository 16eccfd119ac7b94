"""deploy/docker-compose.yml: non-root, read-only, segmented, and no secret in the file."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APP_SERVICES = ("web", "worker", "beat", "migrate")
HARDENED_SERVICES = ("web", "worker", "beat", "migrate", "nginx")
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|PASSPHRASE|CREDENTIAL")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s@:]*:[^/\s@]+@", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def networks_of(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks", [])
    return set(networks) if isinstance(networks, list) else set(networks.keys())


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {key: value for key, _, value in pairs}
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def secrets_of(service: dict[str, Any]) -> set[str]:
    return {item if isinstance(item, str) else item["source"] for item in service.get("secrets", [])}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def test_it_defines_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"postgres", "redis", "openbao", "migrate", "web", "worker", "beat", "nginx"}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_it_runs_the_app_image_as_uid_10001(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert service["image"] == "caspix:latest"
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert str(service["user"]) == "10001:10001"


@pytest.mark.parametrize("name", HARDENED_SERVICES)
def test_it_hardens_the_app_and_proxy_containers(services: dict[str, dict[str, Any]], name: str) -> None:
    service = services[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "cap_add" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    assert "/tmp" in service["tmpfs"]


def test_it_gives_no_service_host_level_access(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert not service.get("privileged", False), name
        for namespace in ("network_mode", "pid", "ipc", "userns_mode", "uts"):
            assert service.get(namespace) != "host", (name, namespace)
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        for volume in service.get("volumes", []):
            source = volume if isinstance(volume, str) else volume.get("source", "")
            assert "docker.sock" not in source, name
        assert not set(service.get("cap_add", [])) & {"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "ALL"}, name


def test_it_publishes_ports_from_nginx_only(services: dict[str, dict[str, Any]]) -> None:
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == {"nginx"}
    assert sorted(services["nginx"]["ports"]) == ["443:8443", "80:8080"]
    assert all("expose" not in service for service in services.values())


def test_it_makes_the_data_and_keys_networks_internal(compose: dict[str, Any]) -> None:
    networks = compose["networks"]
    assert set(networks) == {"frontend", "data", "keys"}
    assert networks["data"]["internal"] is True
    assert networks["keys"]["internal"] is True


def test_it_keeps_postgres_and_redis_on_internal_networks_only(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name in ("postgres", "redis"):
        networks = networks_of(services[name])
        assert networks == {"data"}, name
        assert all(compose["networks"][network].get("internal") is True for network in networks), name


def test_it_keeps_nginx_off_the_data_and_keys_networks(services: dict[str, dict[str, Any]]) -> None:
    assert networks_of(services["nginx"]) == {"frontend"}


def test_it_lets_only_web_and_worker_reach_openbao(services: dict[str, dict[str, Any]]) -> None:
    assert networks_of(services["openbao"]) == {"keys"}
    on_keys = {name for name, service in services.items() if "keys" in networks_of(service)}
    assert on_keys == {"openbao", "web", "worker"}
    on_frontend = {name for name, service in services.items() if "frontend" in networks_of(service)}
    assert on_frontend == {"nginx", "web"}


def test_it_trusts_forwarded_headers_from_nginx_only(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    nginx_address = services["nginx"]["networks"]["frontend"]["ipv4_address"]
    assert environment_of(services["web"])["FORWARDED_ALLOW_IPS"] == nginx_address
    subnet = compose["networks"]["frontend"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)


def test_it_writes_no_secret_in_any_environment(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment_of(service).items():
            assert not URL_WITH_PASSWORD.search(value), (name, key)
            if not SECRET_WORDS.search(key):
                continue
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, key)
            else:
                assert value == "" or value.startswith("/run/secrets/"), (name, key)


def test_it_writes_no_credential_in_any_url(compose: dict[str, Any]) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    assert not URL_WITH_PASSWORD.search(text)
    assert "--requirepass" in text
    assert re.search(r"--requirepass\s+\\?\"\$\$\(cat /run/secrets/redis_password\)", text)


def test_it_reads_every_secret_from_a_file_under_secrets(compose: dict[str, Any]) -> None:
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, name
        assert secret["file"] == f"./secrets/{name}"


def test_it_mounts_every_secret_a_file_variable_names(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose["secrets"])
    for name, service in services.items():
        mounted = secrets_of(service)
        assert mounted <= declared, name
        for key, value in environment_of(service).items():
            if value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in mounted, (name, key)


def test_it_mounts_in_each_app_service_the_secrets_env_example_names(services: dict[str, dict[str, Any]]) -> None:
    # The env_file applies to every app service: each *_FILE it sets must exist in each of them.
    lines = (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    paths = {value for key, value in pairs if key.endswith("_FILE") and value}
    assert paths
    for name in APP_SERVICES:
        assert services[name]["env_file"] == ".env"
        for path in paths:
            assert path.removeprefix("/run/secrets/") in secrets_of(services[name]), (name, path)


def test_it_uses_no_secret_file_that_is_never_mounted(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    used = set().union(*(secrets_of(service) for service in services.values()))
    assert used == set(compose["secrets"])


def test_it_runs_the_expected_commands(services: dict[str, dict[str, Any]]) -> None:
    assert command_of(services["web"]) == ["gunicorn", "--config", "deploy/gunicorn.conf.py", "caspix.wsgi:application"]
    assert command_of(services["migrate"]) == ["python", "manage.py", "migrate", "--noinput"]
    assert command_of(services["worker"])[:4] == ["celery", "-A", "caspix", "worker"]
    beat = command_of(services["beat"])
    assert beat[:4] == ["celery", "-A", "caspix", "beat"]
    assert beat[beat.index("--schedule") + 1].startswith("/tmp/")


def test_it_migrates_before_the_app_starts(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_it_gives_each_stateful_service_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services["web"]["healthcheck"]["test"] == ["CMD", "python", "/app/deploy/healthcheck.py"]


def test_it_gives_postgres_its_password_from_a_secret(services: dict[str, dict[str, Any]]) -> None:
    environment = environment_of(services["postgres"])
    assert environment["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in environment


def test_it_runs_openbao_as_a_tls_server_not_in_dev_mode(services: dict[str, dict[str, Any]]) -> None:
    openbao = services["openbao"]
    assert command_of(openbao) == ["server"]
    assert not any("DEV" in key for key in environment_of(openbao))
    assert openbao["user"] == "openbao"
    assert "./openbao/config.hcl:/openbao/config/config.hcl:ro" in openbao["volumes"]
    assert {"openbao_tls_cert", "openbao_tls_key"} <= secrets_of(openbao)
    config = (DEPLOY / "openbao" / "config.hcl").read_text(encoding="utf-8")
    settings = [re.sub(r"\s+", " ", line.split("#", 1)[0]).strip() for line in config.splitlines()]
    assert 'tls_cert_file = "/run/secrets/openbao_tls_cert"' in settings
    assert 'tls_key_file = "/run/secrets/openbao_tls_key"' in settings
    assert "ui = false" in settings
    assert 'storage "raft" {' in settings
    assert 'path = "/openbao/file"' in settings
    assert not any(line.startswith(("tls_disable", "disable_mlock")) for line in settings)


def test_it_keeps_openbao_memory_out_of_swap(services: dict[str, dict[str, Any]]) -> None:
    # OpenBao has no mlock: the cgroup forbids swapping instead.
    openbao = services["openbao"]
    assert openbao["mem_limit"] == openbao["memswap_limit"]
    assert "cap_add" not in openbao


def test_it_points_every_bind_mount_at_a_file_in_deploy(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), (name, source)
                assert volume.endswith(":ro"), (name, volume)
