"""Encrypted backup and verified restore against bare pg_dump and pg_restore, on one scratch database.

A scratch database of about 200 MB (a table of account movements with random-ish text and
numbers, and its primary key) is filled with ``generate_series``. Then best of :data:`ROUNDS`,
the order alternating and each run after a ``CHECKPOINT`` (the benchmark runs as a superuser of
the test server):

* ``backup_throughput``: ``write_backup`` (row counts, pg_dump, encryption, hashing, fsync)
  against ``pg_dump --format=custom`` to /dev/null;
* ``restore_throughput``: ``restore_backup`` (full verification, then pg_restore of the
  decrypted stream, then the row counts) against ``pg_restore`` of a plain custom dump file with
  the same options, each into an empty database.

Both are MB of database size (``pg_database_size``) per second. Every scratch database is
dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import django
import psycopg
from psycopg import sql

from bench.figures import Figure

ROUNDS = 3
ROWS = 1_100_000  # about 200 MB with the primary key
RESTORE_OPTIONS = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]

FILL = """
CREATE TABLE movement (
    id bigint PRIMARY KEY,
    account text NOT NULL,
    counterparty text NOT NULL,
    amount numeric(14, 2) NOT NULL,
    currency char(3) NOT NULL,
    booked_at timestamptz NOT NULL,
    reference text NOT NULL,
    narrative text NOT NULL
);
INSERT INTO movement
SELECT g,
       'GB' || lpad((g % 50000)::text, 8, '0'),
       'DE' || lpad((hashtext(g::text) & 65535)::text, 10, '0'),
       round((random() * 20000 - 5000)::numeric, 2),
       (ARRAY['EUR', 'GBP', 'USD', 'CHF'])[1 + g % 4],
       timestamptz '2026-01-01' + g * interval '23 seconds',
       md5(g::text || random()::text),
       (ARRAY['card payment', 'transfer', 'cash withdrawal', 'salary', 'refund', 'direct debit'])[1 + g % 6]
         || ' ' || substr(md5(random()::text), 1, 12 + g % 20)
FROM generate_series(1, {rows}) AS g;
ANALYZE movement;
"""


def run() -> list[Figure]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caspix.settings")
    django.setup()
    from django.conf import settings

    from caspix.crypto.backup import restore_backup, write_backup

    base: dict[str, Any] = dict(settings.DATABASES["default"])
    scratch = Scratch(base)
    try:
        source = scratch.create()
        with scratch.connect(source) as connection:
            connection.execute(sql.SQL(FILL).format(rows=sql.Literal(ROWS)))
            row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
        megabytes = (row[0] if row else 0) / 1e6
        with tempfile.TemporaryDirectory(prefix="caspix-bench-") as directory:
            plain = Path(directory) / "plain.dump"
            dump_seconds: list[float] = []
            backup_seconds: list[float] = []
            pg_restore_seconds: list[float] = []
            restore_seconds: list[float] = []
            for round_ in range(ROUNDS):
                out = Path(directory) / f"round{round_}"
                out.mkdir()
                dump = partial(scratch.tool, ["pg_dump", "--format=custom"], source)
                encrypted = partial(write_backup, out, "bench", database=scratch.database(source))
                for work, seconds in alternate(round_, (dump, dump_seconds), (encrypted, backup_seconds)):
                    seconds.append(scratch.timed(work))

                scratch.tool(["pg_dump", "--format=custom", f"--file={plain}"], source)
                ceiling = partial(scratch.tool, ["pg_restore", *RESTORE_OPTIONS, str(plain)], scratch.create())
                verified = partial(restore_backup, out / "bench.manifest.json", scratch.database(scratch.create()))
                for work, seconds in alternate(round_, (ceiling, pg_restore_seconds), (verified, restore_seconds)):
                    seconds.append(scratch.timed(work))
                scratch.drop_targets()
    finally:
        scratch.drop_all()
    return [
        Figure.throughput("backup_throughput", megabytes / min(backup_seconds), "MB/s", megabytes / min(dump_seconds)),
        Figure.throughput(
            "restore_throughput", megabytes / min(restore_seconds), "MB/s", megabytes / min(pg_restore_seconds)
        ),
    ]


Measurement = tuple[Callable[[], object], list[float]]


def alternate(round_: int, first: Measurement, second: Measurement) -> list[Measurement]:
    """The ceiling first in even rounds, the measured code first in odd ones."""
    return [first, second] if round_ % 2 == 0 else [second, first]


class Scratch:
    """Scratch databases on the configured PostgreSQL server, all dropped by :meth:`drop_all`."""

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self.created: list[str] = []

    def database(self, name: str) -> dict[str, Any]:
        return {**self.base, "NAME": name}

    def connect(self, name: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            dbname=name,
            host=self.base["HOST"] or None,
            port=self.base["PORT"] or None,
            user=self.base["USER"] or None,
            password=self.base["PASSWORD"] or None,
            autocommit=True,
        )

    def timed(self, work: Callable[[], object]) -> float:
        """Seconds ``work`` takes, started after a checkpoint so no earlier write is flushed during it."""
        with self.connect("postgres") as admin:
            admin.execute("CHECKPOINT")
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    def create(self) -> str:
        name = f"caspix_bench_{secrets.token_hex(6)}"
        with self.connect("postgres") as admin:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        self.created.append(name)
        return name

    def tool(self, command: list[str], name: str) -> None:
        """Run a PostgreSQL client tool against database ``name``, output to /dev/null."""
        environment = {**os.environ, "PGPASSWORD": self.base["PASSWORD"] or ""}
        target = [f"--dbname={name}"]
        for option, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
            if self.base[key]:
                target.append(f"{option}={self.base[key]}")
        subprocess.run([*command, *target], check=True, stdout=subprocess.DEVNULL, env=environment)

    def drop_targets(self) -> None:
        self._drop(self.created[1:])
        del self.created[1:]

    def drop_all(self) -> None:
        self._drop(self.created)
        self.created.clear()

    def _drop(self, names: list[str]) -> None:
        with self.connect("postgres") as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
