"""The auditors' forms: what to export, for which case or which days."""

from __future__ import annotations

import datetime
import re
from typing import Any

from django import forms
from django.conf import settings

from reporting.models import Export
from reporting.report_forms import DateInput

_REFERENCE = re.compile(r"\s*(?:C-)?0*(\d{1,12})\s*", re.IGNORECASE)


class ExportForm(forms.Form):
    """A case pack names a case (its reference, ``C-000123``); every other kind names whole days
    in UTC, the last one included."""

    kind = forms.ChoiceField(choices=Export.Kind.choices, label="What to export")
    case = forms.CharField(
        required=False,
        max_length=20,
        label="Case",
        help_text="For an evidence pack of a case: its reference, e.g. C-000123.",
    )
    first_day = forms.DateField(required=False, widget=DateInput, label="From", help_text="The first day (UTC).")
    last_day = forms.DateField(required=False, widget=DateInput, label="To", help_text="The last day (UTC), included.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind == Export.Kind.CASE_PACK:
            match = _REFERENCE.fullmatch(data.get("case") or "")
            if match is None:
                self.add_error("case", "Give the case's reference, e.g. C-000123.")
            else:
                data["case_pk"] = int(match.group(1))
        elif kind:
            first, last = data.get("first_day"), data.get("last_day")
            if first is None:
                self.add_error("first_day", "Give the first day of the period.")
            if last is None:
                self.add_error("last_day", "Give the last day of the period.")
            if first is not None and last is not None:
                if last < first:
                    self.add_error("last_day", "The last day comes before the first.")
                elif (last - first).days + 1 > settings.CASPIX_EXPORT_MAX_DAYS:
                    self.add_error("last_day", f"A period covers at most {settings.CASPIX_EXPORT_MAX_DAYS} days.")
                else:
                    data["period_start"] = datetime.datetime.combine(first, datetime.time(), datetime.UTC)
                    data["period_end"] = datetime.datetime.combine(
                        last + datetime.timedelta(days=1), datetime.time(), datetime.UTC
                    )
        return data
