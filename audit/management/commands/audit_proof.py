from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import proofs
from audit.models import Checkpoint


class Command(BaseCommand):
    help = (
        "Print, as JSON, the inclusion proof of an event (--seq N, against the latest checkpoint "
        "or --size S) or the consistency proof between two checkpoints (--from A --to B)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seq", type=int, help="the event's sequence number")
        parser.add_argument("--size", type=int, help="the checkpoint to prove against (default: the latest)")
        parser.add_argument("--from", dest="old", type=int, help="consistency: the older checkpoint's size")
        parser.add_argument("--to", dest="new", type=int, help="consistency: the newer checkpoint's size")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["seq"] is not None:
                checkpoint = None
                if options["size"] is not None:
                    checkpoint = Checkpoint.objects.filter(size=options["size"]).first()
                    if checkpoint is None:
                        raise CommandError(f"there is no checkpoint at size {options['size']}")
                proof = proofs.inclusion(options["seq"], checkpoint)
            elif options["old"] is not None and options["new"] is not None:
                proof = proofs.consistency(options["old"], options["new"])
            else:
                raise CommandError("give --seq N, or --from A --to B")
        except proofs.ProofUnavailableError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(proof, indent=2))
