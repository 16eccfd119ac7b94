from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from caspix.crypto import rotation
from caspix.crypto.envelope import cache
from caspix.crypto.keys import KeyServiceError
from caspix.crypto.management.commands._progress import progress_bar
from caspix.crypto.models import Purpose


class Command(BaseCommand):
    help = (
        "Recompute blind indexes under the newest index key, in batches (resumable). --new-key "
        "first makes a new index key; --retire then retires the older ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--new-key", action="store_true", help="rotate the blind-index key first")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--retire", action="store_true", help="retire older index keys once nothing uses them")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            if options["new_key"]:
                self.stdout.write(f"new index key {rotation.new_index_key()}")
            total = rotation.pending_reindex(cache.active(Purpose.INDEX))
            with progress_bar(total, "reindex rows", self.stderr) as bar:
                done = rotation.reindex(batch_size=options["batch_size"], progress=bar.update)
            self.stdout.write(f"{done} rows re-indexed under index key {cache.active(Purpose.INDEX)}")
            if options["retire"]:
                retired = rotation.retire_index_keys()
                self.stdout.write(f"{retired} older index keys retired")
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        except KeyServiceError as exc:
            raise CommandError(f"reindex stopped, run it again to resume: {exc}") from None
