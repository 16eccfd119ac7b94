"""Card numbers, IBANs, national ids and secrets never reach a log line, exceptions included."""

from __future__ import annotations

import io
import json
import logging
import string
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caspix.masking import MaskingFilter, mask, mask_value


def luhn_ok(number: str) -> bool:
    digits = [int(char) for char in number if char.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * digit, 10)) for digit in digits[-2::-2])
    return checksum % 10 == 0


def with_check_digit(payload: str) -> str:
    return next(payload + digit for digit in string.digits if luhn_ok(payload + digit))


def iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    return int("".join(str(int(char, 36)) for char in compact[4:] + compact[:4])) % 97 == 1


PANS = [
    "4111111111111111",  # Visa
    "4012888888881881",  # Visa
    "4222222222222",  # Visa, 13 digits
    "5555555555554444",  # Mastercard
    "5105105105105100",  # Mastercard
    "378282246310005",  # American Express, 15 digits
    "371449635398431",  # American Express
    "6011111111111117",  # Discover
    "6011000990139424",  # Discover
    "3530111333300000",  # JCB
    "30569309025904",  # Diners Club, 14 digits
    "6212345678901234569",  # 19 digits
    "4000000000000000006",  # 19 digits
]
LUHN_INVALID = "4111111111111112"
IBANS = [
    "GB82WEST12345698765432",
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "CH9300762011623852957",
    "BE68539007547034",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "NO9386011117947",  # the shortest, 15 characters
    "MT84MALT011000012345MTLCAST001S",  # 31 characters
]
BAD_IBAN = "GB83WEST12345698765432"


def spaced(number: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(number[i : i + size] for i in range(0, len(number), size))


def test_it_uses_valid_test_data() -> None:
    assert all(luhn_ok(pan) for pan in PANS)
    assert not luhn_ok(LUHN_INVALID)
    assert all(iban_ok(iban) for iban in IBANS)
    assert not iban_ok(BAD_IBAN)
    assert luhn_ok("123456789007")
    assert luhn_ok("12345678901234567894")


# --- Card numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("pan", PANS)
@pytest.mark.parametrize("layout", ["contiguous", "spaces", "hyphens"])
def test_it_masks_card_numbers(pan: str, layout: str) -> None:
    written = {"contiguous": pan, "spaces": spaced(pan), "hyphens": spaced(pan, sep="-")}[layout]
    assert mask(f"paid with {written}, thanks") == "paid with [card], thanks"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111 1111 1111 1111", "[card]"),
        ("card=4111-1111-1111-1111;", "card=[card];"),
        ("amex 3782 822463 10005.", "amex [card]."),  # Amex 4-6-5 grouping
        ("ref4111111111111111x", "ref[card]x"),  # letters do not protect digits
        ('{"pan": "5555555555554444"}', '{"pan": "[card]"}'),
        ("2024-01-15 4111111111111111", "2024-01-15 [card]"),  # a date joined by a space
        ("qty 3 4111 1111 1111 1111", "qty 3 [card]"),
        ("4111111111111111 5555555555554444", "[card] [card]"),
    ],
)
def test_it_masks_card_numbers_in_context(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        LUHN_INVALID,
        spaced(LUHN_INVALID),
        "123456789007",  # 12 digits, Luhn-valid
        "12345678901234567894",  # 20 digits, Luhn-valid as a whole
        "41111111111111112222",  # 20 digits holding a Luhn-valid 16-digit window
        "amount 1234.56 EUR",
        "1700000000.123456",
        "case 12345 of 2024-01-15 12:30:45",
    ],
)
def test_it_keeps_numbers_that_are_not_card_numbers(text: str) -> None:
    assert mask(text) == text


# --- IBANs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("iban", IBANS)
@pytest.mark.parametrize("layout", ["contiguous", "grouped", "lowercase", "grouped lowercase"])
def test_it_masks_ibans(iban: str, layout: str) -> None:
    written = spaced(iban) if "grouped" in layout else iban
    written = written.lower() if "lowercase" in layout else written
    assert mask(f"transfer to {written} today") == "transfer to [iban] today"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"iban": "GB82 WEST 1234 5698 7654 32"}', '{"iban": "[iban]"}'),
        ("iban=DE89370400440532013000&amount=12", "iban=[iban]&amount=12"),
        ("GB82 WEST 1234 5698 7654 32 DONE", "[iban] DONE"),
    ],
)
def test_it_masks_ibans_in_context(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text", [BAD_IBAN, spaced(BAD_IBAN), "AB12 this that with from here", "see RFC1234 and ISO13616"]
)
def test_it_keeps_iban_shaped_text_with_a_wrong_checksum(text: str) -> None:
    assert mask(text) == text


