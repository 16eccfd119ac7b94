"""RFC 9421 signatures on the intake API: the client signs, ``cases.signatures`` verifies, and refuses
every request that is stale, replayed, tampered with, signed by an unknown key or not signed as agreed.

No database: both modules are pure. The RFC's own vectors (RFC 9421 appendix B, RFC 9530 section 2)
pin the signature base and the digests; everything else is checked against the client, which shares no
code with the verifier.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cases.signatures import (
    CLOCK_SKEW_SECONDS,
    Failure,
    KeyLookup,
    SignatureError,
    Verified,
    content_digest,
    field_values,
    read_signature,
    signature_base,
    verify_request,
)

# The client is a standalone file that upstream systems copy; import it the way they do.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
from caspix_client import CaspixClient, CaspixError, sign

KEYID = "tms-1"
SECRET = b"caspix-test-secret-one-0123456789"
NEXT_SECRET = b"caspix-test-secret-two-0123456789"
NOW = 1_750_000_000
WINDOW = 300
PATH = "/api/v1/alerts"
BODY = b'{"hello": "world"}'  # the body of RFC 9421's test-request (appendix B.2)
PARAMS = f';created={NOW};keyid="{KEYID}";nonce="n-1"'
COVERED = '("@method" "@path" "content-digest")'


class NonceStore:
    """The replay store as Redis ``SET NX`` gives it: the first caller wins, later ones see it taken."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], int] = {}

    def __call__(self, keyid: str, nonce: str, expires_at: int) -> bool:
        if (keyid, nonce) in self.seen:
            return True
        self.seen[keyid, nonce] = expires_at
        return False


def active_keys(*secrets: bytes) -> KeyLookup:
    return lambda keyid: list(secrets) if keyid == KEYID else []


def signed(*, secret: bytes = SECRET, created: int = NOW, nonce: str = "n-1") -> dict[str, str]:
    """A request's headers exactly as the client signs them."""
    return sign("POST", f"https://caspix.bank.example{PATH}?ignored=1", BODY, KEYID, secret, nonce, created)


