"""Fault: PostgreSQL restarts under a concurrent append load; nothing that reported success is lost.

The test runs its own PostgreSQL cluster (initdb from the server's binaries, on a free loopback
port), so restarting it disturbs no other test. Writer processes record events through
``record()`` while the integrator runs; the server is restarted twice mid-load. Afterwards every
action whose commit returned has its event, the sequence has no gap and the ledger verifies.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
ACTIONS = 150


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are missing: install Debian's postgresql")
    return Path(found[-1]).parent


def _as_postgres(command: list[str]) -> list[str]:
    """initdb refuses to run as root: run the cluster as the postgres system user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, Path]]:
    """A private PostgreSQL on a free port; yields (URL of its database, data directory)."""
    binaries = _binaries()
    # Not under pytest's temporary directory: its root-only parents would keep the postgres user out.
    base = Path(tempfile.mkdtemp(prefix="caspix-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run(
        _as_postgres([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=on"
    start = _as_postgres([*ctl, "-o", options, "-l", str(base / "log"), "start"])
    subprocess.run(start, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)
    try:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE ledger"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"postgres://postgres@127.0.0.1:{port}/ledger", data
    finally:
        subprocess.run(_as_postgres([*ctl, "-m", "immediate", "stop"]), check=False, timeout=90)
        shutil.rmtree(base, ignore_errors=True)


def _env(url: str, keyring: Path) -> dict[str, str]:
    return {**os.environ, "CASPIX_ENV": "test", "DATABASE_URL": url, "CASPIX_KEYRING_FILE": str(keyring)}


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _wait_for_writes(url: str, timeout: float = 120) -> None:
    """Return once the writers have committed their first events, so the restarts land mid-load."""
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
            row = connection.execute(
                "SELECT (SELECT count(*) FROM audit_pending) + (SELECT count(*) FROM audit_event)"
            ).fetchone()
        if row is not None and row[0] >= WRITERS:
            return
        time.sleep(0.2)
    raise AssertionError("the writers wrote nothing in time")


def test_it_keeps_every_reported_event_through_postgresql_restarts(cluster: tuple[str, Path], tmp_path: Path) -> None:
    url, data = cluster
    env = _env(url, tmp_path / "keyring.json")
    migrated = _manage(env, "migrate", "--verbosity=0")
    assert migrated.returncode == 0, migrated.stderr
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit.fault_writer", str(n), str(ACTIONS)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for n in range(WRITERS)
    ]
    # -l: the restarted server must not inherit (and hold open) this process's pipes
    ctl = [str(_binaries() / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-m", "fast", "-l", str(data.parent / "log")]
    _wait_for_writes(url)  # on a loaded machine the writers take a while to start
    for _ in range(2):
        time.sleep(1.0)
        restart = _as_postgres([*ctl, "restart"])
        subprocess.run(restart, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    reported: set[str] = set()
    failures = 0
    for writer in writers:
        output, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0
        failures += sum(int(line.split()[1]) for line in output.splitlines() if line.startswith("failed "))
        # log lines (integration failing while the server restarts) go to stdout too
        reported.update(line for line in output.splitlines() if re.fullmatch(r"\d+-\d+", line))
    assert len(reported) == WRITERS * ACTIONS
    assert failures > 0  # the restarts did hit the writers mid-load

    check = (
        "from audit import ledger; from audit.models import Event; from audit.verify import verify;"
        "ledger.integrate_all(); ledger.seal(force=True); r = verify();"
        "print(r.intact, r.size, r.first_bad_seq);"
        "print('\\n'.join(Event.objects.values_list('object_id', flat=True)))"
    )
    result = _manage(env, "shell", "--verbosity=0", "-c", check)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("{")]
    intact, size, _ = lines[0].split()
    recorded = set(lines[1:])
    assert intact == "True"
    assert reported <= recorded  # every action that reported success has its event
    assert int(size) == len(recorded)  # gap-free sequence, one event per committed action