# --- National ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssn 078-05-1120 on file", "ssn [national-id] on file"),
        ("123-45-6789", "[national-id]"),
        ("NINO AB123456C.", "NINO [national-id]."),
        ("nino AB 12 34 56 C", "nino [national-id]"),
        ("ab123456c", "[national-id]"),
    ],
)
def test_it_masks_ssns_and_ninos(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1234-56-7890",  # not an SSN shape
        "12-123-45-6789",  # part of a longer hyphenated number
        "GB123456A",  # prefixes HMRC never allocates
        "QQ123456C",
        "AB123456E",  # suffixes are A to D
        "TAB123456C",  # inside a word
    ],
)
def test_it_keeps_what_only_looks_like_a_national_id(text: str) -> None:
    assert mask(text) == text


NATIONAL_ID_KEYS = ["national_id", "nationalid", "NationalID", "ssn", "nino", "tax_id", "passport", "id_number"]
DOB_KEYS = ["dob", "date_of_birth", "DOB"]
SECRET_KEYS = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "client_secret",
    "authorization",
    "cookie",
    "session",
    "sessionid",
    "csrftoken",
    "x_api_key",
    "CASPIX_SECRET_KEY",
    "X-Api-Key",
    "accessToken",
    "Password",
]


def key_forms(key: str, value: str, label: str) -> list[tuple[str, str]]:
    return [
        (f"{key}={value} next", f"{key}={label} next"),
        (f"{key}: {value} next", f"{key}: {label} next"),
        (f'{{"{key}": "{value}", "n": 1}}', f'{{"{key}": "{label}", "n": 1}}'),
        (f"{{'{key}': '{value}', 'n': 1}}", f"{{'{key}': '{label}', 'n': 1}}"),
        (f'call({key}="{value}")', f'call({key}="{label}")'),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *(form for key in NATIONAL_ID_KEYS for form in key_forms(key, "X7Y8Z9", "[national-id]")),
        *(form for key in DOB_KEYS for form in key_forms(key, "1990-02-28", "[dob]")),
        ("dob: 28 Feb 1990, ok", "dob: [dob], ok"),
        ('{"ssn": 123456789}', '{"ssn": "[national-id]"}'),  # a JSON number becomes a string
    ],
)
def test_it_masks_labelled_national_ids_and_dates_of_birth(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [form for key in SECRET_KEYS for form in key_forms(key, "hunter2", "[secret]")],
)
def test_it_masks_labelled_secrets(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.DEF-123_xyz", "Authorization: Bearer [secret]"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic [secret]"),
        ("upstream sent Bearer 0a1b2c3d4e5f6a7b", "upstream sent Bearer [secret]"),
        ("'HTTP_AUTHORIZATION': 'Bearer abc123'", "'HTTP_AUTHORIZATION': '[secret]'"),
        ("Cookie: sessionid=abc123; csrftoken=def456", "Cookie: [secret]; csrftoken=[secret]"),
        ("GET /reset?token=abc123&next=/", "GET /reset?token=[secret]&next=/"),
        ('{"password": {"old": "a"}}', '{"password": {"old": "a"}}'),  # nested: handled by mask_value
        ('{"message": "password=\\"ab c\\" rejected"}', '{"message": "password=\\"[secret]\\" rejected"}'),
        ('{\\"ssn\\": 123}', '{\\"ssn\\": \\"[national-id]\\"}'),  # JSON within a JSON string
    ],
)
def test_it_masks_secrets_in_headers_and_nested_forms(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_it_masks_pem_private_keys() -> None:
    text = "loaded -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1\nx9+/abc=\n-----END RSA PRIVATE KEY----- ok"
    assert mask(text) == "loaded -----BEGIN RSA PRIVATE KEY-----[secret]-----END RSA PRIVATE KEY----- ok"
    truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"
    assert mask(truncated) == "-----BEGIN OPENSSH PRIVATE KEY-----[secret]-----END OPENSSH PRIVATE KEY-----"
    public = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQ\n-----END PUBLIC KEY-----"
    assert mask(public) == public


def test_it_masks_json_web_tokens() -> None:
    jwt = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )
    assert mask(f"jwt {jwt} expired") == "jwt [secret] expired"
    assert mask(f"?state={jwt}&x=1") == "?state=[secret]&x=1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:hunter2@redis:6379/0", "redis://[credentials]@redis:6379/0"),
        ("postgres://caspix:s3cr3t@db/caspix", "postgres://[credentials]@db/caspix"),
        ("DATABASE_URL=postgresql://u:p@ss@db:5432/x ok", "DATABASE_URL=postgresql://[credentials]@db:5432/x ok"),
        ("https://ghp_abc123@github.com/o/r.git", "https://[credentials]@github.com/o/r.git"),
        ("https://example.com/a@b?mail=x@y.z", "https://example.com/a@b?mail=x@y.z"),
    ],
)
def test_it_masks_url_credentials(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "case escalated to the fraud team",
        "adobe=1 spinner=2 possess=3",
        "password=None token: null",
        '{"password": ""}',
        "if password == stored:",
        "the session expired",
        "request 0f8fad5b-d9cb-469f-a165-70867728950e",
    ],
)
def test_it_keeps_harmless_text(text: str) -> None:
    assert mask(text) == text


