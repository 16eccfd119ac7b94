"""Gunicorn settings for the Caspix web process.

Read by gunicorn at start-up (the image's CMD, docker-compose.yml, ``make demo``): plain Python that
imports nothing from Django. What differs between deployments comes from the environment:

* ``PORT`` (default 8000) and ``WEB_CONCURRENCY`` (default 2 workers);
* ``FORWARDED_ALLOW_IPS``: the proxy addresses trusted to set ``X-Forwarded-Proto``; only nginx,
  never a client (default ``127.0.0.1``; docker-compose.yml names nginx's fixed address);
* ``PROMETHEUS_MULTIPROC_DIR``: when set, the workers share metrics through files there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class _Worker(Protocol):
    pid: int


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not a whole number") from None


# The container's own interface; who may reach it is decided by the compose networks.
bind = f"0.0.0.0:{_int_env('PORT', 8000)}"
workers = _int_env("WEB_CONCURRENCY", 2)

# Worker heartbeat files: /dev/shm is memory-backed and writable under a read-only root filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"  # noqa: S108

# Only these addresses may tell gunicorn the request came over HTTPS (X-Forwarded-Proto).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# nginx keeps the access log (without query strings); gunicorn logs errors to stderr only.
accesslog = None
errorlog = "-"

# Request limits, also enforced by nginx in front.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

timeout = 60
graceful_timeout = 30
keepalive = 5

# Recycle workers now and then, spread out so that they do not all restart at once.
max_requests = 2000
max_requests_jitter = 200

# gunicorn 25.1+ opens a control socket under $HOME, which does not exist (nor is writable) in the
# image; nothing here controls gunicorn at run time. Older versions ignore the unknown name.
control_socket_disable = True


def on_starting(server: object) -> None:
    """Create the Prometheus multiprocess directory, empty of a previous run's files."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server: object, worker: _Worker) -> None:
    """Drop a dead worker's live gauges from the shared Prometheus metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