def signed_as(member: str, *, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers for a signature the client never makes, its ``Signature-Input`` member given verbatim."""
    headers = {"Content-Digest": content_digest(BODY), **(extra or {})}
    headers |= {"Signature-Input": f"sig1={member}", "Signature": "sig1=:AA==:"}
    try:
        fields = read_signature(headers)
    except SignatureError:
        return headers  # refused before any signature is computed: no need for a real one
    values = {"@method": "POST", "@path": PATH} | field_values(headers)
    base = signature_base([(name, values.get(name, "")) for name in fields.components], fields.signature_params)
    mac = base64.b64encode(hmac.new(SECRET, base, hashlib.sha256).digest()).decode()
    return headers | {"Signature": f"sig1=:{mac}:"}


def verify(
    headers: Mapping[str, str],
    *,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    keys: KeyLookup | None = None,
    now: datetime | float = NOW,
    store: NonceStore | None = None,
) -> Verified:
    return verify_request(
        method=method,
        path=path,
        headers=headers,
        body=body,
        keys=active_keys(SECRET) if keys is None else keys,
        now=now,
        window_seconds=WINDOW,
        nonce_seen=NonceStore() if store is None else store,
    )


def refusal(headers: Mapping[str, str], **overrides: Any) -> Failure:
    with pytest.raises(SignatureError) as caught:
        verify(headers, **overrides)
    return caught.value.code


# --- the RFCs' own vectors ----------------------------------------------------------------------


def test_it_builds_the_signature_base_of_rfc_9421_b_2_5() -> None:
    """RFC 9421 appendix B.2.5, "Signing a Request Using hmac-sha256", with B.1.5's shared secret."""
    rfc_secret = base64.b64decode(
        "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
    )
    signature_input = 'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
    signature = "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:"
    fields = read_signature({"Signature-Input": signature_input, "Signature": signature})
    values = {"date": "Tue, 20 Apr 2021 02:07:55 GMT", "@authority": "example.com", "content-type": "application/json"}

    base = signature_base([(name, values[name]) for name in fields.components], fields.signature_params)

    assert base == (
        b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        b'"@authority": example.com\n'
        b'"content-type": application/json\n'
        b'"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
    )
    assert hmac.new(rfc_secret, base, hashlib.sha256).digest() == fields.signature
    assert fields.label == "sig-b25"
    assert dict(fields.params) == {"created": 1618884473, "keyid": "test-shared-secret"}


def test_it_computes_the_digests_of_rfc_9530_and_rfc_9421() -> None:
    assert content_digest(BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"  # RFC 9530 section 2
    assert content_digest(BODY, "sha-512") == (  # RFC 9421 appendix B.2, test-request
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
    )
    assert signed()["Content-Digest"] == content_digest(BODY)


# --- what is accepted ---------------------------------------------------------------------------


def test_it_accepts_what_the_client_signs() -> None:
    store = NonceStore()

    verified = verify(signed(), store=store)

    assert verified == Verified(keyid=KEYID, label="sig1", created=datetime.fromtimestamp(NOW, UTC), nonce="n-1")
    assert store.seen == {(KEYID, "n-1"): NOW + WINDOW + 1}


def test_it_signs_exactly_the_agreed_components() -> None:
    assert signed()["Signature-Input"] == f'sig1={COVERED}{PARAMS};alg="hmac-sha256"'


def test_it_accepts_either_active_key_during_rotation() -> None:
    keys = active_keys(SECRET, NEXT_SECRET)

    assert verify(signed(secret=SECRET), keys=keys).keyid == KEYID
    assert verify(signed(secret=NEXT_SECRET), keys=keys).keyid == KEYID


def test_it_accepts_created_from_the_end_of_the_window_to_the_clock_skew() -> None:
    assert verify(signed(), now=datetime.fromtimestamp(NOW + WINDOW, UTC)).nonce == "n-1"
    assert verify(signed(), now=NOW - CLOCK_SKEW_SECONDS).nonce == "n-1"


def test_it_reads_header_names_in_any_case_and_joins_repeated_fields() -> None:
    both = f"{content_digest(BODY)}, {content_digest(BODY, 'sha-512')}"
    headers = signed_as(COVERED + PARAMS, extra={"Content-Digest": both})
    lines = [("SIGNATURE-INPUT", headers["Signature-Input"]), ("signature", headers["Signature"])]
    lines += [
        ("content-digest", f"  {content_digest(BODY)}"),
        ("Content-Digest", f"{content_digest(BODY, 'sha-512')}\t"),
    ]

    verified = verify_request(
        method="POST",
        path=PATH,
        headers=lines,
        body=BODY,
        keys=active_keys(SECRET),
        now=NOW,
        window_seconds=WINDOW,
        nonce_seen=NonceStore(),
    )

    assert verified.keyid == KEYID


def test_it_accepts_a_sha_512_digest_and_no_alg() -> None:
    headers = signed_as(COVERED + PARAMS, extra={"Content-Digest": content_digest(BODY, "sha-512")})

    assert verify(headers).nonce == "n-1"


def test_it_accepts_extra_covered_header_fields_the_request_carries() -> None:
    member = '("@method" "@path" "content-digest" "idempotency-key")' + PARAMS

    assert verify(signed_as(member, extra={"Idempotency-Key": "tms-A-1"})).keyid == KEYID


# --- what is refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        pytest.param({"body": b'{"hello": "there"}'}, Failure.DIGEST_MISMATCH, id="altered body"),
        pytest.param({"path": "/api/v1/alerts/bulk"}, Failure.SIGNATURE_MISMATCH, id="other path"),
        pytest.param({"method": "PUT"}, Failure.SIGNATURE_MISMATCH, id="other method"),
        pytest.param({"keys": active_keys(NEXT_SECRET)}, Failure.SIGNATURE_MISMATCH, id="wrong key"),
        pytest.param({"keys": active_keys()}, Failure.UNKNOWN_KEY, id="revoked key"),
        pytest.param({"now": NOW + WINDOW + 1}, Failure.CREATED_STALE, id="stale"),
        pytest.param({"now": NOW - CLOCK_SKEW_SECONDS - 1}, Failure.CREATED_IN_FUTURE, id="from the future"),
    ],
)
def test_it_refuses_a_request_that_is_not_the_signed_one(tamper: dict[str, object], code: Failure) -> None:
    assert refusal(signed(), **tamper) == code


def test_it_refuses_an_altered_body_with_a_digest_to_match() -> None:
    body = b'{"hello": "there"}'
    headers = signed() | {"Content-Digest": content_digest(body)}

    assert refusal(headers, body=body) == Failure.SIGNATURE_MISMATCH


def test_it_refuses_a_replayed_nonce() -> None:
    store = NonceStore()
    verify(signed(), store=store)

    assert refusal(signed(), store=store) == Failure.NONCE_REPLAYED


