"""The key service: OpenBao/Vault Transit in production, a local keyring in the embedded default.

This module is the only code that talks to the key backend. Callers get the service from
:func:`key_service` and never construct a backend themselves.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
from pathlib import Path
from typing import Any, Protocol

import hvac
from django.conf import settings

KEYRING_FORMAT = "caspix-keyring/1"


class KeyServiceError(Exception):
    """The key service cannot be reached or refused the operation."""


class KeyService(Protocol):
    name: str

    def health(self) -> None:
        """Raise :class:`KeyServiceError` unless the backend answers and is usable."""


class LocalKeyring:
    """Keys held in a JSON file readable only by its owner (embedded default and tests)."""

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            self._create()
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyServiceError(f"the local keyring cannot be read: {type(exc).__name__}") from None
        if data.get("format") != KEYRING_FORMAT:
            raise KeyServiceError("the local keyring has an unknown format")
        return data

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": KEYRING_FORMAT, "installation": secrets.token_hex(8), "keys": {}}
        # O_EXCL: two processes starting at once never overwrite each other's keyring.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)

    def health(self) -> None:
        self._load()


class TransitService:
    """OpenBao/Vault Transit through hvac, over TLS, authenticated by token or AppRole."""

    name = "transit"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.mount: str = config["MOUNT"]

    @functools.cached_property
    def client(self) -> hvac.Client:
        verify: bool | str = self.config["CACERT"] or True
        client = hvac.Client(
            url=self.config["ADDR"],
            token=self.config["TOKEN"],
            verify=verify,
            timeout=self.config["TIMEOUT"],
            namespace=self.config["NAMESPACE"],
        )
        if not self.config["TOKEN"]:
            client.auth.approle.login(role_id=self.config["ROLE_ID"], secret_id=self.config["SECRET_ID"])
        return client

    def health(self) -> None:
        try:
            status = self.client.sys.read_health_status(method="GET")
            state = status if isinstance(status, dict) else status.json()
            if not state.get("initialized") or state.get("sealed"):
                raise KeyServiceError("the key service is not initialised or is sealed")
            if not self.client.is_authenticated():
                raise KeyServiceError("the key service refused Caspix's credentials")
        except KeyServiceError:
            raise
        except Exception as exc:
            raise KeyServiceError(f"the key service cannot be reached: {type(exc).__name__}") from None


@functools.cache
def key_service() -> KeyService:
    if settings.KEY_BACKEND == "transit":
        return TransitService(settings.VAULT)
    return LocalKeyring(settings.KEYRING_FILE)
