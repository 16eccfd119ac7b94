"""``manage.py backup DESTINATION``: an encrypted, verifiable backup of the database.

DESTINATION is a directory (the files get a timestamped name, or ``--name``) or a path prefix
(``/backups/nightly`` writes ``/backups/nightly.caspix-backup`` and its manifest). The format is
described in :mod:`caspix.crypto.backup`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from caspix.crypto import events
from caspix.crypto.backup import BackupError, write_backup


class Command(BaseCommand):
    help = "Back up the database: pg_dump, encrypted with a fresh backup key, plus an authenticated manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", help="a directory, or a path prefix for the two files")
        parser.add_argument("--name", help="file name (without suffix) when DESTINATION is a directory")

    def handle(self, *args: Any, **options: Any) -> None:
        destination = Path(options["destination"])
        if destination.is_dir():
            out_dir, name = destination, options["name"]
        elif options["name"]:
            raise CommandError(f"--name needs DESTINATION to be a directory; {destination} is not one")
        else:
            out_dir, name = destination.parent, destination.name
        started = time.monotonic()
        try:
            manifest = write_backup(out_dir, name)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        with transaction.atomic():
            events.emit(
                "BACKUP_WRITTEN",
                manifest.backup_id,
                file=manifest.file,
                sha256_encrypted=manifest.sha256_encrypted,
                encrypted_bytes=manifest.encrypted_bytes,
                rows=manifest.total_rows,
            )
        seconds = max(time.monotonic() - started, 1e-6)
        self.stdout.write(
            f"Backed up {manifest.database}: {len(manifest.row_counts)} tables, {manifest.total_rows} rows "
            f"(backup {manifest.backup_id})"
        )
        self.stdout.write(
            f"  dump {manifest.plaintext_bytes / 1e6:.1f} MB, encrypted {manifest.encrypted_bytes / 1e6:.1f} MB "
            f"in {manifest.chunks} chunks, {seconds:.1f} s ({manifest.plaintext_bytes / 1e6 / seconds:.1f} MB/s)"
        )
        self.stdout.write(f"  {manifest.backup_path}")
        self.stdout.write(f"  {manifest.path}")
