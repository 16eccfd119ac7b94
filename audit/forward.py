"""Forward the ledger to the bank's SIEM: JSON lines over syslog on TLS, or to a file.

``SIEM["TARGET"]`` names where the events go:

* ``""``: nowhere (forwarding is off, :func:`forward` returns 0);
* ``file:///absolute/path``: one JSON line per event appended to that file (created 0600 when
  missing; an existing file keeps its mode);
* ``syslog+tls://host[:port]``: one RFC 5424 message per event over TCP with TLS (RFC 5425),
  port 6514 by default, the server's certificate checked against ``SIEM["CACERT"]`` (the system's
  CAs when unset) and its name against ``host``; TLS 1.2 at least; a client certificate
  (``CLIENT_CERT``, ``CLIENT_KEY``) for mutual TLS when the receiver asks for one.

**The JSON line** of an event, compact, keys sorted, UTF-8 (``ensure_ascii=False``)::

    {"chain":"<base64>","event":<the body>,"leaf":"<base64>","seq":N}

``event`` is the event's canonical body (docs/LEDGER.md), parsed; since a body is canonical, its
text in the line is byte for byte the stored body, so the SIEM can check ``leaf`` =
SHA-256(0x00 ‖ body) and ``chain`` = SHA-256(previous chain ‖ leaf), starting from 32 zero
bytes at event 1. The line holds nothing else. It is not run through :func:`caspix.masking.mask`,
which would change the bytes and break those hashes (a Luhn-valid run of digits in an id would
become ``[card]``), and needs not be: a body never holds a protected value, since
:func:`audit.canonical.canonical` refuses decrypted values at recording time and actions name a
protected value by its blind index or a mask. No line carries a newline (JSON escapes it).

**The syslog message** (RFC 5424), one per event::

    <110>1 TIMESTAMP HOSTNAME caspix - MSGID [caspix@32473 seq="N" origin="ORIGIN"] JSON-LINE

* PRI 110: facility 13 (log audit) * 8 + severity 6 (informational);
* TIMESTAMP: the event's ``time`` (RFC 3339, UTC, microseconds), not the time of sending;
* HOSTNAME: the sending machine (``socket.gethostname()``), as RFC 5424 §6.2.4 defines it;
  several workers of one installation may send, so the ledger is named by ``origin`` instead;
* APP-NAME ``caspix``; PROCID ``-``; MSGID: the event's name (``KEY_ROTATED``);
* STRUCTURED-DATA: the event's sequence number and the ledger's origin
  (``LEDGER["ORIGIN"]``, as in its checkpoints), values escaped as RFC 5424 §6.3.3 requires.
  32473 is the private enterprise number RFC 5612 reserves for documentation; a bank may
  register its own with IANA and have its SIEM parse that instead;
* MSG: the JSON line, UTF-8 without a BOM.

Each message is framed by octet counting (RFC 5425 §4.3): ``MSG-LEN SP SYSLOG-MSG``, MSG-LEN the
message's length in octets. Receivers must accept messages as long as the largest event
(RFC 5425 requires 2048 octets, recommends 8192); rsyslog's ``MaxMessageSize`` sets it.

**Guarantees.** Events go out in ``seq`` order, ``SIEM["BATCH"]`` at a time, from the cursor
``DeliveryCursor(target="siem")`` (the last ``seq`` delivered). Each batch is one transaction
that takes a PostgreSQL advisory lock (a worker that finds it taken stops: never two forwarders
at once), reads the cursor, sends the batch, and advances the cursor only once the batch is
delivered: for a file, written and ``fsync``'d; for syslog, sent in full (``sendall``), then
TLS close_notify sent (RFC 5425 §4.4) and the receiver's close_notify, or its end of the
connection, read back: it has then read the whole batch. Under TLS 1.3 a receiver rejects a
client certificate only after the client's handshake is over, so ``sendall`` alone would count
a refused batch as delivered; the rejection arrives instead of that answer. A receiver that
neither answers nor closes within ``SIEM["TIMEOUT"]`` counts as a failure.

A failure raises :class:`ForwardError` and leaves the cursor where it was. Delivery is therefore
**at least once**: a crash between delivery and the cursor's commit sends that batch again on
the next run, so the receiver de-duplicates by (origin, ``seq``). Nothing is ever skipped: the
integrator commits sequence numbers in consecutive blocks, one integrator at a time, so a batch
read after the cursor has no gap. A file line torn by a crash is left alone and a newline
written after it, so the lines sent again stand on their own. Syslog has no application-level
acknowledgement: the receiver having read the batch is not the receiver having stored it; one
that must not lose events queues them to disk (rsyslog: a disk-assisted queue).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from audit.ledger import origin
from audit.models import DeliveryCursor, Event

CURSOR = "siem"
_LOCK_KEY = 0x6361737069787366  # "caspixsf": the SIEM forwarder's advisory lock

FACILITY = 13  # log audit
SEVERITY = 6  # informational
PRI = FACILITY * 8 + SEVERITY
APP_NAME = "caspix"
ENTERPRISE_NUMBER = 32473  # RFC 5612's example number; see the module docstring
SYSLOG_TLS_PORT = 6514  # RFC 5425
ACCEPTED_FORMS = '"" (off), file:///absolute/path or syslog+tls://host[:port]'


class ForwardError(Exception):
    """The receiver could not be reached or written to; the cursor has not moved."""


@dataclass(frozen=True)
class FileTarget:
    path: Path


@dataclass(frozen=True)
class SyslogTarget:
    host: str
    port: int


Target = FileTarget | SyslogTarget
_T = TypeVar("_T")


def forward(batch: int | None = None) -> int:
    """Send every ledger event after the cursor to ``SIEM["TARGET"]``; returns how many were sent.

    Returns 0 when forwarding is off, or when another worker is forwarding at the moment.
    """
    target = configured_target()
    if target is None:
        return 0
    size = settings.SIEM["BATCH"] if batch is None else batch
    if size < 1:
        raise ValueError("the batch size is at least 1")
    sent = 0
    while True:
        with transaction.atomic():
            if not _locked():
                return sent
            cursor, _ = DeliveryCursor.objects.select_for_update().get_or_create(target=CURSOR)
            rows = list(
                Event.objects.filter(seq__gt=cursor.position)
                .order_by("seq")
                .values_list("seq", "body", "leaf", "chain")[:size]
            )
            if not rows:
                return sent
            events = [Delivered(seq, bytes(body), bytes(leaf), bytes(chain)) for seq, body, leaf, chain in rows]
            _send(target, events)
            # Only now: a crash before this line re-sends the batch (at least once), never skips it.
            cursor.position = events[-1].seq
            cursor.save(update_fields=["position", "updated_at"])
        sent += len(events)
        if len(events) < size:
            return sent


def configured_target() -> Target | None:
    """``SIEM["TARGET"]`` parsed, or None when forwarding is off; refuses any other form."""
    configured: str = settings.SIEM["TARGET"]
    if not configured:
        return None
    try:
        parts = urlsplit(configured)
        port = parts.port
    except ValueError as error:
        raise ImproperlyConfigured(f"SIEM TARGET is not a valid URL ({error}); use {ACCEPTED_FORMS}") from None
    if parts.query or parts.fragment or parts.username is not None:
        raise ImproperlyConfigured(f"SIEM TARGET takes no user, query or fragment; use {ACCEPTED_FORMS}")
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/") or path.endswith("/"):
            raise ImproperlyConfigured(f"SIEM TARGET names no absolute file path; use {ACCEPTED_FORMS}")
        return FileTarget(Path(path))
    if parts.scheme == "syslog+tls":
        if not parts.hostname or parts.path not in ("", "/"):
            raise ImproperlyConfigured(f"SIEM TARGET names no syslog host; use {ACCEPTED_FORMS}")
        return SyslogTarget(parts.hostname, port or SYSLOG_TLS_PORT)
    raise ImproperlyConfigured(f"SIEM TARGET has the scheme {parts.scheme!r}; use {ACCEPTED_FORMS}")


def _locked() -> bool:
    """Take the forwarder's lock for this transaction, if free (SQLite serialises writers itself)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEY])
        row = cursor.fetchone()
    return bool(row and row[0])


