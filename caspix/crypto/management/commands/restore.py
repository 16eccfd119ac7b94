"""``manage.py restore MANIFEST``: verify a backup, then restore it into an empty database.

Nothing touches the target before the whole backup has verified (manifest HMAC, file SHA-256,
every chunk, the decrypted SHA-256); a failure is an integrity incident. ``--verify-only`` stops
there. The target is the settings' database unless ``--database-url`` names another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, transaction

from caspix.crypto import events
from caspix.crypto.backup import BackupError, VerificationError, restore_backup, verify_backup


class Command(BaseCommand):
    help = "Verify an encrypted backup and restore it into an empty PostgreSQL database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest", help="the backup's .manifest.json")
        parser.add_argument("--database-url", help="the empty target, postgres://…; default: the settings' database")
        parser.add_argument("--verify-only", action="store_true", help="verify the backup and touch no database")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["verify_only"]:
                manifest = verify_backup(options["manifest"])
                self.stdout.write(
                    f"Verified backup {manifest.backup_id} of {manifest.database} ({manifest.created}): "
                    f"{manifest.chunks} chunks, {manifest.plaintext_bytes / 1e6:.1f} MB"
                )
                return
            database = dj_database_url.parse(options["database_url"]) if options["database_url"] else None
            report = restore_backup(options["manifest"], database)
        except VerificationError as exc:
            self._record("BACKUP_REFUSED", Path(options["manifest"]).name, reason=str(exc)[:500])
            raise CommandError(str(exc)) from exc
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self._record("BACKUP_RESTORED", report.manifest.backup_id, database=report.database)
        manifest = report.manifest
        megabytes = manifest.plaintext_bytes / 1e6
        self.stdout.write(
            f"Verified backup {manifest.backup_id} of {manifest.database} ({manifest.created}) "
            f"in {report.verify_seconds:.1f} s"
        )
        rows = sum(report.row_counts.values())
        self.stdout.write(
            f"Restored into {report.database}: {len(report.row_counts)} tables, {rows} rows, "
            f"counts match the manifest ({megabytes:.1f} MB in {report.restore_seconds:.1f} s, "
            f"{megabytes / max(report.restore_seconds, 1e-6):.1f} MB/s)"
        )

    def _record(self, kind: str, subject: str, **details: Any) -> None:
        """Record the outcome in the ledger of the settings' database (after a restore into it,
        the restored ledger), or say plainly that it could not be."""
        try:
            with transaction.atomic():
                events.emit(kind, subject, **details)
        except DatabaseError as exc:
            self.stderr.write(f"warning: the ledger could not record {kind}: {type(exc).__name__}")
