"""The intake API's request schema: strict, and every fault named by its field.

The schema is a set of pydantic models: pydantic-core validates an alert in a few tens of
microseconds (DRF's serializers took about 600), and drf-spectacular documents the same models
(:class:`ModelExtension`), so the page and the check cannot drift apart. :func:`validate` runs
them and the checks that span fields, and reports every fault as ``{"field", "message"}`` with
the field's JSON path (``transactions[0].amount``).

Policy (``docs/API.md``):

* an unknown field is refused, at every level, except inside ``raw`` (the upstream system's own
  record of the alert, kept as it is, card numbers masked);
* amounts are JSON strings (``"120.50"``), never numbers: a float cannot carry money. They are
  positive and have no more decimals than the currency's ISO 4217 minor units;
* currencies are ISO 4217 codes with minor units (``XAU`` and the like are refused), countries
  ISO 3166-1 alpha-2 codes;
* every timestamp carries its UTC offset (``Z`` or ``+01:00``);
* identifiers are checked as their blind index will normalise them, so a value that could not be
  searched is refused here, with its field named;
* card numbers (``card_number``) are turned into a token and the last four digits at once and
  never kept; a ``card_token`` from the card platform is kept as given.
"""

from __future__ import annotations

import datetime
import functools
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, get_args

import iso4217
import pycountry
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, RootModel, WithJsonSchema
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import model_json_schema
from pydantic_core import PydanticCustomError

from caspix.crypto import blind
from caspix.crypto.cards import InvalidCardNumberError, tokenise
from caspix.masking import mask_value

AMOUNT_PATTERN = r"^[0-9]{1,18}(?:\.[0-9]{1,4})?$"
_AMOUNT = re.compile(AMOUNT_PATTERN.replace("$", r"\Z"))
_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL (PostgreSQL refuses it) and lone surrogates
Channel = Literal[
    "card_present",
    "card_not_present",
    "atm",
    "online_banking",
    "mobile",
    "branch",
    "transfer",
    "instant",
    "direct_debit",
    "other",
]
CHANNELS = get_args(Channel)

Fault = dict[str, str]


class SchemaError(Exception):
    """The document breaks the schema: every fault, each naming its field."""

    def __init__(self, faults: list[Fault]) -> None:
        super().__init__(f"{len(faults)} fault(s)")
        self.faults = faults


def _fault(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _storable(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise _fault("unstorable", "null characters and lone surrogates are not allowed")
    return value


def _identifier(kind: blind.Kind, value: str) -> str:
    """Text that a blind index of ``kind`` must be able to normalise."""
    _storable(value)
    try:
        blind.normalise(kind, value)
    except blind.NormalisationError as error:
        raise _fault("identifier", str(error)) from None
    return value


def _aware(value: Any) -> datetime.datetime:
    """An RFC 3339 timestamp with its offset; a time without one is refused, never guessed."""
    if not isinstance(value, str) or len(value) > 40:
        raise _fault("timestamp", "a timestamp is RFC 3339 with its offset, e.g. 2026-11-24T10:15:00Z")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise _fault("timestamp", "a timestamp is RFC 3339 with its offset, e.g. 2026-11-24T10:15:00Z") from None
    offset = parsed.utcoffset()
    if offset is None:
        raise _fault("timestamp", "the timestamp has no UTC offset (add Z or +hh:mm)")
    if abs(offset) > datetime.timedelta(hours=14):  # no zone is further from UTC
        raise _fault("timestamp", "the UTC offset lies beyond ±14:00")
    return parsed.astimezone(datetime.UTC)


def _date(value: Any) -> datetime.date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise _fault("date", "a date is YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise _fault("date", "not a calendar date") from None


def _amount(value: Any) -> Decimal:
    if not isinstance(value, str) or not _AMOUNT.match(value):
        raise _fault("amount", 'an amount is a string of digits with at most 4 decimals, e.g. "120.50"')
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        raise _fault("amount", 'an amount is a string of digits with at most 4 decimals, e.g. "120.50"') from None
    if amount <= 0:
        raise _fault("amount", "an amount is greater than zero")
    return amount


@functools.lru_cache(maxsize=1024)
def minor_units(code: str) -> int | None:
    """The ISO 4217 minor units of a currency, or None for an unknown code or one without any."""
    if not re.fullmatch(r"[A-Z]{3}", code):
        return None
    try:
        currency = iso4217.Currency(code)
    except ValueError:
        return None
    return currency.exponent


def _currency(code: str) -> str:
    if minor_units(code) is None:
        raise _fault("currency", "not an ISO 4217 currency with minor units")
    return code


@functools.cache
def _known_country(code: str) -> bool:
    return pycountry.countries.get(alpha_2=code) is not None


def _country(code: str) -> str:
    if not _known_country(code):
        raise _fault("country", "not an ISO 3166-1 alpha-2 country code")
    return code


CustomerId = Annotated[
    str, Field(min_length=1, max_length=64), AfterValidator(functools.partial(_identifier, blind.Kind.CUSTOMER_ID))
]
Name = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(functools.partial(_identifier, blind.Kind.NAME))
]
NationalId = Annotated[
    str, Field(min_length=1, max_length=32), AfterValidator(functools.partial(_identifier, blind.Kind.NATIONAL_ID))
]
AccountNumber = Annotated[
    str, Field(min_length=1, max_length=34), AfterValidator(functools.partial(_identifier, blind.Kind.ACCOUNT_NUMBER))
]
Text = Annotated[str, AfterValidator(_storable)]
Timestamp = Annotated[
    datetime.datetime,
    PlainValidator(_aware),
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": 40}),
]
Date = Annotated[datetime.date, PlainValidator(_date), WithJsonSchema({"type": "string", "format": "date"})]
Amount = Annotated[
    Decimal,
    PlainValidator(_amount),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "description": "positive, in the currency"}),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_currency)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$"), AfterValidator(_country)]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """An optional field is left out, never sent as null: its schema names no default."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


