"""An access-review snapshot as files: CSV for spreadsheets, PDF for the record.

Both are drawn from the snapshot document as it was taken (never from live data) and carry its
id, SHA-256, who took it and when, and its sign-off as it stands when the file is made.

CSV: a spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula; every such cell is prefixed with ``'`` (OWASP's CSV injection advice), since a
username, a role name or a sign-off comment is typed by people.

PDF (fpdf2): DejaVu Sans, vendored from npm (``static/vendor/dejavu/``), so accented Latin, Greek
and Cyrillic usernames print as typed (Arabic in its letters, unjoined: there is no text shaping);
a character the font lacks (CJK, say) prints as U+FFFD, never dropped silently nor named in a log
line. Cells are single lines cut to their column's width, so a few thousand users take a second
or two, not minutes. The CSV and the page keep every name exactly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from fpdf import FPDF
from fpdf.fonts import TTFFont

from caspix.downloads import csv_cell
from reporting.models import AccessReview

FONT_DIR = Path(settings.BASE_DIR) / "static" / "vendor" / "dejavu"
FONT = "DejaVu"
MISSING_GLYPH = "\ufffd"


def when(moment: str | None, never: str = "never") -> str:
    """An RFC 3339 time of the document, to the minute, in UTC."""
    if not moment:
        return never
    return datetime.fromisoformat(moment).strftime("%Y-%m-%d %H:%M UTC")


def _signed_off(review: AccessReview) -> tuple[str, str, str]:
    """(by, at, comment) of the sign-off, empty while there is none."""
    if review.signed_off_by is None or review.signed_off_at is None:
        return "", "", ""
    return review.signed_off_by.username, review.signed_off_at.strftime("%Y-%m-%d %H:%M UTC"), review.sign_off_comment


def _windows(snapshot: dict[str, Any]) -> list[int]:
    return [int(days) for days in snapshot["rules"]["windows_days"]]


def role_changes(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """Every role change of the snapshot with the user it changed, in the ledger's order."""
    found = [{**change, "user": user["username"]} for user in snapshot["users"] for change in user["changes"]]
    return sorted(found, key=lambda change: int(change["seq"]))


# --- CSV -----------------------------------------------------------------------------------------