def test_it_spends_no_nonce_on_a_request_that_fails_verification() -> None:
    store = NonceStore()

    assert refusal(signed(secret=NEXT_SECRET), store=store) == Failure.SIGNATURE_MISMATCH
    assert store.seen == {}
    assert verify(signed(), store=store).nonce == "n-1"


@pytest.mark.parametrize(
    ("member", "code"),
    [
        pytest.param('("@method" "@path")' + PARAMS, Failure.MISSING_COMPONENT, id="digest not covered"),
        pytest.param('("@method" "content-digest")' + PARAMS, Failure.MISSING_COMPONENT, id="path not covered"),
        pytest.param(f'{COVERED[:-1]} "x-absent")' + PARAMS, Failure.MISSING_COMPONENT, id="absent header covered"),
        pytest.param(f'{COVERED[:-1]} "@query")' + PARAMS, Failure.UNSUPPORTED_COMPONENT, id="other derived"),
        pytest.param(f'{COVERED[:-1]} "X-Upper")' + PARAMS, Failure.UNSUPPORTED_COMPONENT, id="upper-case name"),
        pytest.param('("@method";req "@path" "content-digest")' + PARAMS, Failure.UNSUPPORTED_COMPONENT, id="param"),
        pytest.param(f'{COVERED[:-1]} "@path")' + PARAMS, Failure.DUPLICATE_COMPONENT, id="duplicate"),
        pytest.param(COVERED + PARAMS + ';alg="hmac-sha512"', Failure.ALG_MISMATCH, id="other alg"),
        pytest.param(COVERED + PARAMS + ";alg=hmac-sha256", Failure.ALG_MISMATCH, id="alg as a token"),
        pytest.param(COVERED + f';created={NOW};nonce="n-1"', Failure.MISSING_PARAMETER, id="no keyid"),
        pytest.param(COVERED + f';keyid="{KEYID}";nonce="n-1"', Failure.MISSING_PARAMETER, id="no created"),
        pytest.param(COVERED + f';created={NOW};keyid="{KEYID}"', Failure.NONCE_MISSING, id="no nonce"),
        pytest.param(COVERED + PARAMS + ";nonce=" + '"' + "n" * 129 + '"', Failure.NONCE_TOO_LONG, id="long nonce"),
        pytest.param(COVERED + PARAMS + ";nonce=7", Failure.MALFORMED_PARAMETER, id="nonce not a string"),
        pytest.param(COVERED + PARAMS + ";created=?1", Failure.MALFORMED_PARAMETER, id="created a boolean"),
        pytest.param(COVERED + PARAMS + ';created="now"', Failure.MALFORMED_PARAMETER, id="created a string"),
        pytest.param(COVERED + PARAMS + ";keyid=tms-1", Failure.MALFORMED_PARAMETER, id="keyid a token"),
        pytest.param(COVERED + PARAMS + ";context=1", Failure.MALFORMED_PARAMETER, id="unknown parameter"),
        pytest.param(COVERED + PARAMS + f";expires={NOW - 1}", Failure.EXPIRED, id="expired"),
    ],
)
def test_it_refuses_a_signature_not_made_as_agreed(member: str, code: Failure) -> None:
    assert refusal(signed_as(member)) == code


def test_it_honours_expires_and_tag() -> None:
    assert verify(signed_as(COVERED + PARAMS + f';expires={NOW};tag="intake"')).keyid == KEYID


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({"Signature-Input": ""}, Failure.MISSING_HEADER, id="no Signature-Input"),
        pytest.param({"Signature": " "}, Failure.MISSING_HEADER, id="no Signature"),
        pytest.param({"Content-Digest": ""}, Failure.DIGEST_MISSING, id="no Content-Digest"),
        pytest.param({"Signature": "sig2=:AA==:"}, Failure.LABEL_MISMATCH, id="label mismatch"),
        pytest.param({"Signature": "sig1=:AA==:, sig2=:AA==:"}, Failure.MULTIPLE_SIGNATURES, id="two signatures"),
        pytest.param({"Signature-Input": "sig1=(), sig2=()"}, Failure.MULTIPLE_SIGNATURES, id="two inputs"),
        pytest.param({"Signature-Input": "sig1=("}, Failure.MALFORMED_HEADER, id="unclosed list"),
        pytest.param({"Signature-Input": 'sig1="@method"'}, Failure.MALFORMED_HEADER, id="not an inner list"),
        pytest.param({"Signature-Input": "sig1=(method)"}, Failure.MALFORMED_HEADER, id="token component"),
        pytest.param({"Signature": 'sig1="AA=="'}, Failure.MALFORMED_HEADER, id="signature not bytes"),
        pytest.param({"Signature": "sig1=:AA==:é"}, Failure.MALFORMED_HEADER, id="not ASCII"),
        pytest.param({"Content-Digest": "sha-256=:AA="}, Failure.MALFORMED_HEADER, id="digest unclosed"),
        pytest.param({"Content-Digest": 'sha-256="AA=="'}, Failure.MALFORMED_HEADER, id="digest not bytes"),
        pytest.param({"Content-Digest": "sha-256=:AA==:"}, Failure.DIGEST_MISMATCH, id="digest altered"),
        pytest.param({"Content-Digest": "sha=:AA==:, md5=:AA==:"}, Failure.DIGEST_UNSUPPORTED, id="weak digests"),
    ],
)
def test_it_refuses_missing_or_malformed_headers(headers: dict[str, str], code: Failure) -> None:
    assert refusal(signed() | headers) == code