# --- the formats -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """An event as it leaves: its sequence number, stored body and hashes."""

    seq: int
    body: bytes
    leaf: bytes
    chain: bytes

    def document(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    def json_line(self, document: dict[str, Any] | None = None) -> str:
        record = {
            "seq": self.seq,
            "leaf": base64.b64encode(self.leaf).decode(),
            "chain": base64.b64encode(self.chain).decode(),
            "event": self.document() if document is None else document,
        }
        return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def syslog_frame(self, hostname: str, ledger: str) -> bytes:
        """The RFC 5424 message, framed by octet counting (RFC 5425)."""
        document = self.document()
        header = " ".join(
            [
                f"<{PRI}>1",
                _header_field(str(document["time"]), 32),
                _header_field(hostname, 255),
                APP_NAME,
                "-",
                _header_field(str(document["name"]), 32),
            ]
        )
        structured = f'[caspix@{ENTERPRISE_NUMBER} seq="{self.seq}" origin="{_param_value(ledger)}"]'
        message = f"{header} {structured} {self.json_line(document)}".encode()
        return f"{len(message)} ".encode() + message


def _header_field(value: str, limit: int) -> str:
    """A header field as RFC 5424 allows it: 1 to ``limit`` printable US-ASCII characters, or ``-``."""
    kept = "".join(character for character in value if "!" <= character <= "~")[:limit]
    return kept or "-"


def _param_value(value: str) -> str:
    """An SD-PARAM value: ``"``, ``\\`` and ``]`` escaped with a backslash (RFC 5424 §6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


# --- the transports ----------------------------------------------------------------------------


def _send(target: Target, events: Sequence[Delivered]) -> None:
    if isinstance(target, FileTarget):
        _append(target.path, "".join(f"{event.json_line()}\n" for event in events).encode())
    else:
        hostname, ledger = socket.gethostname(), origin()
        _send_tls(target, b"".join(event.syslog_frame(hostname, ledger) for event in events))


def _append(path: Path, payload: bytes) -> None:
    """Append ``payload`` to ``path`` and fsync it (a new file: mode 0600, and its directory fsync'd)."""
    created = not path.exists()
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise ForwardError(f"cannot open the SIEM file {path}: {error.strerror or error}") from error
    try:
        end = os.fstat(descriptor).st_size
        if end and os.pread(descriptor, 1, end - 1) != b"\n":
            payload = b"\n" + payload  # a line torn by a crash stays alone on its line
        view = memoryview(payload)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
        if created:
            directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    except OSError as error:
        raise ForwardError(f"cannot write the SIEM file {path}: {error.strerror or error}") from error
    finally:
        os.close(descriptor)


def _send_tls(target: SyslogTarget, payload: bytes) -> None:
    context = tls_context()
    address = f"syslog+tls://{target.host}:{target.port}"
    try:
        with socket.create_connection((target.host, target.port), timeout=settings.SIEM["TIMEOUT"]) as raw:
            session = _Session(raw, context, target.host)
            session.step(session.tls.do_handshake)
            session.step(lambda: session.tls.write(payload))
            session.close()
    except OSError as error:  # refused, unreachable, timed out, or TLS (ssl.SSLError is an OSError)
        raise ForwardError(f"cannot deliver to {address}: {error}") from error


class _Session:
    """A TLS client over memory buffers, so that this module decides when the socket is read.

    The ``ssl.SSLSocket`` API cannot send close_notify without also reading the peer's answer
    inside ``SSL_shutdown``, which reports a fatal alert as a clean close; reading it with
    ``SSL_read`` instead tells the two apart.
    """

    def __init__(self, raw: socket.socket, context: ssl.SSLContext, host: str) -> None:
        self.raw = raw
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)

    def step(self, operation: Callable[[], _T]) -> _T:
        """Run ``operation`` to completion, sending what it writes and feeding it what it needs."""
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                self.flush()
                data = self.raw.recv(65536)
                if data:
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()
                continue
            self.flush()
            return result

    def flush(self) -> None:
        if pending := self.outgoing.read():
            self.raw.sendall(pending)

    def close(self) -> None:
        """Send close_notify (RFC 5425 §4.4) and read until the receiver closes its side.

        Its close_notify or the end of the connection means it has read every byte sent before
        ours. A receiver that refuses the connection after the handshake has finished (under
        TLS 1.3, a client certificate it rejects) answers with an alert instead: an
        ``ssl.SSLError``, as a reset or a silence until the timeout is an ``OSError``.
        """
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()  # writes close_notify; the answer is read below, by SSL_read
        self.flush()
        try:
            while self.step(lambda: self.tls.read(65536)):
                pass  # a syslog receiver sends no data; whatever it sends is not ours to read
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return


def tls_context() -> ssl.SSLContext:
    """The client's TLS settings: the receiver's CA, its host name checked, TLS 1.2 at least."""
    config = settings.SIEM
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config["CACERT"])
        if config["CLIENT_KEY"] and not config["CLIENT_CERT"]:
            raise ImproperlyConfigured("SIEM CLIENT_KEY is set without CLIENT_CERT")
        if config["CLIENT_CERT"]:
            context.load_cert_chain(config["CLIENT_CERT"], config["CLIENT_KEY"])
    except OSError as error:  # a missing file, or ssl.SSLError for one that holds no usable PEM
        raise ImproperlyConfigured(f"SIEM CACERT, CLIENT_CERT or CLIENT_KEY cannot be loaded: {error}") from error
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
