from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.verify import verify


class Command(BaseCommand):
    help = (
        "Re-derive the ledger from its stored bytes: sequence, bodies, chain, Merkle roots, tree "
        "nodes and every checkpoint signature. Exits 0 when intact, 1 with the first damage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif report.intact:
            self.stdout.write(
                self.style.SUCCESS(
                    f"intact: {report.size} events, {report.checkpoints} checkpoints verified "
                    f"(last at size {report.last_checkpoint})"
                )
            )
        else:
            self.stdout.write(self.style.ERROR(f"DAMAGED from event {report.first_bad_seq}"))
            for damage in report.damage:
                self.stdout.write(f"  {damage}")
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if not report.intact:
            sys.exit(1)
