"""Scratch PostgreSQL databases for benchmarks, migrated, and a child process to measure in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from bench.figures import Figure
from bench.server import ROOT

SERVER = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """An empty database with a unique name, dropped on exit; yields its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(database: str, **extra: str) -> dict[str, str]:
    """The test settings on ``database`` (plus ``extra`` variables), as a child process needs them."""
    return {
        **os.environ,
        "CASPIX_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> None:
    command = [sys.executable, "manage.py", *args]
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=600, stdout=subprocess.DEVNULL)


def measure_in_child(env: dict[str, str], function: str, timeout: int = 1800) -> list[Figure]:
    """Run ``bench.<module>:<function>`` in a fresh process; it prints one Figure per JSON line."""
    module, name = function.rsplit(".", 1)
    command = [sys.executable, "-c", f"import django; django.setup(); from {module} import {name}; {name}()"]
    output = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    if output.returncode:
        raise RuntimeError(f"{function} failed: {output.stderr[-3000:]}")
    for line in output.stderr.splitlines():
        if line.startswith("  round "):  # each round of a paired figure, for the record
            print(line, file=sys.stderr)
    return [Figure(**json.loads(line)) for line in output.stdout.splitlines() if line.startswith("{")]