def to_csv(review: AccessReview, snapshot: dict[str, Any]) -> bytes:
    """Three blocks separated by an empty row: the snapshot's facts (name, value), the users
    (one row each), and the role changes (one row each)."""
    by, at, comment = _signed_off(review)
    windows = _windows(snapshot)
    rows: list[Sequence[object]] = [
        ("Caspix access review", snapshot["id"]),
        ("SHA-256", review.sha256),
        ("taken at", snapshot["taken_at"]),
        ("taken by", snapshot["taken_by"]),
        ("signed off by", by),
        ("signed off at", at),
        ("sign-off comment", comment),
        ("dormant after days", snapshot["rules"]["dormant_after_days"]),
        (),
        (
            "username",
            "active",
            "roles",
            "teams",
            "permissions",
            "case grants",
            "joined",
            "last sign-in",
            "last activity",
            *(f"{label} {days} d" for days in windows for label in ("sign-ins", "active days")),
            "dormant",
            "segregation conflict",
        ),
    ]
    for user in snapshot["users"]:
        activity = {window["days"]: window for window in user["activity"]}
        rows.append(
            (
                user["username"],
                "yes" if user["active"] else "no",
                " ".join(user["roles"]),
                " ".join(user["teams"]),
                " ".join(user["permissions"]),
                " ".join(f"{grant['case']}:{grant['access']}" for grant in user["grants"]),
                user["joined"],
                user["last_login"],
                user["last_activity"],
                *(activity[days][key] for days in windows for key in ("sign_ins", "active_days")),
                "yes" if user["dormant"] else "no",
                user["conflict"],
            )
        )
    rows += [(), ("changed at", "user", "role", "change", "maker", "approver", "approval", "ledger seq")]
    rows += [
        (c["at"], c["user"], c["role"], c["change"], c["maker"], c["approver"], c["approval"], c["seq"])
        for c in role_changes(snapshot)
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([csv_cell(value) for value in row] for row in rows)
    return out.getvalue().encode("utf-8-sig")  # the BOM tells spreadsheets it is UTF-8


# --- PDF -----------------------------------------------------------------------------------------


class _Document(FPDF):
    """Landscape A4 pages whose footer names the snapshot and its SHA-256."""

    def __init__(self, review: AccessReview) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.review = review
        self.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
        self.add_font(FONT, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
        embedded = (self.fonts[FONT.lower()], self.fonts[f"{FONT.lower()}B"])
        self.glyphs = set.intersection(*(set(font.cmap) for font in embedded if isinstance(font, TTFFont)))
        self.set_auto_page_break(True, margin=14)
        self.set_title("Caspix access review")
        self.set_subject(f"Access review {review.pk}, SHA-256 {review.sha256}")
        self.set_creator("Caspix")

    def printable(self, text: str) -> str:
        return "".join(char if ord(char) in self.glyphs else MISSING_GLYPH for char in text)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(FONT, "", 7)
        self.cell(
            0, 4, f"Caspix access review {self.review.pk} · SHA-256 {self.review.sha256} · page {self.page_no()}/{{nb}}"
        )


def _fit(pdf: _Document, text: str, width: float) -> str:
    """``text`` cut to fit in a cell ``width`` wide, ending with an ellipsis when cut."""
    text = pdf.printable(text)
    room = width - 2 * pdf.c_margin
    if pdf.get_string_width(text) <= room:
        return text
    fits, too_long = 0, len(text)  # the longest start of the text that fits with the ellipsis
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if pdf.get_string_width(text[:middle] + "…") <= room:
            fits = middle
        else:
            too_long = middle
    return text[:fits] + "…"


def _heading(pdf: _Document, text: str) -> None:
    if pdf.will_page_break(16):
        pdf.add_page()
    pdf.ln(3)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")


def _line(pdf: _Document, label: str, value: str) -> None:
    pdf.set_font(FONT, "B", 8)
    pdf.cell(38, 5, label)
    pdf.set_font(FONT, "", 8)
    pdf.cell(0, 5, _fit(pdf, value, pdf.epw - 38), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: _Document, columns: Sequence[tuple[str, float]], rows: Iterable[Sequence[str]], empty: str) -> None:
    """A table whose heading is repeated on every page it runs over; widths are parts of the page."""
    widths = [share * pdf.epw for _, share in columns]

    def heading() -> None:
        pdf.set_font(FONT, "B", 7)
        for (title, _), width in zip(columns, widths, strict=True):
            pdf.cell(width, 5, _fit(pdf, title, width), border="B")
        pdf.ln(5)
        pdf.set_font(FONT, "", 7)

    heading()
    drawn = False
    for row in rows:
        if pdf.will_page_break(4.5):
            pdf.add_page()
            heading()
        for text, width in zip(row, widths, strict=True):
            pdf.cell(width, 4.5, _fit(pdf, text, width))
        pdf.ln(4.5)
        drawn = True
    if not drawn:
        pdf.cell(0, 5, empty, new_x="LMARGIN", new_y="NEXT")


def to_pdf(review: AccessReview, snapshot: dict[str, Any]) -> bytes:
    by, at, comment = _signed_off(review)
    users = snapshot["users"]
    windows = _windows(snapshot)
    pdf = _Document(review)
    pdf.add_page()
    pdf.set_font(FONT, "B", 15)
    pdf.cell(0, 9, "Access review", new_x="LMARGIN", new_y="NEXT")
    _line(pdf, "Snapshot", str(snapshot["id"]))
    _line(pdf, "SHA-256", review.sha256)
    _line(pdf, "Taken", f"{when(snapshot['taken_at'])} by {snapshot['taken_by']}")
    _line(pdf, "Signed off", f"{at} by {by}" if by else "not signed off")
    if comment:
        _line(pdf, "Sign-off comment", comment)
    rules = snapshot["rules"]
    _line(pdf, "Dormant", f"active, with no sign-in for {rules['dormant_after_days']} days (or never, since created)")
    _line(
        pdf,
        "Activity",
        f"completed sign-ins and distinct UTC days with one, over {' and '.join(map(str, windows))} days",
    )
    dormant = [user for user in users if user["dormant"]]
    conflicts = [user for user in users if user["conflict"]]
    changes = role_changes(snapshot)
    active = sum(1 for user in users if user["active"])
    _line(pdf, "Counts", f"{len(users)} users ({active} active), {len(dormant)} dormant, {len(conflicts)} conflicts")

    _heading(pdf, "Dormant accounts")
    _table(
        pdf,
        [("User", 0.25), ("Roles", 0.35), ("Last sign-in", 0.2), ("Created", 0.2)],
        ((u["username"], " ".join(u["roles"]), when(u["last_login"]), when(u["joined"], "")) for u in dormant),
        "No account lies dormant.",
    )
    _heading(pdf, "Segregation-of-duties conflicts")
    _table(
        pdf,
        [("User", 0.2), ("Roles", 0.25), ("Conflict", 0.55)],
        ((u["username"], " ".join(u["roles"]), u["conflict"]) for u in conflicts),
        "Nobody holds permissions that conflict.",
    )
    _heading(pdf, "Roles held")
    _table(pdf, [("Role", 0.3), ("Name", 0.7)], ((r["slug"], r["name"]) for r in snapshot["roles"]), "No role held.")
    _heading(pdf, "Users")
    _table(pdf, _user_columns(windows), (_user_row(user, windows) for user in users), "No user.")
    _heading(pdf, "Explicit case grants")
    _table(
        pdf,
        [("User", 0.3), ("Case", 0.4), ("Access", 0.3)],
        ((u["username"], g["case"], g["access"]) for u in users for g in u["grants"]),
        "No case is granted to anyone explicitly.",
    )
    _heading(pdf, "Role changes")
    _table(
        pdf,
        [
            ("When", 0.16),
            ("User", 0.17),
            ("Role", 0.14),
            ("Change", 0.07),
            ("Maker", 0.16),
            ("Approver", 0.2),
            ("Approval", 0.1),
        ],
        (
            [
                when(c["at"]),
                c["user"],
                c["role"],
                c["change"],
                c["maker"] or "",
                c["approver"] or "none needed",
                str(c["approval"] or ""),
            ]
            for c in changes
        ),
        "No role change in the ledger.",
    )
    return bytes(pdf.output())


def _user_columns(windows: list[int]) -> list[tuple[str, float]]:
    fixed = [("User", 0.13), ("Active", 0.05), ("Roles", 0.15), ("Teams", 0.1), ("Grants", 0.05)]
    times = [("Last sign-in", 0.11), ("Last activity", 0.11)]
    share = (1 - sum(width for _, width in fixed + times)) / len(windows)
    return fixed + times + [(f"Sign-ins / days, {days} d", share) for days in windows]


def _user_row(user: dict[str, Any], windows: list[int]) -> list[str]:
    activity = {window["days"]: window for window in user["activity"]}
    return [
        user["username"],
        "yes" if user["active"] else "no",
        " ".join(user["roles"]),
        " ".join(user["teams"]),
        str(len(user["grants"])),
        when(user["last_login"]),
        when(user["last_activity"]),
        *(f"{activity[days]['sign_ins']} / {activity[days]['active_days']}" for days in windows),
    ]