def test_it_refuses_a_line_feed_in_a_covered_value() -> None:
    assert refusal(signed(), path=PATH + '\n"@path": /other') == Failure.MALFORMED_HEADER


FIELDS = ("Signature-Input", "Signature", "Content-Digest")
GARBAGE = st.text(alphabet='sig1=()";:,*?@-_ \t.0123456789abcdef/+\\%AZ', max_size=24) | st.text(max_size=6)


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FIELDS), st.integers(0, 160), st.integers(0, 12), GARBAGE), max_size=4))
def test_it_only_ever_raises_signature_error_on_garbage(edits: list[tuple[str, int, int, str]]) -> None:
    headers = signed()
    for name, start, length, text in edits:
        headers[name] = headers[name][:start] + text + headers[name][start + length :]
    with contextlib.suppress(SignatureError):  # anything else escapes and fails the test
        verify(headers)


# --- the client over HTTP -----------------------------------------------------------------------


@pytest.fixture
def intake() -> Iterator[tuple[str, list[Verified]]]:
    """A loopback server that verifies every request as the intake API will, and echoes what it read."""
    verified: list[Verified] = []
    store = NonceStore()

    class Intake(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.answer()

        def do_POST(self) -> None:
            self.answer()

        def answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                result = verify_request(
                    method=self.command,
                    path=urlsplit(self.path).path,
                    headers=self.headers.items(),
                    body=body,
                    keys=active_keys(SECRET),
                    now=time.time(),
                    window_seconds=WINDOW,
                    nonce_seen=store,
                )
            except SignatureError as error:
                self.reply(401, {"code": error.code})
                return
            verified.append(result)
            echo = {"path": self.path, "idempotency_key": self.headers["Idempotency-Key"]}
            self.reply(200, echo | {"json": json.loads(body) if body else None})

        def reply(self, status: int, answer: object) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Intake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", verified
    server.shutdown()
    server.server_close()
    thread.join()


def test_it_sends_signed_json_that_the_verifier_accepts(intake: tuple[str, list[Verified]]) -> None:
    base_url, verified = intake
    client = CaspixClient(base_url, KEYID, SECRET)

    single = client.post_alert({"external_id": "A-1", "score": 87}, idempotency_key="tms-A-1")
    bulk = client.post_alerts_bulk([{"external_id": "A-2"}, {"external_id": "A-3"}], idempotency_key="tms-batch-7")
    fetched = client.get_alert("A 1")

    assert single == {"path": PATH, "idempotency_key": "tms-A-1", "json": {"external_id": "A-1", "score": 87}}
    assert bulk["path"] == f"{PATH}/bulk"
    assert bulk["json"] == [{"external_id": "A-2"}, {"external_id": "A-3"}]
    assert fetched == {"path": f"{PATH}/A%201", "idempotency_key": None, "json": None}
    assert [result.keyid for result in verified] == [KEYID] * 3
    assert len({result.nonce for result in verified}) == 3


def test_it_raises_the_intake_answer_when_the_signature_fails(intake: tuple[str, list[Verified]]) -> None:
    base_url, verified = intake
    client = CaspixClient(base_url, KEYID, NEXT_SECRET)

    with pytest.raises(CaspixError) as caught:
        client.get_alert(1)

    assert (caught.value.status, caught.value.body) == (401, {"code": "signature_mismatch"})
    assert verified == []
    assert NEXT_SECRET.decode() not in repr(client)


def test_it_refuses_a_base_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="https"):
        CaspixClient("file:///etc/passwd", KEYID, SECRET)


def test_it_wants_a_timezone_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(signed(), now=datetime.fromtimestamp(NOW, UTC).replace(tzinfo=None))
