"""forward(): the ledger reaches the SIEM over syslog on TLS, or in a file, at least once, in order."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import re
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from pytest_django.fixtures import Settings

from audit import forward as forwarding
from audit import ledger
from audit.canonical import canonical
from audit.events import EventType
from audit.forward import ForwardError, forward
from audit.ledger import Actor, record
from audit.models import DeliveryCursor
from audit.tasks import forward_ledger

pytestmark = pytest.mark.django_db

WORKER = Actor.system("key rotation")
FRAME = re.compile(
    r"<(?P<pri>\d+)>1 (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r'\[caspix@32473 seq="(?P<seq>\d+)" origin="(?P<origin>(?:[^"\\\]]|\\.)*)"\] (?P<msg>.*)',
    re.DOTALL,
)


# --- a certificate authority and a TLS syslog receiver -------------------------------------------


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    pem: Path

    @classmethod
    def create(cls, directory: Path, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            _builder(subject, subject, key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        pem = directory / f"{name}.pem"
        pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(key, certificate, pem)

    def issue(self, directory: Path, name: str, *, client: bool = False) -> tuple[Path, Path]:
        """A certificate for ``localhost`` (and 127.0.0.1), or a client's; returns (cert, key) files."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        certificate = (
            _builder(subject, self.certificate.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_file, key_file


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


@dataclass
class Receiver:
    """A syslog receiver on TLS (RFC 5425) on loopback: parses octet-counted frames, one client at a time."""

    context: ssl.SSLContext
    #: how it ends a connection the sender closed: "close_notify" as RFC 5425 §4.4 asks,
    #: "hang_up" (no close_notify), or "silent" (keeps it open until the receiver stops)
    ending: str = "close_notify"
    frames: list[bytes] = field(default_factory=list)
    connections: int = 0
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self._done = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"syslog+tls://localhost:{self.port}"

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._server.accept()
            except TimeoutError:
                continue
            raw.settimeout(5)
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    self._read(tls)
                    if self.ending == "close_notify":
                        tls.unwrap()
                    elif self.ending == "silent":
                        self._stopping.wait()
            except OSError as error:
                self.failures.append(str(error))
            finally:
                with self._done:
                    self.connections += 1
                    self._done.notify_all()

    def _read(self, tls: ssl.SSLSocket) -> None:
        buffer = b""
        while chunk := tls.recv(65536):
            buffer += chunk
            while b" " in buffer:
                length, rest = buffer.split(b" ", 1)
                if not length.isdigit():
                    self.failures.append(f"not an octet-counted frame: {buffer[:40]!r}")
                    return
                if len(rest) < int(length):
                    break
                self.frames.append(rest[: int(length)])
                buffer = rest[int(length) :]
        if buffer:
            self.failures.append(f"a torn frame: {buffer[:40]!r}")

    def wait_for(self, connections: int) -> None:
        with self._done:
            assert self._done.wait_for(lambda: self.connections >= connections, timeout=5)

    def messages(self) -> list[dict[str, Any]]:
        return [parse(frame) for frame in self.frames]

    def deduplicated(self) -> list[int]:
        """What a SIEM keeps, de-duplicating by sequence number: the sequence numbers in order."""
        return sorted({message["seq"] for message in self.messages()})

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._server.close()


def parse(frame: bytes) -> dict[str, Any]:
    text = frame.decode()
    match = FRAME.fullmatch(text)
    assert match, f"not an RFC 5424 message of Caspix: {text[:120]!r}"
    line = json.loads(match["msg"])
    assert match["msg"] == json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {**match.groupdict(), "seq": int(match["seq"]), "line": line}


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority.create(tmp_path, "siem-ca")


def server_context(authority: Authority, directory: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """The receiver's TLS: a certificate for localhost from ``authority``; TLS 1.3 when the client offers it."""
    cert, key = authority.issue(directory, "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def receiver(authority: Authority, tmp_path: Path, settings: Settings) -> Iterator[Receiver]:
    server = Receiver(server_context(authority, tmp_path))
    settings.SIEM = {**settings.SIEM, "TARGET": server.target, "CACERT": str(authority.pem), "BATCH": 500}
    yield server
    server.stop()
    assert server.failures == []


def recorded(count: int, **after: object) -> None:
    with transaction.atomic():
        for n in range(count):
            record(EventType.KEY_ROTATED, actor=WORKER, object_type="key", object_id=f"k{n}", after={"n": n, **after})
    ledger.integrate()


def cursor() -> int:
    """Where the SIEM's cursor stands (0 before a first delivery committed it)."""
    position = DeliveryCursor.objects.filter(target="siem").values_list("position", flat=True).first()
    return 0 if position is None else position


# --- syslog over TLS -----------------------------------------------------------------------------


def test_it_delivers_each_event_as_an_rfc_5424_message_whose_hashes_the_siem_can_check(
    receiver: Receiver, settings: Settings
) -> None:
    settings.LEDGER = {**settings.LEDGER, "ORIGIN": 'bank.example/caspix "prod"'}
    recorded(3, note='a "quoted" ] name: Zoë\nnext line')

    assert forward() == 3

    receiver.wait_for(1)
    messages = receiver.messages()
    assert [message["seq"] for message in messages] == [1, 2, 3]
    chain = bytes(32)
    for message in messages:
        line = message["line"]
        assert (message["pri"], message["app"], message["procid"], message["msgid"]) == (
            "110",
            "caspix",
            "-",
            "KEY_ROTATED",
        )
        assert message["host"] == socket.gethostname()
        assert message["origin"] == r"bank.example/caspix \"prod\""
        assert message["time"] == line["event"]["time"]
        assert set(line) == {"seq", "leaf", "chain", "event"}
        assert line["seq"] == message["seq"]
        body = canonical(line["event"])
        leaf = hashlib.sha256(b"\x00" + body).digest()
        assert base64.b64decode(line["leaf"]) == leaf
        chain = hashlib.sha256(chain + leaf).digest()
        assert base64.b64decode(line["chain"]) == chain
        assert body in message["msg"].encode()  # the body's exact bytes travel inside the line
    assert messages[0]["line"]["event"]["after"]["note"] == 'a "quoted" ] name: Zoë\nnext line'
    assert cursor() == 3


def test_it_sends_only_the_events_after_the_cursor(receiver: Receiver) -> None:
    recorded(2)
    assert forward() == 2
    recorded(3)

    assert forward() == 3
    assert forward() == 0

    receiver.wait_for(2)
    assert [message["seq"] for message in receiver.messages()] == [1, 2, 3, 4, 5]
    assert cursor() == 5


def test_it_sends_in_batches_one_connection_each(receiver: Receiver) -> None:
    recorded(5)

    assert forward(batch=2) == 5

    receiver.wait_for(3)
    assert receiver.connections == 3
    assert [message["seq"] for message in receiver.messages()] == [1, 2, 3, 4, 5]
    assert cursor() == 5


def test_it_resends_a_batch_whose_cursor_was_not_saved_and_the_receiver_keeps_each_event_once(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded(3)
    assert forward() == 3
    recorded(2)
    save = DeliveryCursor.save
    crashes = iter([RuntimeError("the worker was killed")])

    def crashing_save(self: DeliveryCursor, *args: Any, **kwargs: Any) -> None:
        for crash in crashes:
            raise crash
        save(self, *args, **kwargs)

    monkeypatch.setattr(DeliveryCursor, "save", crashing_save)

    with pytest.raises(RuntimeError, match="killed"):
        forward()
    assert cursor() == 3  # sent, but not marked as sent
    assert forward() == 2  # the restart resumes at the cursor: at least once

    receiver.wait_for(3)
    assert [message["seq"] for message in receiver.messages()] == [1, 2, 3, 4, 5, 4, 5]
    assert receiver.deduplicated() == [1, 2, 3, 4, 5]  # each event exactly once, no gap
    assert cursor() == 5


def test_it_raises_and_keeps_the_cursor_when_the_receiver_is_down(receiver: Receiver, settings: Settings) -> None:
    recorded(2)
    assert forward() == 2
    recorded(1)
    with socket.create_server(("127.0.0.1", 0)) as reserved:
        closed_port = reserved.getsockname()[1]
    settings.SIEM = {**settings.SIEM, "TARGET": f"syslog+tls://localhost:{closed_port}"}

    with pytest.raises(ForwardError, match=rf"cannot deliver to syslog\+tls://localhost:{closed_port}"):
        forward()

    assert cursor() == 2


def test_it_refuses_a_receiver_whose_certificate_the_configured_ca_did_not_sign(
    tmp_path: Path, authority: Authority, settings: Settings
) -> None:
    impostor = Receiver(server_context(Authority.create(tmp_path, "impostor-ca"), tmp_path))
    settings.SIEM = {**settings.SIEM, "TARGET": impostor.target, "CACERT": str(authority.pem)}
    recorded(2)
    try:
        with pytest.raises(ForwardError, match="CERTIFICATE_VERIFY_FAILED"):
            forward()
        impostor.wait_for(1)
    finally:
        impostor.stop()

    assert impostor.frames == []
    assert cursor() == 0


def test_it_counts_a_receiver_that_hangs_up_without_close_notify_as_having_read_the_batch(
    receiver: Receiver,
) -> None:
    receiver.ending = "hang_up"
    recorded(2)

    assert forward() == 2

    receiver.wait_for(1)
    assert receiver.deduplicated() == [1, 2]
    assert cursor() == 2


def test_it_keeps_the_cursor_when_the_receiver_does_not_close_after_the_sender(
    receiver: Receiver, settings: Settings
) -> None:
    receiver.ending = "silent"
    settings.SIEM = {**settings.SIEM, "TIMEOUT": 0.3}
    recorded(2)

    with pytest.raises(ForwardError, match="timed out"):
        forward()

    assert cursor() == 0  # it may have read the batch: the next run sends it again


def test_it_presents_its_client_certificate_to_a_receiver_that_requires_one(
    tmp_path: Path, authority: Authority, settings: Settings
) -> None:
    client_ca = Authority.create(tmp_path, "client-ca")
    cert, key = client_ca.issue(tmp_path, "caspix-forwarder", client=True)
    strict = Receiver(server_context(authority, tmp_path, client_ca=client_ca.pem))
    settings.SIEM = {**settings.SIEM, "TARGET": strict.target, "CACERT": str(authority.pem)}
    recorded(1)
    try:
        # Under TLS 1.3 the refusal comes after the sender's handshake: sendall alone succeeds.
        with pytest.raises(ForwardError):
            forward()
        strict.wait_for(1)
        assert (strict.frames, cursor()) == ([], 0)
        settings.SIEM = {**settings.SIEM, "CLIENT_CERT": str(cert), "CLIENT_KEY": str(key)}

        assert forward() == 1
        strict.wait_for(2)
    finally:
        strict.stop()

    assert [message["seq"] for message in strict.messages()] == [1]
    assert cursor() == 1


def test_it_skips_while_another_worker_forwards(receiver: Receiver) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    recorded(2)
    database = connection.settings_dict
    with psycopg.connect(
        dbname=database["NAME"],
        user=database["USER"],
        password=database["PASSWORD"] or None,
        host=database["HOST"],
        port=database["PORT"] or None,
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [forwarding._LOCK_KEY])

        assert forward() == 0

        other.execute("SELECT pg_advisory_unlock(%s)", [forwarding._LOCK_KEY])
    assert forward() == 2
    receiver.wait_for(1)
    assert receiver.connections == 1


# --- file ----------------------------------------------------------------------------------------


def test_it_appends_json_lines_to_a_private_file_and_resumes_after_the_cursor(
    tmp_path: Path, settings: Settings
) -> None:
    target = tmp_path / "ledger.jsonl"
    settings.SIEM = {**settings.SIEM, "TARGET": f"file://{target}"}
    recorded(2)
    assert forward() == 2
    recorded(1)

    assert forward() == 1

    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    for line in lines:
        assert base64.b64decode(line["leaf"]) == hashlib.sha256(b"\x00" + canonical(line["event"])).digest()
    assert cursor() == 3


def test_it_puts_the_lines_after_a_line_torn_by_a_crash_on_their_own_lines(tmp_path: Path, settings: Settings) -> None:
    target = tmp_path / "ledger.jsonl"
    target.write_bytes(b'{"chain":"AAAA","ev')
    settings.SIEM = {**settings.SIEM, "TARGET": f"file://{target}"}
    recorded(2)

    assert forward() == 2

    torn, *complete = target.read_text(encoding="utf-8").splitlines()
    assert torn == '{"chain":"AAAA","ev'
    assert [json.loads(line)["seq"] for line in complete] == [1, 2]


def test_it_raises_and_keeps_the_cursor_when_the_file_cannot_be_written(tmp_path: Path, settings: Settings) -> None:
    settings.SIEM = {**settings.SIEM, "TARGET": f"file://{tmp_path}/missing/ledger.jsonl"}
    recorded(1)

    with pytest.raises(ForwardError, match="cannot open the SIEM file"):
        forward()

    assert cursor() == 0


# --- configuration and the task --------------------------------------------------------------------


def test_it_does_nothing_when_forwarding_is_off(settings: Settings) -> None:
    settings.SIEM = {**settings.SIEM, "TARGET": ""}
    recorded(1)

    assert forward() == 0
    assert not DeliveryCursor.objects.filter(target="siem").exists()


@pytest.mark.parametrize(
    "target",
    [
        "udp://siem.bank.example:514",
        "syslog://siem.bank.example:514",
        "file://relative/ledger.jsonl",
        "file:///var/log/caspix/",
        "syslog+tls:///no-host",
        "syslog+tls://siem.bank.example:notaport",
        "syslog+tls://user:secret@siem.bank.example:6514",
    ],
)
def test_it_names_the_accepted_forms_when_the_target_is_not_one(target: str, settings: Settings) -> None:
    settings.SIEM = {**settings.SIEM, "TARGET": target}

    with pytest.raises(
        ImproperlyConfigured, match=re.escape("file:///absolute/path or syslog+tls://host[:port]")
    ) as error:
        forward()

    assert "secret" not in str(error.value)


def test_it_forwards_from_a_task_on_a_beat(tmp_path: Path, settings: Settings) -> None:
    settings.SIEM = {**settings.SIEM, "TARGET": f"file://{tmp_path}/ledger.jsonl"}
    recorded(2)

    assert forward_ledger() == 2

    assert settings.CELERY_BEAT_SCHEDULE["forward-ledger"]["task"] == "audit.tasks.forward_ledger"
    assert forward_ledger.max_retries == 5
    assert ForwardError in getattr(forward_ledger, "autoretry_for", ())
