from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from caspix.crypto import rotation
from caspix.crypto.keys import KeyName, KeyServiceError, key_service
from caspix.crypto.management.commands._progress import progress_bar


class Command(BaseCommand):
    help = (
        "Re-wrap every data key under the latest version of its key-encryption key, in batches "
        "(resumable: run it again after an interruption). --retire then stops older versions "
        "from decrypting."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        choices = [k.value for k in rotation.REWRAPPABLE]
        parser.add_argument("--key", choices=choices, help="only this key (default: both)")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--retire", action="store_true", help="then raise min_decryption_version to what is in use")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        keks = [KeyName(options["key"])] if options["key"] else list(rotation.REWRAPPABLE)
        try:
            for kek in keks:
                latest = key_service().info(kek).latest_version
                total = rotation.pending_rewrap(kek, latest).count()
                with progress_bar(total, f"rewrap {kek} keys", self.stderr) as bar:
                    moved = rotation.rewrap(kek, batch_size=options["batch_size"], progress=bar.update)
                self.stdout.write(f"{kek}: {moved} data keys re-wrapped under v{latest}")
                if options["retire"]:
                    retired = rotation.retire(kek)
                    self.stdout.write(
                        f"{kek}: decrypts from v{retired.after} (was v{retired.before}; latest v{retired.latest})"
                    )
        except KeyServiceError as exc:
            raise CommandError(f"rewrap stopped, run it again to resume: {exc}") from None