def test_it_returns_text_without_digits_or_key_words_unchanged() -> None:
    text = "the quick brown fox jumps over the lazy dog " * 10
    assert mask(text) is text


def test_it_keeps_json_valid() -> None:
    document = json.dumps(
        {
            "password": 'p"w\\d',
            "ssn": 123456789,
            "card": "4111 1111 1111 1111",
            "nested": {"iban": "GB82WEST12345698765432", "api_key": "k", "dob": None},
            "note": 'Authorization: Bearer abc123 and {"token": "t"}',
        }
    )
    masked = mask(document)
    assert json.loads(masked) == {
        "password": "[secret]",
        "ssn": "[national-id]",
        "card": "[card]",
        "nested": {"iban": "[iban]", "api_key": "[secret]", "dob": None},
        "note": 'Authorization: Bearer [secret] and {"token": "[secret]"}',
    }


def test_it_is_fast_on_long_pathological_input() -> None:
    import time

    started = time.perf_counter()
    for text in ["1" * 50_000, "a1" * 25_000, "password" * 6_000, '"token' * 8_000, "AB12 " * 10_000]:
        mask(text)
    assert time.perf_counter() - started < 2


@given(
    before=st.text(alphabet=string.ascii_letters + " ", max_size=30),
    payload=st.text(alphabet=string.digits, min_size=15, max_size=15),
    after=st.text(alphabet=string.ascii_letters + " ", max_size=30),
    layout=st.sampled_from(["contiguous", "spaces", "hyphens"]),
)
@settings(database=None, max_examples=300)
def test_it_never_lets_a_card_number_through(before: str, payload: str, after: str, layout: str) -> None:
    pan = with_check_digit(payload)
    written = {"contiguous": pan, "spaces": spaced(pan), "hyphens": spaced(pan, sep="-")}[layout]
    masked = mask(before + written + after)
    assert not any(char.isdigit() for char in masked)


@given(st.lists(st.sampled_from([*"0123456789 -=:'\"\\@/.,{}[]abcxyzGBQ", "password", "token", "ssn", "dob", "eyJ"])))
@settings(database=None, max_examples=300)
def test_it_masks_idempotently(parts: list[str]) -> None:
    masked = mask("".join(parts))
    assert mask(masked) == masked


# --- mask_value ----------------------------------------------------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_it_masks_values_recursively() -> None:
    value = {
        "payer": {"iban": "GB82WEST12345698765432", "cards": ["4111111111111111", ("5555555555554444", 7)]},
        "password": "hunter2",
        "ssn": 123456789,
        "credentials": {"user": "bob", "tokens": ["a", "b"], "enabled": True},
        "4111111111111111": 1.5,
        "none": None,
        "object": ValueError("card 4111111111111111"),
    }
    assert mask_value(value) == {
        "payer": {"iban": "[iban]", "cards": ["[card]", ("[card]", 7)]},
        "password": "[secret]",
        "ssn": "[national-id]",
        "credentials": {"user": "[secret]", "tokens": ["[secret]", "[secret]"], "enabled": True},
        "[card]": 1.5,
        "none": None,
        "object": "card [card]",
    }


@pytest.mark.parametrize("value", [None, True, False, 0, 4111111111111111, 1234.56])
def test_it_passes_plain_scalars_unchanged(value: object) -> None:
    assert mask_value(value) is value


def test_it_masks_self_referencing_values() -> None:
    looped: list[object] = ["4111111111111111"]
    looped.append(looped)
    assert mask_value(looped) == ["[card]", "['[card]', [...]]"]


# --- MaskingFilter ---------------------------------------------------------------------------------------


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, Collector]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    collector = Collector()
    collector.addFilter(MaskingFilter())
    logger = logging.getLogger("tests.caspix.masking")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    logger.addHandler(collector)
    try:
        yield logger, stream, collector
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(collector)
        logger.propagate = True


def record(msg: object, *args: object, **attributes: object) -> logging.LogRecord:
    made = logging.LogRecord("tests", logging.INFO, __file__, 1, msg, args, None)
    made.__dict__.update(attributes)
    return made


def test_it_masks_arguments(logged: tuple[logging.Logger, io.StringIO, Collector]) -> None:
    logger, stream, collector = logged
    logger.info("payment by %s for %s", "4111 1111 1111 1111", "1234.56")
    assert stream.getvalue() == "INFO payment by [card] for 1234.56\n"
    assert collector.records[0].msg == "payment by [card] for 1234.56"
    assert collector.records[0].args == ()


