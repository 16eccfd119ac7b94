"""The forms of a report: starting one, the draft (built from the draft and the FIU's code lists),
the lead's decision, and what the FIU said.

The draft form's field names are those of the draft's parts (``subject-birthdate``,
``account-<id>-branch``), so that each fault of the gate (``reporting/drafting.py``) names the
field it belongs to and the page puts it there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from django import forms
from django.utils import timezone

from cases.models import Transaction
from reporting import drafting
from reporting.goaml import transliterate
from reporting.models import FiuProfile, FiuSchema, Report

EXCLUSION_LIMIT = 500  # transactions listed one by one for leaving out; beyond, all are reported
NARRATIVE_MAX = 4000


class DateInput(forms.DateInput):
    input_type = "date"


class StartForm(forms.Form):
    profile = forms.ModelChoiceField(
        queryset=FiuProfile.objects.none(), label="FIU", empty_label=None, help_text="Who the report goes to."
    )
    report_code = forms.CharField(
        max_length=10, initial="STR", label="Kind of report", help_text="A code of the FIU's list, e.g. STR or SAR."
    )
    suspicion_on = forms.DateField(
        widget=DateInput, label="Suspicion formed on", help_text="The deadline counts from this day."
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["profile"]
        if not isinstance(field, forms.ModelChoiceField):  # pragma: no cover (declared above)
            raise TypeError("the profile field chooses a model")
        field.queryset = FiuProfile.objects.restrict(user, "view").filter(is_active=True, schemas__is_current=True)
        self.fields["suspicion_on"].initial = timezone.localdate()


def _codes(schema: FiuSchema, name: str, blank: bool = True) -> list[tuple[str, str]]:
    choices = [(code, f"{code} — {label}" if label else code) for code, label in schema.codes(name)]
    return ([("", "—")] if blank else []) + choices


def name_key(original: str) -> str:
    return hashlib.sha256(original.encode()).hexdigest()[:12]


class DraftForm(forms.Form):
    """Every part of a draft, as fields; :meth:`content` is the draft they make."""

    def __init__(
        self, *args: Any, report: Report, content: Mapping[str, Any], schema: FiuSchema, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.report, self.saved, self.schema = report, content, schema
        countries = _codes(schema, "country_type")
        self.sections: dict[str, list[str]] = {}
        for narrative, height in (("reason", 5), ("action", 3)):
            self._add(
                "report",
                f"report-{narrative}",
                forms.CharField(
                    widget=forms.Textarea(attrs={"rows": height}),
                    max_length=NARRATIVE_MAX,
                    required=False,
                    label=drafting.LABELS[narrative],
                    initial=content[narrative],
                ),
            )
        self._add(
            "report",
            "report-indicators",
            forms.MultipleChoiceField(
                choices=_codes(schema, "report_indicator_type", blank=False),
                required=False,
                label=drafting.LABELS["indicators"],
                initial=content["indicators"],
                widget=forms.SelectMultiple(attrs={"size": 8}),
            ),
        )
        self._add(
            "report",
            "report-suspicion_on",
            forms.DateField(widget=DateInput, label="Suspicion formed on", initial=report.suspicion_on),
        )
        location = content.get("location", {})
        for name in drafting.LOCATION_FIELDS:
            self._add("location", f"location-{name}", self._field(name, location.get(name, ""), countries))
        subject = content["subject"]
        self._add(
            "subject",
            "subject-kind",
            forms.ChoiceField(
                choices=[("person", "A person"), ("entity", "An entity (company)")],
                label="The customer is",
                initial=subject.get("kind", "person"),
            ),
        )
        for name in drafting.PERSON_FIELDS:
            self._add("subject", f"subject-{name}", self._field(name, subject.get(name, ""), countries))
        for name in drafting.ENTITY_FIELDS:
            self._add("entity", f"entity-{name}", self._field(name, subject["entity"].get(name, ""), countries))
        self._add(
            "signatory",
            "signatory-role",
            self._code("role", "entity_person_role_type", subject["signatory"].get("role", "")),
        )
        for name in drafting.PERSON_FIELDS:
            self._add(
                "signatory", f"signatory-{name}", self._field(name, subject["signatory"].get(name, ""), countries)
            )
        self.accounts = list(content["accounts"])
        for key, held in content["accounts"].items():
            for name in drafting.ACCOUNT_FIELDS:
                self._add(f"account-{key}", f"account-{key}-{name}", self._field(name, held.get(name, ""), countries))
        self.counterparties = list(content["counterparties"])
        for key, party in content["counterparties"].items():
            for name in drafting.COUNTERPARTY_FIELDS:
                self._add(f"party-{key}", f"party-{key}-{name}", self._field(name, party.get(name, ""), countries))
        settings = content["transactions"]
        self._add(
            "transactions",
            "transactions-location",
            forms.CharField(
                max_length=255, required=False, label=drafting.LABELS["location"], initial=settings.get("location", "")
            ),
        )
        self._add(
            "transactions",
            "transactions-transmode_comment",
            forms.CharField(
                max_length=50,
                required=False,
                label=drafting.LABELS["transmode_comment"],
                initial=settings.get("transmode_comment", ""),
            ),
        )
        for side in ("from_funds_code", "to_funds_code"):
            self._add("transactions", f"transactions-{side}", self._code(side, "funds_type", settings.get(side, "")))
        for channel, code in settings.get("transmodes", {}).items():
            label = Transaction.Channel(channel).label if channel in Transaction.Channel.values else channel
            field = self._code("transmodes", "conduction_type", code)
            field.label = f"{drafting.LABELS['transmodes']}: {label}"
            self._add("transactions", f"transactions-transmode-{channel}", field)
            funds = settings.get("funds", {}).get(channel, {})
            for side, words in (("from", "paying"), ("to", "receiving")):
                field = self._code(f"{side}_funds_code", "funds_type", funds.get(side, ""))
                field.label = f"Funds type, {words} side: {label} (blank: the default)"
                self._add("transactions", f"transactions-funds-{channel}-{side}", field)
        for currency, rate in settings.get("rates", {}).items():
            self._add(
                "transactions",
                f"transactions-rate-{currency}",
                forms.DecimalField(
                    min_value=0,
                    max_digits=20,
                    decimal_places=13,
                    required=False,
                    initial=rate or None,
                    label=f"1 {currency} in {report.profile.currency_code_local}",
                ),
            )
        rows = list(
            Transaction.objects.filter(alert__case=report.case_id).order_by("occurred_at", "pk")[: EXCLUSION_LIMIT + 1]
        )
        self.too_many = len(rows) > EXCLUSION_LIMIT
        if not self.too_many:
            choices = [
                (str(tx.pk), f"{tx.occurred_at:%Y-%m-%d %H:%M} {tx.currency} {tx.amount} {tx.get_direction_display()}")
                for tx in rows
            ]
            self._add(
                "transactions",
                "transactions-excluded",
                forms.MultipleChoiceField(
                    choices=choices,
                    required=False,
                    widget=forms.CheckboxSelectMultiple,
                    label="Leave out",
                    initial=settings.get("excluded", []),
                ),
            )
        self.names: dict[str, transliterate.Transliteration] = {}
        for found in drafting.names_to_confirm(content, schema):
            key = name_key(found.original)
            self.names[key] = found
            confirmed = content.get("names", {}).get(found.original)
            self._add(
                "names",
                f"names-{key}",
                forms.CharField(
                    max_length=200,
                    required=False,
                    label=found.original,
                    initial=confirmed or "",
                    help_text=f"Suggested: {found.value}",
                ),
            )

    def _add(self, section: str, name: str, field: forms.Field) -> None:
        self.fields[name] = field
        self.sections.setdefault(section, []).append(name)

    def _code(self, name: str, code_list: str, value: str) -> forms.ChoiceField:
        return forms.ChoiceField(
            choices=_codes(self.schema, code_list), required=False, label=drafting.LABELS.get(name, name), initial=value
        )

    def _field(self, name: str, value: Any, countries: list[tuple[str, str]]) -> forms.Field:
        label = drafting.LABELS.get(name, name.replace("_", " ").capitalize())
        lists = {
            "gender": "gender_type",
            "id_type": "identifier_type",
            "phone_type": "contact_type",
            "phone_communication": "communication_type",
            "address_type": "contact_type",
            "incorporation_legal_form": "legal_form_type",
            "personal_account_type": "account_type",
            "status_code": "account_status_type",
            "signatory_role": "account_person_role_type",
            "currency_code": "currency_type",
        }
        if name in lists:
            return self._code(name, lists[name], value)
        if name in (
            "nationality1",
            "residence",
            "country_code",
            "id_issue_country",
            "incorporation_country_code",
            "country",
        ):
            return forms.ChoiceField(choices=countries, required=False, label=label, initial=value)
        if name in ("birthdate", "opened", "incorporation_date", "id_issue_date", "id_expiry_date"):
            return forms.DateField(widget=DateInput, required=False, label=label, initial=value or None)
        if name == "kind":
            return forms.ChoiceField(
                choices=[("person", "A person"), ("entity", "An entity")], label=label, initial=value or "person"
            )
        return forms.CharField(max_length=255, required=False, label=label, initial=value)

    def bound_sections(self) -> dict[str, list[forms.BoundField]]:
        return {section: [self[name] for name in names] for section, names in self.sections.items()}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = timezone.localdate()
        for name in ("subject-birthdate", "signatory-birthdate", "report-suspicion_on"):
            if data.get(name) and data[name] > today:
                self.add_error(name, "A date in the future is not possible here.")
        pattern = next((p for p in (drafting.name_pattern(self.schema, e) for e in drafting.NAME_ELEMENTS) if p), None)
        for key in self.names:
            chosen = str(data.get(f"names-{key}", "")).strip()
            if chosen and pattern and not transliterate.matches(pattern, chosen):
                self.add_error(
                    f"names-{key}", "The FIU still refuses some of these characters: write it in the letters it takes."
                )
        return data

    def content(self) -> dict[str, Any]:
        """The draft these fields make (after :meth:`is_valid`)."""
        data = self.cleaned_data

        def text(name: str) -> str:
            value = data.get(name)
            if value is None:
                return ""
            if hasattr(value, "isoformat"):
                return str(value.isoformat())
            return str(value).strip()

        saved = self.saved
        subject: dict[str, Any] = {name: text(f"subject-{name}") for name in drafting.PERSON_FIELDS}
        subject["kind"] = text("subject-kind") or "person"
        subject["entity"] = {name: text(f"entity-{name}") for name in drafting.ENTITY_FIELDS}
        subject["signatory"] = {name: text(f"signatory-{name}") for name in drafting.PERSON_FIELDS}
        subject["signatory"]["role"] = text("signatory-role")
        settings = dict(saved["transactions"])
        settings["location"] = text("transactions-location")
        settings["transmode_comment"] = text("transactions-transmode_comment")
        settings["from_funds_code"] = text("transactions-from_funds_code")
        settings["to_funds_code"] = text("transactions-to_funds_code")
        settings["transmodes"] = {
            channel: text(f"transactions-transmode-{channel}") for channel in settings.get("transmodes", {})
        }
        settings["rates"] = {currency: text(f"transactions-rate-{currency}") for currency in settings.get("rates", {})}
        settings["funds"] = {
            channel: {side: text(f"transactions-funds-{channel}-{side}") for side in ("from", "to")}
            for channel in settings.get("transmodes", {})
        }
        if not self.too_many:
            settings["excluded"] = sorted(data.get("transactions-excluded", []))
        names = dict(saved.get("names", {}))
        for key, found in self.names.items():
            chosen = text(f"names-{key}")
            if chosen:
                names[found.original] = chosen
            else:
                names.pop(found.original, None)
        return {
            "reason": str(data.get("report-reason", "")).replace("\r\n", "\n").strip(),
            "action": str(data.get("report-action", "")).replace("\r\n", "\n").strip(),
            "indicators": list(data.get("report-indicators", [])),
            "location": {name: text(f"location-{name}") for name in drafting.LOCATION_FIELDS},
            "subject": subject,
            "accounts": {
                key: {name: text(f"account-{key}-{name}") for name in drafting.ACCOUNT_FIELDS} for key in self.accounts
            },
            "counterparties": {
                key: {name: text(f"party-{key}-{name}") for name in drafting.COUNTERPARTY_FIELDS}
                for key in self.counterparties
            },
            "transactions": settings,
            "names": names,
            "seen_until": saved.get("seen_until", ""),
        }


class AbandonForm(forms.Form):
    reason = forms.CharField(
        max_length=500, label="Why the report is abandoned", help_text="Recorded in the audit ledger."
    )


class SubmissionRequestForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, label="Note to the approver")


class SubmittedForm(forms.Form):
    fiu_ref_number = forms.CharField(max_length=255, label="FIU reference", help_text="As the FIU's system gave it.")
    submitted_on = forms.DateField(widget=DateInput, label="Submitted on")
    channel = forms.ChoiceField(choices=Report.Channel.choices, label="Channel")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["submitted_on"].initial = timezone.localdate()


class AnswerForm(forms.Form):
    outcome = forms.ChoiceField(
        choices=[("acknowledged", "Acknowledged"), ("rejected", "Rejected: back to draft")], label="The FIU's answer"
    )
    answered_on = forms.DateField(widget=DateInput, label="Answered on")
    feedback = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=NARRATIVE_MAX,
        required=False,
        label="The FIU's reason or message",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["answered_on"].initial = timezone.localdate()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("outcome") == "rejected" and not str(data.get("feedback", "")).strip():
            self.add_error("feedback", "Say why the FIU rejected the report: the analyst works from it.")
        return data