def optional(**constraints: Any) -> Any:
    """An optional field: absent is fine, ``null`` is refused (its type does not admit None)."""
    return Field(default=None, **constraints)


class Strict(BaseModel):
    """Refuses fields it does not declare; trims text as the API's earlier schema did."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        hide_input_in_errors=True,
        json_schema_extra=_no_null_defaults,
    )


class SubjectSchema(Strict):
    customer_id: CustomerId
    name: Name = optional()
    national_id: NationalId = optional()
    date_of_birth: Date = optional()
    country: Country = optional()


class AccountSchema(Strict):
    number: AccountNumber
    currency: Currency = optional()


class CounterpartySchema(Strict):
    name: Text = optional(max_length=200)
    account: AccountNumber = optional()
    country: Country = optional()


class TransactionSchema(Strict):
    external_id: str = optional(pattern=r"^[\x21-\x7e]{1,128}$")
    occurred_at: Timestamp
    amount: Amount
    currency: Currency
    direction: Literal["debit", "credit"]
    channel: Channel
    account: AccountNumber = optional()
    counterparty: CounterpartySchema = optional()
    card_number: Text = optional(max_length=32, description="tokenised at once, never kept")
    card_token: str = optional(pattern=r"^[0-9a-z_]{6,64}$")


class AlertSchema(Strict):
    external_id: str = Field(pattern=r"^[\x21-\x7e]{1,128}$")
    scenario: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
    score: Decimal = optional(ge=0, max_digits=7, decimal_places=2)
    occurred_at: Timestamp
    subject: SubjectSchema
    accounts: list[AccountSchema] = optional(max_length=20)
    transactions: list[TransactionSchema] = optional(max_length=200)
    raw: dict[str, Any] = optional(description="the upstream system's record, kept with card numbers masked")


class AlertBatch(RootModel[list[AlertSchema]]):
    """Alerts to keep, each checked and answered on its own."""

    root: list[AlertSchema] = Field(min_length=1)


def validate(document: Any) -> dict[str, Any]:
    """The alert as ``ingest`` takes it, or :class:`SchemaError` naming every fault.

    Checks that span fields run once every field is valid: decimals against the currency, one
    of ``card_number`` and ``card_token``, and transactions naming one of the alert's accounts.
    Card numbers become a token and the last four digits here.
    """
    try:
        attrs = AlertSchema.model_validate(document).model_dump(exclude_unset=True)
    except PydanticValidationError as error:
        raise SchemaError([_described(item) for item in error.errors(include_url=False, include_input=False)]) from None
    faults: list[Fault] = []
    named = {blind.normalise(blind.Kind.ACCOUNT_NUMBER, a["number"]) for a in attrs.get("accounts", [])}
    for index, transaction in enumerate(attrs.get("transactions", [])):
        faults += _transaction(f"transactions[{index}]", transaction, named)
    if faults:
        raise SchemaError(faults)
    return attrs


def _transaction(path: str, attrs: dict[str, Any], accounts: set[str]) -> list[Fault]:
    faults = []
    units = minor_units(attrs["currency"])
    exponent = attrs["amount"].as_tuple().exponent
    if units is not None and isinstance(exponent, int) and -exponent > units:
        faults.append({"field": f"{path}.amount", "message": f"{attrs['currency']} has {units} decimals at most"})
    attrs["minor_units"] = units
    account = attrs.get("account")
    if account and blind.normalise(blind.Kind.ACCOUNT_NUMBER, account) not in accounts:
        faults.append({"field": f"{path}.account", "message": "not one of the alert's accounts"})
    if "card_number" in attrs and "card_token" in attrs:
        faults.append({"field": f"{path}.card_token", "message": "give card_number or card_token, not both"})
    elif "card_number" in attrs:
        try:
            card = tokenise(attrs.pop("card_number"))
        except InvalidCardNumberError as error:
            faults.append({"field": f"{path}.card_number", "message": str(error)})
        else:
            attrs["card_token"], attrs["card_last_four"] = card.token, card.last_four
    return faults


_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "unknown field",
    "model_type": "a JSON object is expected here",
}


def _described(error: Any) -> Fault:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return {"field": path or "(body)", "message": _MESSAGES.get(error["type"], error["msg"])}


def kept_payload(attrs: dict[str, Any]) -> dict[str, Any]:
    """What is kept (encrypted) as the alert's payload: the validated alert, card numbers
    tokenised, and ``raw`` with card numbers, IBANs, national ids and secrets masked."""
    kept = dict(attrs)
    if "raw" in kept:
        kept["raw"] = mask_value(kept["raw"])
    return kept


class ModelExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """drf-spectacular documents these models from pydantic's own JSON Schema of what it accepts
    (its bundled extension describes what a model would serialise, which differs for requests)."""

    target_class: Any = Strict
    match_subclasses = True
    priority = 1

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return str(self.target.__name__)

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        return _json_schema(self.target, auto_schema)


class BatchExtension(ModelExtension):  # type: ignore[no-untyped-call]
    target_class = AlertBatch


def _json_schema(model: type[BaseModel], auto_schema: Any) -> dict[str, Any]:
    schema = model_json_schema(model, ref_template="#/components/schemas/{model}", mode="validation")
    for name, sub in schema.pop("$defs", {}).items():
        identity = globals().get(name, name)  # the model itself, as when it is documented directly
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name=name, type=ResolvedComponent.SCHEMA, object=identity, schema=sub
        )
        auto_schema.registry.register_on_missing(component)
    return schema