def test_it_masks_exceptions(logged: tuple[logging.Logger, io.StringIO, Collector]) -> None:
    logger, stream, collector = logged
    try:
        raise ValueError("card 4111111111111111 declined for GB82WEST12345698765432")
    except ValueError:
        logger.exception("charge failed")
    output = stream.getvalue()
    assert "4111111111111111" not in output
    assert "GB82WEST" not in output
    assert "[card]" in output
    assert "[iban]" in output
    assert output.startswith("ERROR charge failed\nTraceback (most recent call last):\n")
    assert 'raise ValueError("card [card] declined for [iban]")' in output
    assert "ValueError: card [card] declined for [iban]" in output
    assert collector.records[0].exc_info is None


def test_it_masks_chained_exceptions(logged: tuple[logging.Logger, io.StringIO, Collector]) -> None:
    logger, stream, _ = logged
    try:
        try:
            raise KeyError("ssn 078-05-1120")
        except KeyError as error:
            raise RuntimeError("lookup failed") from error
    except RuntimeError:
        logger.error("failed", exc_info=True)
    assert "078-05-1120" not in stream.getvalue()
    assert "KeyError: 'ssn [national-id]'" in stream.getvalue()


def test_it_masks_a_preformatted_exception_text() -> None:
    made = record("failed")
    made.exc_text = "Traceback...\nValueError: password=hunter2"
    MaskingFilter().filter(made)
    assert made.exc_text == "Traceback...\nValueError: password=[secret]"


def test_it_masks_extra_attributes(logged: tuple[logging.Logger, io.StringIO, Collector]) -> None:
    logger, _, collector = logged

    class Request:
        def __str__(self) -> str:
            return "<WSGIRequest: GET '/cases/?token=abc123&pan=4111111111111111'>"

    logger.info(
        "transfer",
        extra={
            "payload": {"iban": "GB82 WEST 1234 5698 7654 32", "amount": 12.5},
            "password": "hunter2",
            "status_code": 500,
            "request": Request(),
            "request_id": "0f8fad5bd9cb469fa16570867728950e",
        },
    )
    masked = vars(collector.records[0])
    assert masked["payload"] == {"iban": "[iban]", "amount": 12.5}
    assert masked["password"] == "[secret]"
    assert masked["status_code"] == 500
    assert masked["request"] == "<WSGIRequest: GET '/cases/?token=[secret]&pan=[card]'>"
    assert masked["request_id"] == "0f8fad5bd9cb469fa16570867728950e"  # the context filter's own


def test_it_masks_stack_info(logged: tuple[logging.Logger, io.StringIO, Collector]) -> None:
    logger, stream, _ = logged
    logger.info("here", stack_info=True)  # card 4111111111111111, shown in the stack's source line
    assert "Stack (most recent call last)" in stream.getvalue()
    assert "4111111111111111" not in stream.getvalue()
    assert "# card [card]" in stream.getvalue()
    made = record("x")
    made.stack_info = "Stack:\n  token=abc123"
    MaskingFilter().filter(made)
    assert made.stack_info == "Stack:\n  token=[secret]"


def test_it_is_idempotent() -> None:
    made = record("paid %s with %s", "5555555555554444", "GB82WEST12345698765432", payload={"ssn": 1})
    try:
        raise ValueError("pan 4111111111111111")
    except ValueError:
        made.exc_info = sys.exc_info()
    masking = MaskingFilter()
    masking.filter(made)
    once = dict(made.__dict__)
    assert masking.filter(made) is True
    assert made.__dict__ == once
    assert once["msg"] == "paid [card] with [iban]"
    assert once["payload"] == {"ssn": "[national-id]"}
    assert "ValueError: pan [card]" in once["exc_text"]


def test_it_survives_a_message_that_cannot_be_formatted(
    logged: tuple[logging.Logger, io.StringIO, Collector], capsys: pytest.CaptureFixture[str]
) -> None:
    logger, stream, _ = logged
    logger.info("card %s and %s", "4111111111111111")
    logger.info("amount %d", "4111111111111111")
    logger.info("still logging")
    assert stream.getvalue() == "INFO card %s and %s\nINFO amount %d\nINFO still logging\n"
    assert "Logging error" not in capsys.readouterr().err


def test_it_never_raises() -> None:
    made = record(Unprintable(), broken=Unprintable())
    assert MaskingFilter().filter(made) is True
    assert made.msg == "[unprintable]"
    assert vars(made)["broken"] == "[unprintable]"
    assert made.getMessage() == "[unprintable]"


def test_it_masks_a_message_an_earlier_formatter_rendered() -> None:
    made = record("pan %s", "4111111111111111")
    logging.Formatter().format(made)
    MaskingFilter().filter(made)
    assert made.message == "pan [card]"
    assert logging.Formatter().format(made) == "pan [card]"
