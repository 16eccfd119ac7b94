from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from audit.ledger import published_keys


class Command(BaseCommand):
    help = "Print the ledger's public keys (every version) and C2SP verifier keys, as JSON."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(published_keys(), indent=2))
