from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from caspix.crypto.envelope import cache
from caspix.crypto.keys import KeyName, KeyServiceError, key_service
from caspix.crypto.models import Purpose


class Command(BaseCommand):
    help = "Create the named keys in the key service and the first data keys (idempotent; run at deploy)."

    def handle(self, *args: Any, **options: Any) -> None:
        service = key_service()
        try:
            service.ensure_keys()
            for purpose in (Purpose.DATA, Purpose.INDEX):
                cache.active(purpose)
            for name in KeyName:
                info = service.info(name)
                versions = f"latest v{info.latest_version}, decrypts from v{info.min_decryption_version}"
                self.stdout.write(f"{name}: {versions}")
        except KeyServiceError as exc:
            raise CommandError(f"the key service ({service.name}) refused: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"keys ready on the {service.name} backend"))
