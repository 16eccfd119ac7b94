"""deploy/gunicorn.conf.py: defaults, environment overrides, hooks; importable without Django."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
ENV_NAMES = ("PORT", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "PROMETHEUS_MULTIPROC_DIR")


def load() -> dict[str, Any]:
    import runpy

    return runpy.run_path(str(GUNICORN_CONF))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def settings_of(namespace: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_") and name != "annotations" and not isinstance(value, (types.ModuleType, type))
    }


def test_it_has_safe_defaults(clean_env: pytest.MonkeyPatch) -> None:
    conf = load()
    assert conf["bind"] == "0.0.0.0:8000"
    assert conf["workers"] == 2
    assert conf["forwarded_allow_ips"] == "127.0.0.1"
    assert conf["accesslog"] is None
    assert conf["errorlog"] == "-"
    assert conf["worker_tmp_dir"] in {"/dev/shm", "/tmp"}
    assert (conf["limit_request_line"], conf["limit_request_fields"]) == (8190, 100)
    assert (conf["timeout"], conf["graceful_timeout"], conf["keepalive"]) == (60, 30, 5)
    assert (conf["max_requests"], conf["max_requests_jitter"]) == (2000, 200)


def test_it_reads_the_deployment_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PORT", "9000")
    clean_env.setenv("WEB_CONCURRENCY", "5")
    clean_env.setenv("FORWARDED_ALLOW_IPS", "172.30.253.10")
    conf = load()
    assert conf["bind"] == "0.0.0.0:9000"
    assert conf["workers"] == 5
    assert conf["forwarded_allow_ips"] == "172.30.253.10"


def test_it_refuses_a_malformed_number(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WEB_CONCURRENCY", "two")
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY"):
        load()


def test_it_imports_without_django(clean_env: pytest.MonkeyPatch) -> None:
    for name in [module for module in sys.modules if module == "django" or module.startswith("django.")]:
        clean_env.delitem(sys.modules, name)
    clean_env.setitem(sys.modules, "django", None)  # any import of django now raises ImportError
    load()


def test_it_names_only_settings_gunicorn_knows(clean_env: pytest.MonkeyPatch) -> None:
    config = Config()
    settings = settings_of(load())
    unknown = set(settings) - set(config.settings)
    assert not unknown, f"gunicorn ignores unknown names silently: {sorted(unknown)}"
    for name, value in settings.items():
        config.set(name, value)  # gunicorn's own validators
    assert config.forwarded_allow_ips == ["127.0.0.1"]
    assert config.accesslog is None
    assert config.control_socket_disable is True


def test_it_prepares_the_prometheus_directory(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    clean_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    conf = load()
    conf["on_starting"](object())
    assert directory.is_dir()
    (directory / "counter_123.db").write_bytes(b"stale")
    (directory / "keep.txt").write_text("not a metrics file", encoding="utf-8")
    conf["on_starting"](object())
    assert sorted(path.name for path in directory.iterdir()) == ["keep.txt"]


def test_it_leaves_the_filesystem_alone_without_a_prometheus_directory(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.chdir(tmp_path)
    load()["on_starting"](object())
    assert list(tmp_path.iterdir()) == []


def test_it_marks_a_dead_worker_in_the_prometheus_directory(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prometheus_client import multiprocess

    dead: list[int] = []
    clean_env.setattr(multiprocess, "mark_process_dead", dead.append)
    worker = types.SimpleNamespace(pid=4242)
    conf = load()
    conf["child_exit"](object(), worker)
    assert dead == []
    clean_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    conf["child_exit"](object(), worker)
    assert dead == [4242]
