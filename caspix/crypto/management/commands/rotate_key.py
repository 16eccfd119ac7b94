from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from caspix.crypto import rotation
from caspix.crypto.keys import KeyName, KeyServiceError


class Command(BaseCommand):
    help = (
        "Add a new version of a key-encryption key. New writes use it at once; older versions keep "
        "decrypting until 'rewrap --retire'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", choices=[name.value for name in KeyName])

    def handle(self, *args: Any, **options: Any) -> None:
        name = KeyName(options["key"])
        try:
            info = rotation.rotate(name)
        except KeyServiceError as exc:
            raise CommandError(f"rotation of {name} failed: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"{name} is now at v{info.latest_version}"))
        if name in rotation.REWRAPPABLE:
            self.stdout.write("next: manage.py rewrap, then manage.py rewrap --retire")
