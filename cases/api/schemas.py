"""The intake API's request schema: strict, and every fault named by its field.

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
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import iso4217
import pycountry
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from caspix.crypto import blind
from caspix.crypto.cards import InvalidCardNumberError, tokenise
from caspix.masking import mask_value

_AMOUNT = re.compile(r"\A[0-9]{1,18}(?:\.[0-9]{1,4})?\Z")
_IDENTIFIER = re.compile(r"\A[\x21-\x7e]{1,128}\Z")  # printable ASCII, no space


class Strict(serializers.Serializer):  # type: ignore[type-arg]
    """A serializer that refuses fields it does not declare."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTimeField(serializers.Field):  # type: ignore[type-arg]
    """An RFC 3339 timestamp with its offset; a time without one is refused, never guessed."""

    default_error_messages = {
        "invalid": "a timestamp is RFC 3339 with its offset, e.g. 2026-11-24T10:15:00Z",
        "naive": "the timestamp has no UTC offset (add Z or +hh:mm)",
        "offset": "the UTC offset lies beyond ±14:00",
    }

    def to_internal_value(self, data: Any) -> datetime.datetime:
        if not isinstance(data, str) or len(data) > 40:
            self.fail("invalid")
        try:
            value = datetime.datetime.fromisoformat(data)
        except ValueError:
            self.fail("invalid")
        offset = value.utcoffset()
        if offset is None:
            self.fail("naive")
        if abs(offset) > datetime.timedelta(hours=14):  # no zone is further from UTC
            self.fail("offset")
        return value.astimezone(datetime.UTC)

    def to_representation(self, value: datetime.datetime) -> str:
        return value.isoformat()


@extend_schema_field({"type": "string", "pattern": _AMOUNT.pattern.replace("\\A", "^").replace("\\Z", "$")})
class AmountField(serializers.Field):  # type: ignore[type-arg]
    default_error_messages = {
        "invalid": 'an amount is a string of digits with at most 4 decimals, e.g. "120.50"',
        "positive": "an amount is greater than zero",
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if not isinstance(data, str) or not _AMOUNT.match(data):
            self.fail("invalid")
        try:
            value = Decimal(data)
        except InvalidOperation:
            self.fail("invalid")
        if value <= 0:
            self.fail("positive")
        return value

    def to_representation(self, value: Decimal) -> str:
        return str(value)


class CurrencyField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_length=3, max_length=3, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        code = super().to_internal_value(data)
        if minor_units(code) is None:
            raise serializers.ValidationError("not an ISO 4217 currency with minor units")
        return code


def minor_units(code: str) -> int | None:
    """The ISO 4217 minor units of a currency, or None for an unknown code or one without any."""
    if not re.fullmatch(r"[A-Z]{3}", code):
        return None
    try:
        currency = iso4217.Currency(code)
    except ValueError:
        return None
    return currency.exponent


class CountryField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_length=2, max_length=2, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        code = super().to_internal_value(data)
        if not re.fullmatch(r"[A-Z]{2}", code) or pycountry.countries.get(alpha_2=code) is None:
            raise serializers.ValidationError("not an ISO 3166-1 alpha-2 country code")
        return code


class IdentifierField(serializers.CharField):
    """Text that a blind index of ``kind`` must be able to normalise."""

    def __init__(self, kind: blind.Kind, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value:
            try:
                blind.normalise(self.kind, value)
            except blind.NormalisationError as error:
                raise serializers.ValidationError(str(error)) from None
        return value


class SubjectSchema(Strict):
    customer_id = IdentifierField(blind.Kind.CUSTOMER_ID, max_length=64)
    name = IdentifierField(blind.Kind.NAME, max_length=200, required=False)
    national_id = IdentifierField(blind.Kind.NATIONAL_ID, max_length=32, required=False)
    date_of_birth = serializers.DateField(required=False, input_formats=["iso-8601"])
    country = CountryField(required=False)


class AccountSchema(Strict):
    number = IdentifierField(blind.Kind.ACCOUNT_NUMBER, max_length=34)
    currency = CurrencyField(required=False)


class CounterpartySchema(Strict):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    account = IdentifierField(blind.Kind.ACCOUNT_NUMBER, max_length=34, required=False)
    country = CountryField(required=False)


class TransactionSchema(Strict):
    external_id = serializers.RegexField(_IDENTIFIER, required=False)
    occurred_at = AwareDateTimeField()
    amount = AmountField()
    currency = CurrencyField()
    direction = serializers.ChoiceField(choices=["debit", "credit"])
    channel = serializers.ChoiceField(
        choices=[
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
    )
    account = IdentifierField(blind.Kind.ACCOUNT_NUMBER, max_length=34, required=False)
    counterparty = CounterpartySchema(required=False)
    card_number = serializers.CharField(max_length=32, required=False, write_only=True)
    card_token = serializers.RegexField(r"\A[0-9a-z_]{6,64}\Z", required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        units = minor_units(attrs["currency"])
        exponent = attrs["amount"].as_tuple().exponent
        if units is not None and isinstance(exponent, int) and -exponent > units:
            raise serializers.ValidationError({"amount": [f"{attrs['currency']} has {units} decimals at most"]})
        attrs["minor_units"] = units
        if "card_number" in attrs and "card_token" in attrs:
            raise serializers.ValidationError({"card_token": ["give card_number or card_token, not both"]})
        if "card_number" in attrs:
            try:
                card = tokenise(attrs.pop("card_number"))
            except InvalidCardNumberError as error:
                raise serializers.ValidationError({"card_number": [str(error)]}) from None
            attrs["card_token"], attrs["card_last_four"] = card.token, card.last_four
        return attrs


class AlertSchema(Strict):
    external_id = serializers.RegexField(_IDENTIFIER)
    scenario = serializers.RegexField(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}\Z")
    score = serializers.DecimalField(max_digits=7, decimal_places=2, min_value=Decimal(0), required=False)
    occurred_at = AwareDateTimeField()
    subject = SubjectSchema()
    accounts: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=AccountSchema(), required=False, max_length=20
    )
    transactions: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=TransactionSchema(), required=False, max_length=200
    )
    raw = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        named = {blind.normalise(blind.Kind.ACCOUNT_NUMBER, a["number"]) for a in attrs.get("accounts", [])}
        faults: list[dict[str, list[str]]] = []
        for transaction in attrs.get("transactions", []):
            account = transaction.get("account")
            unknown = account and blind.normalise(blind.Kind.ACCOUNT_NUMBER, account) not in named
            faults.append({"account": ["not one of the alert's accounts"]} if unknown else {})
        if any(faults):
            raise serializers.ValidationError({"transactions": faults})
        return attrs


def kept_payload(attrs: dict[str, Any]) -> dict[str, Any]:
    """What is kept (encrypted) as the alert's payload: the validated alert, card numbers
    tokenised, and ``raw`` with card numbers, IBANs, national ids and secrets masked."""
    kept = dict(attrs)
    if "raw" in kept:
        kept["raw"] = mask_value(kept["raw"])
    return kept
