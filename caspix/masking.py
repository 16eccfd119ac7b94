"""Masking of card numbers, IBANs, national ids and secrets in log output.

A bank's logs are read by more people, kept longer and copied to more places than its
database, so they must never hold a customer's card number, account number or national id,
nor any credential. :class:`MaskingFilter` sits on every log handler and rewrites each record
(message, arguments, exception traceback, stack and the ``extra`` attributes) before it is
formatted; :func:`mask` is the text-level function behind it.

What is replaced, and by what (the label never contains a quote or a backslash, so a masked
JSON string stays valid JSON):

``[card]``
    Card numbers (PANs): 13 to 19 digits, contiguous or in groups separated by single spaces
    or hyphens, that pass the Luhn check. A run of grouped digits longer than 19 digits (say a
    date written just before a card number) is searched for the longest whole-group windows of
    13 to 19 Luhn-valid digits, and only those are replaced. A *contiguous* run of 20 or more
    digits is left alone: it is some other identifier, and masking a 16-digit slice of it would
    be a guess. Digits that fail the Luhn check (amounts, sequence numbers, most timestamps)
    are kept. Letters around the digits do not protect them: ``ref4111111111111111`` is masked.
``[iban]``
    IBANs (ISO 13616): country code, check digits and 11 to 30 letters or digits, contiguous or
    in groups of four separated by single spaces, any case; masked only when the mod-97 check
    holds, so words that merely look like one survive.
``[national-id]``
    US social security numbers (``123-45-6789``), UK national insurance numbers (``AB123456C``,
    spaces allowed, with HMRC's letter rules), and the value of any key naming a national id
    (``national_id``, ``ssn``, ``nino``, ``tax_id``, ``passport``, ``id_number``...).
``[dob]``
    The value of a ``dob``, ``date_of_birth`` or ``birth_date`` key.
``[secret]``
    The value of any key naming a secret (``password``, ``passwd``, ``pwd``, ``secret``,
    ``token``, ``api_key``, ``access_key``, ``private_key``, ``client_secret``,
    ``authorization``, ``cookie``, ``session``, ``csrftoken``, ``credential``, ``pin``,
    ``otp``, ``cvv``...; with any prefix or suffix, as in ``x_api_key`` or ``CASPIX_SECRET_KEY``);
    the credentials of ``Authorization: Bearer ...`` / ``Basic ...`` headers (the scheme is
    kept) and of a free-standing ``Bearer ...`` token; PEM private key blocks (the BEGIN and
    END lines are kept); JSON Web Tokens.
``[credentials]``
    The user and password of a URL (``postgres://[credentials]@db/caspix``); the scheme, host
    and path are kept. Any user part is masked, password or not, since tokens are often passed
    as the user name.

Keys are recognised case-insensitively in the forms ``key=value``, ``key: value``,
``"key": "value"``, ``'key': 'value'`` (JSON, Python reprs, headers, query strings and
``str()`` of keyword arguments), and in JSON embedded in a JSON string (``\\"key\\": ...``).
The key and the punctuation around the value are kept; a bare value after a quoted key (a
JSON number, a repr such as ``UUID('...')``) is replaced by a quoted label so JSON stays
valid. ``null``/``None``/``true``/``false`` and empty strings are kept: they reveal nothing.
An unquoted value ends at white space or at one of ``, ; & ' " < > ) } ] \\``, so only the
first word of an unquoted multi-word secret is masked (a date such as ``1 Jan 1990`` is taken
whole); list values (``key=[...]``) are not masked as a whole, though card numbers and the like
inside them still are. :func:`mask_value` knows more: below a sensitive dict key or ``extra``
attribute name, every string and integer is replaced.

Masking is heuristic and errs toward masking too much: ``session_count=3`` becomes
``session_count=[secret]``, ``invalid token: bad signature`` loses ``bad``, and source lines in
tracebacks such as ``password = form.cleaned_data[...]`` come out as ``password = [secret]...``.

All patterns are compiled once; none nests unbounded quantifiers over the same characters, so
none can backtrack catastrophically. Text with neither a digit nor any of the key words is
returned at once; other text is masked pass after pass until nothing changes (one replacement
can expose text to another pattern), so masking masked text is a no-op.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

__all__ = ["MaskingFilter", "mask", "mask_value"]

CARD = "[card]"
IBAN = "[iban]"
NATIONAL_ID = "[national-id]"
DOB = "[dob]"
SECRET = "[secret]"  # noqa: S105 (the label, not a secret)
CREDENTIALS = "[credentials]"

# --- Keys naming sensitive values ---------------------------------------------------------------
# Patterns marked "lowered" run on an ASCII-lower-cased copy of the text (same length, so match
# positions apply to the original): far faster than re.IGNORECASE over these alternations.
# "Long" key words are recognised anywhere inside a key (mypassword, csrftoken, CASPIX_SECRET_KEY);
# "short" ones only with no letter on either side (so "adobe" and "spinner" are not keys).
_CREDENTIAL_LONG = (
    r"pass(?:word|wd|phrase)|secret|token|api[-_]?key|access[-_]?key|private[-_]?key"
    r"|authori[sz]ation|cookie|session|credential"
)
_CREDENTIAL_SHORT = r"pwd|pin|otp|cvv2?|cvc2?"
_NID_LONG = r"national[-_]?id|passport"
_NID_SHORT = r"ssn|nino|tax[-_]?id|id[-_]?number"
_DOB_LONG = r"date[-_]?of[-_]?birth|birth[-_]?date"
_DOB_SHORT = r"dob"
# Substrings one of which every key word above contains (a cheap test before the key/value pass).
_KEY_HINTS = (
    "pass", "secret", "token", "key", "authori", "cookie", "session", "credential", "pwd", "pin",
    "otp", "cvv", "cvc", "national", "ssn", "nino", "tax", "number", "birth", "dob",
)  # fmt: skip
# Text with no digit and none of these is returned at once: every pattern needs one of them.
_TRIGGERS = (*_KEY_HINTS, "://", "eyj", "-----begin", "bearer")


def _keyword(long: str, short: str) -> str:
    return rf"{long}|(?<![a-z])(?:{short})(?![a-z])"


_KEY_CLASS_RE = re.compile(  # lowered
    rf"(?P<dob>{_keyword(_DOB_LONG, _DOB_SHORT)})"
    rf"|(?P<nid>{_keyword(_NID_LONG, _NID_SHORT)})"
    rf"|(?P<secret>{_keyword(_CREDENTIAL_LONG, _CREDENTIAL_SHORT)})"
)
_LABEL_BY_GROUP = {"dob": DOB, "nid": NATIONAL_ID, "secret": SECRET}

_ANY_KEYWORD = "|".join(
    _keyword(long, short)
    for long, short in ((_DOB_LONG, _DOB_SHORT), (_NID_LONG, _NID_SHORT), (_CREDENTIAL_LONG, _CREDENTIAL_SHORT))
)
_KEYWORD_INITIALS = "abcdinopst"  # the first letters of the key words above
_LITERAL = r"(?!(?:null|none|true|false)(?![a-z0-9_]))"
# "1 Jan 1990", "January 1 1990": a date of birth written with spaces is masked whole.
_SPACED_DATE = r"[0-9]{1,2}[ ][a-z]{3,9}\.?[ ][0-9]{2,4}(?![0-9])|[a-z]{3,9}\.?[ ][0-9]{1,2}[ ][0-9]{4}(?![0-9])"

# The match starts at the key word, not at the start of the key: whatever precedes it in the key
# ("x_" in "x_api_key") is kept anyway, and starting there spares a search at every position.
_KEY_VALUE_RE = re.compile(  # lowered
    rf"(?=[{_KEYWORD_INITIALS}])(?P<kw>{_ANY_KEYWORD})[a-z0-9_.\-]{{0,100}}+"
    r"(?P<kq>\\?[\"'])?"  # the closing quote of "key", 'key' or \"key\"
    r"[ \t]*(?::|=(?!=))[ \t]*"
    # An authentication scheme is kept; atomic so that "Bearer [secret]" is left as it is.
    r"(?>(?:(?:bearer|basic|digest|token|negotiate)[ \t]+)?)"
    r"(?:"
    r"\"(?P<dq>(?:[^\"\\\r\n]|\\.)*)\"?"
    r"|'(?P<sq>(?:[^'\\\r\n]|\\.)*)'?"
    r"|\\\"(?P<eq>(?:[^\"\\\r\n]|\\[^\"\r\n])*)(?:\\\")?"
    rf"|(?(kq){_LITERAL}(?![\s\[{{'])(?P<qv>[^,}}\]\r\n\\\"]+)"
    rf"|{_LITERAL}(?![\[{{])(?P<bv>{_SPACED_DATE}|[^\s,;&'\"<>)}}\]\\]+))"
    r")"
)

# --- Structured secrets ----------------------------------------------------------------------------
_PEM_RE = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?)-----"
    r".*?"
    r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_JWT_RE = re.compile(r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{2,}(?:\.[A-Za-z0-9_\-]*){1,3}")
_URL_CREDENTIALS_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)[^\s/?#\"'<>]+@")
_BEARER_RE = re.compile(r"bearer(?<![a-z0-9]bearer)(?P<space>[ \t]+)(?P<token>[a-z0-9._~+/\-]{8,}=*)")  # lowered

# --- Numbers -----------------------------------------------------------------------------------------
# Each pattern starts with a character class and checks what precedes it by a look-behind, which
# lets the regex engine skip quickly to candidate positions.
_DIGIT_RE = re.compile(r"[0-9]")
# A maximal run of digits joined by single spaces or hyphens, with at least 13 digits.
_DIGIT_RUN_RE = re.compile(r"[0-9](?<![0-9]{2})(?=(?:[ \-]?[0-9]){12})[0-9]*(?:[ \-][0-9]+)*")
_RUN_SPLIT_RE = re.compile(r"([ \-])")
_IBAN_RE = re.compile(
    r"[A-Za-z](?<![A-Za-z0-9][A-Za-z])[A-Za-z][0-9]{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}(?:[ ]?[A-Za-z0-9]{1,4})?"
    r"(?![A-Za-z0-9])"
)
_SSN_RE = re.compile(r"[0-9](?<![0-9]{2})(?<![0-9]-[0-9])[0-9]{2}-[0-9]{2}-[0-9]{4}(?![0-9])(?!-[0-9])")
_NINO_RE = re.compile(  # lowered; HMRC: no D F I Q U V first, no D F I O Q U V second, some pairs unused
    r"[a-ceghj-pr-tw-z](?<![a-z0-9].)[a-ceghj-npr-tw-z](?<!bg|gb|kn|nk|nt|tn|zz)"
    r" ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[a-d](?![a-z0-9])"
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    """``text`` lower-cased, same length (``str.lower`` may lengthen a few non-ASCII letters)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _mask_digit_run(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = run.replace(" ", "").replace("-", "")
    if len(digits) <= 19 and _luhn_ok(digits):
        return CARD
    if len(digits) == len(run):  # one contiguous run: 20 digits or more, or not Luhn-valid
        return run
    parts = _RUN_SPLIT_RE.split(run)
    groups, seps = parts[0::2], parts[1::2]
    # Every whole-group window of 13 to 19 Luhn-valid digits; the longest (then leftmost) win.
    windows: list[tuple[int, int, int]] = []
    for first in range(len(groups)):
        count = 0
        for last in range(first, len(groups)):
            count += len(groups[last])
            if count > 19:
                break
            if count >= 13 and _luhn_ok("".join(groups[first : last + 1])):
                windows.append((-count, first, last))
    if not windows:
        return run
    windows.sort()
    masked_until: dict[int, int] = {}
    covered = [False] * len(groups)
    for _, first, last in windows:
        if not any(covered[first : last + 1]):
            covered[first : last + 1] = [True] * (last + 1 - first)
            masked_until[first] = last
    out: list[str] = []
    index = 0
    while index < len(groups):
        if index in masked_until:
            out.append(CARD)
            index = masked_until[index] + 1
        else:
            out.append(groups[index])
            index += 1
        if index < len(groups):
            out.append(seps[index - 1])
    return "".join(out)


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34 or not 2 <= int(compact[2:4]) <= 98:
        return False
    remainder = 0
    for char in compact[4:] + compact[:4]:
        value = int(char, 36)  # "0"-"9" -> 0-9, "A"-"Z" -> 10-35
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1


def _mask_iban(match: re.Match[str]) -> str:
    chunks = match.group(0).split(" ")
    # A word of four letters or digits after a grouped IBAN may have been taken for a group.
    for end in range(len(chunks), 0, -1):
        if _iban_ok("".join(chunks[:end]).upper()):
            return " ".join([IBAN, *chunks[end:]])
    return match.group(0)


def _mask_pem(match: re.Match[str]) -> str:
    label = match.group("label")
    return f"-----BEGIN {label}-----{SECRET}-----END {label}-----"


def _label_for_lowered_key(key: str) -> str | None:
    found = _KEY_CLASS_RE.search(key)
    return None if found is None else _LABEL_BY_GROUP[found.lastgroup or "secret"]


def _mask_key_value(match: re.Match[str], text: str) -> str:
    whole = text[match.start() : match.end()]
    label = _label_for_lowered_key(match.group("kw")) or SECRET
    start = match.start()
    for name in ("dq", "sq", "eq", "bv"):
        value = match.group(name)
        if value is not None:
            if not value:
                return whole
            return whole[: match.start(name) - start] + label + whole[match.end(name) - start :]
    # A bare value after a quoted key (a JSON number, a repr): replaced by a quoted label.
    value = match.group("qv") or ""
    kept = value.rstrip()
    quote = text[match.start("kq") : match.end("kq")] or '"'
    return whole[: match.start("qv") - start] + quote + label + quote + value[len(kept) :]


def _mask_bearer(match: re.Match[str], text: str) -> str:
    token = text[match.start("token") : match.end("token")]
    if token.isalpha():  # "Bearer authentication" is prose, not a token
        return text[match.start() : match.end()]
    return text[match.start() : match.end("space")] + SECRET


def _sub_lowered(pattern: re.Pattern[str], text: str, replace: Callable[[re.Match[str], str], str]) -> str:
    """``pattern.sub`` run on the lower-cased text, building the result from the original."""
    out: list[str] = []
    position = 0
    for match in pattern.finditer(_lower(text)):
        out.append(text[position : match.start()])
        out.append(replace(match, text))
        position = match.end()
    if not out:
        return text
    out.append(text[position:])
    return "".join(out)


def _mask_once(text: str) -> str:
    # Order matters: structured secrets first (so that digits inside a JWT or a URL do not break
    # them up), IBANs before card numbers (an IBAN's digits may pass the Luhn check), numbers
    # before key/value pairs (so "token: 4111 1111 1111 1111" loses all four groups).
    has_digit = _DIGIT_RE.search(text) is not None
    if not has_digit and not any(word in _lower(text) for word in _TRIGGERS):
        return text
    if "-----BEGIN" in text:
        text = _PEM_RE.sub(_mask_pem, text)
    if "eyJ" in text:
        text = _JWT_RE.sub(SECRET, text)
    if "://" in text:
        text = _URL_CREDENTIALS_RE.sub(rf"\g<scheme>{CREDENTIALS}@", text)
    if has_digit:
        text = _IBAN_RE.sub(_mask_iban, text)
        text = _DIGIT_RUN_RE.sub(_mask_digit_run, text)
        if "-" in text:
            text = _SSN_RE.sub(NATIONAL_ID, text)
        text = _sub_lowered(_NINO_RE, text, lambda _match, _text: NATIONAL_ID)
    lowered = _lower(text)
    if any(word in lowered for word in _KEY_HINTS):
        text = _sub_lowered(_KEY_VALUE_RE, text, _mask_key_value)
    if "bearer" in lowered:
        text = _sub_lowered(_BEARER_RE, text, _mask_bearer)
    return text


_MAX_PASSES = 4


def mask(text: str) -> str:
    """``text`` with card numbers, IBANs, national ids and secrets replaced (see the module doc).

    The patterns are applied again until nothing changes, since one replacement can expose text
    to another pattern (``a://password://x@`` takes two passes): masking is idempotent, and
    masking a line that holds nothing sensitive costs a single pass.
    """
    for _ in range(_MAX_PASSES):
        masked = _mask_once(text)
        if masked == text:
            break
        text = masked
    return text


_MAX_DEPTH = 20


def _label_for_key(key: object) -> str | None:
    """The label for the values of a dict key or ``extra`` attribute, if it names something sensitive."""
    return _label_for_lowered_key(_lower(key)) if isinstance(key, str) else None


def _mask_value(value: object, label: str | None, depth: int, seen: frozenset[int]) -> object:
    # ``label`` is set below a key that names a secret or a national id: every leaf is replaced.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if label is None else label
    if isinstance(value, str):
        if label is not None:
            return value and label
        return mask(value)
    if isinstance(value, dict | list | tuple):
        if depth >= _MAX_DEPTH or id(value) in seen:
            return label or mask(str(value))
        seen = seen | {id(value)}
        if isinstance(value, dict):
            return {
                _mask_value(key, None, depth + 1, seen): _mask_value(
                    item, label or _label_for_key(key), depth + 1, seen
                )
                for key, item in value.items()
            }
        items = [_mask_value(item, label, depth + 1, seen) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return label or mask(str(value))


def mask_value(value: object) -> object:
    """``value`` with every string in it masked.

    Strings are masked with :func:`mask`; dicts, lists and tuples are rebuilt with their items
    (and string dict keys) masked; below a dict key that names a secret, a national id or a date
    of birth, every string and integer is replaced by the label. ``None``, booleans, integers
    and floats pass unchanged; any other object becomes its masked ``str()``.
    """
    return _mask_value(value, None, 0, frozenset())


def _mask_attribute(name: str, value: object) -> object:
    return _mask_value(value, _label_for_key(name), 0, frozenset())


_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "user_id",
}
_UNPRINTABLE = "[unprintable]"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return _UNPRINTABLE


class MaskingFilter(logging.Filter):
    """Masks every part of a record a formatter may print; put it on each handler.

    The message is rendered and masked (``args`` become empty), an exception is rendered into
    ``exc_text`` and masked (``exc_info`` is dropped so no formatter renders the raw traceback
    again), ``stack_info`` and every ``extra`` attribute are masked. It never drops a record,
    never raises, and applying it twice changes nothing more.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for step, fallback in (
            (self._mask_message, self._drop_message),
            (self._mask_exception, self._drop_exception),
            (self._mask_stack, self._drop_stack),
            (self._mask_extras, None),
        ):
            try:
                step(record)
            except Exception:
                if fallback is not None:
                    fallback(record)
        return True

    @staticmethod
    def _mask_message(record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # mismatched arguments: keep the template, masked
            message = _safe_str(record.msg)
        record.msg = mask(message)
        record.args = ()
        if "message" in record.__dict__:  # rendered by an earlier formatter
            record.message = record.msg

    @staticmethod
    def _drop_message(record: logging.LogRecord) -> None:
        record.msg = _UNPRINTABLE
        record.args = ()
        record.__dict__.pop("message", None)

    @staticmethod
    def _mask_exception(record: logging.LogRecord) -> None:
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = mask(text)
        elif record.exc_text:
            record.exc_text = mask(record.exc_text)

    @staticmethod
    def _drop_exception(record: logging.LogRecord) -> None:
        if record.exc_info or record.exc_text:
            record.exc_info = None
            record.exc_text = _UNPRINTABLE

    @staticmethod
    def _mask_stack(record: logging.LogRecord) -> None:
        if record.stack_info:
            record.stack_info = mask(record.stack_info)

    @staticmethod
    def _drop_stack(record: logging.LogRecord) -> None:
        record.stack_info = None

    @staticmethod
    def _mask_extras(record: logging.LogRecord) -> None:
        for name, value in list(record.__dict__.items()):
            if name in _STANDARD_ATTRIBUTES:
                continue
            try:
                record.__dict__[name] = _mask_attribute(name, value)
            except Exception:
                record.__dict__[name] = _UNPRINTABLE
