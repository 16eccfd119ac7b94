"""Make sure the services `make test` (or `make bench`) needs are answering.

PostgreSQL and Redis are started where they are installed but stopped; anything else missing is
named with the fix, and the run stops before any test starts.
"""

from __future__ import annotations

import argparse
import ctypes.util
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/caspix"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CHROMIUM = os.environ.get("CASPIX_CHROMIUM", "/usr/bin/chromium")


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(host, port):
            return True
        time.sleep(0.5)
    return False


def start_postgresql() -> bool:
    if not shutil.which("pg_ctlcluster"):
        return False
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        return False
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    return subprocess.run(cmd, check=False, capture_output=True).returncode == 0


def start_redis(port: int) -> bool:
    if not shutil.which("redis-server"):
        return False
    cmd = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    return subprocess.run([*cmd, "--appendonly", "no"], check=False, capture_output=True).returncode == 0


def check_service(name: str, url: str, variable: str, start: Callable[[], bool]) -> str | None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or {"postgres": 5432, "redis": 6379}[name.lower()]
    if answers(host, port):
        return None
    if host in LOCAL_HOSTS:
        print(f"preflight: {name} is not answering on {host}:{port}; starting the local one")
        if start() and wait_for(host, port):
            return None
    return (
        f"{name} is not answering on {host}:{port}. Start it, or point {variable} at one "
        f"(for example {variable}={DEFAULT_DATABASE_URL if name == 'PostgreSQL' else DEFAULT_BROKER_URL})."
    )


def ensure_database(url: str) -> None:
    """Create the (empty) development database so migration checks have one to look at."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "caspix"
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bench", action="store_true", help="also check what the benchmarks need")
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    broker_url = os.environ.get("CELERY_BROKER_URL", DEFAULT_BROKER_URL)
    problems = [
        check_service("PostgreSQL", database_url, "DATABASE_URL", start_postgresql),
        check_service("Redis", broker_url, "CELERY_BROKER_URL", lambda: start_redis(urlsplit(broker_url).port or 6379)),
    ]
    if not os.access(CHROMIUM, os.X_OK):
        problems.append(
            f"Chromium is not installed at {CHROMIUM} (browser tests drive it; no browser is downloaded). "
            "Install Debian's package: apt-get install chromium, or set CASPIX_CHROMIUM to its path."
        )
    if not (shutil.which("node") and shutil.which("npm")):
        problems.append(
            "Node.js and npm are not installed (the OIDC tests run a real provider, npm's oidc-provider): "
            "apt-get install nodejs npm."
        )
    if ctypes.util.find_library("magic") is None:
        problems.append(
            "libmagic is not installed (evidence files are sniffed by their content): apt-get install libmagic1."
        )
    if args.bench and not shutil.which("wrk"):
        problems.append("wrk, the load generator of the benchmarks, is not installed: apt-get install wrk.")
    found = [p for p in problems if p]
    if found:
        for problem in found:
            print(f"preflight: {problem}", file=sys.stderr)
        return 1
    ensure_database(database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
