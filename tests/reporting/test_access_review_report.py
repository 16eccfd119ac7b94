"""The access-review report: its content, frozen snapshots with their SHA-256, a manager's
sign-off (once, step-up, bound to the hash seen), the CSV and PDF downloads, and who may do what."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm
from pytest_django.fixtures import Settings

from accounts import actions as account_actions
from accounts.approvals import approve, request_change
from accounts.models import Role, RoleAssignment, RolePermission, User, UserSession
from accounts.permissions import Perm
from audit.canonical import canonical
from audit.ledger import integrate
from caspix.access import STEP_UP_SESSION_KEY
from caspix.downloads import csv_cell
from reporting import access_review_files
from reporting.access_review import access_review, document, serialise
from reporting.actions import export_access_review, sign_off_access_review, take_access_review
from reporting.models import AccessReview, SnapshotAlteredError
from tests.conftest import client_for
from tests.factories import make_user
from tests.personas import build_world
from tests.recorded import events, names, sequenced_and_pending

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def user_of(snapshot: dict[str, Any], username: str) -> dict[str, Any]:
    found: dict[str, Any] = next(user for user in snapshot["users"] if user["username"] == username)
    return found


def signed_in(user: User, *days_ago: float) -> None:
    """Completed sign-ins of ``user`` that many days before NOW."""
    for days in days_ago:
        UserSession.objects.create(
            user=user, session_key=uuid.uuid4().hex, tier="standard", started_at=NOW - timedelta(days=days)
        )


def sign_off(review: AccessReview, manager: User, comment: str = "") -> AccessReview:
    return sign_off_access_review(review, sha256_seen=review.sha256, comment=comment, acting_user=manager)


# --- content --------------------------------------------------------------------------------------


def test_it_freezes_roles_teams_grants_and_role_changes_with_maker_and_approver(auditor: User) -> None:
    world = build_world()
    admin, analyst = world.users["admin"], world.users["analyst"]
    assign_perm("cases.view_case", analyst, world.cases["other_analyst"]["team"])
    grace = make_user("grace", roles=["admin"])
    frank = world.users["roleless"]
    account_actions.change_role(frank, Role.objects.get(slug="auditor"), "grant", acting_user=admin)
    revoke = request_change(
        "role_change", {"user": frank.pk, "role": "auditor", "change": "revoke"}, acting_user=admin, reason="moved"
    )
    approve(revoke.pk, acting_user=grace, seen_hash=revoke.payload_hash)
    integrate()
    snapshot = take_access_review(acting_user=auditor).document()
    bob = user_of(snapshot, "bob")
    assert (bob["roles"], bob["teams"], bob["active"]) == (["analyst"], ["cards"], True)
    assert bob["permissions"] == ["cases.work_cases", "reporting.draft_str"]
    assert bob["grants"] == [{"case": world.cases["other_analyst"]["team"].reference, "access": "view"}]
    changes = user_of(snapshot, "frank")["changes"]
    assert [(c["change"], c["role"], c["maker"], c["approver"], c["approval"]) for c in changes] == [
        ("grant", "auditor", "alice", None, None),
        ("revoke", "auditor", "alice", "grace", revoke.pk),
    ]
    assert {"slug": "analyst", "name": "Fraud analyst"} in snapshot["roles"]
    assert snapshot["taken_by"] == "erin"
    assert snapshot["rules"] == {"dormant_after_days": 90, "windows_days": [30, 90]}


def test_it_counts_sign_ins_and_active_days_over_30_and_90_days(auditor: User, analyst: User) -> None:
    signed_in(analyst, 1, 1.1, 10, 45, 89, 100)  # two on one day; the last is outside both windows
    UserSession.objects.create(user=analyst, session_key="later", tier="standard", started_at=NOW + timedelta(hours=1))
    bob = next(row for row in access_review(auditor, now=NOW) if row.username == "bob")
    assert [(w.days, w.sign_ins, w.active_days) for w in bob.activity] == [(30, 3, 2), (90, 5, 4)]
    erin = next(row for row in access_review(auditor, now=NOW) if row.username == "erin")
    assert [(w.sign_ins, w.active_days) for w in erin.activity] == [(0, 0), (0, 0)]


def test_it_finds_dormant_accounts_including_those_never_signed_in(auditor: User, settings: Settings) -> None:
    def person(username: str, *, joined_days: int, login_days: int | None, active: bool = True) -> None:
        last_login = NOW - timedelta(days=login_days) if login_days is not None else None
        make_user(username, is_active=active, date_joined=NOW - timedelta(days=joined_days), last_login=last_login)

    person("recent", joined_days=400, login_days=10)
    person("stale", joined_days=400, login_days=91)
    person("never_old", joined_days=91, login_days=None)
    person("never_new", joined_days=10, login_days=None)
    person("gone", joined_days=400, login_days=200, active=False)  # deactivated: not dormant, gone
    User.objects.filter(username="erin").update(date_joined=NOW - timedelta(days=1))
    dormant = {row.username for row in access_review(auditor, now=NOW) if row.dormant}
    assert dormant == {"stale", "never_old"}
    settings.CASPIX_ACCESS_REVIEW_DORMANT_DAYS = 5
    dormant = {row.username for row in access_review(auditor, now=NOW) if row.dormant}
    assert dormant == {"recent", "stale", "never_old", "never_new"}


def test_it_flags_a_segregation_of_duties_conflict(auditor: User) -> None:
    # Actions refuse such a role; a database edited by hand is what an access review catches.
    both = Role.objects.create(slug="both", name="Both sides")
    RolePermission.objects.bulk_create(
        [RolePermission(role=both, permission=Perm.MANAGE_USERS), RolePermission(role=both, permission=Perm.WORK_CASES)]
    )
    RoleAssignment.objects.create(user=make_user("mallory"), role=both)
    review = take_access_review(acting_user=auditor)
    conflict = user_of(review.document(), "mallory")["conflict"]
    assert conflict == "segregation of duties: accounts.manage_users and cases.work_cases cannot be held by one person"
    assert review.conflicts == 1
    assert user_of(review.document(), "erin")["conflict"] is None


def test_it_reads_the_sign_ins_in_the_same_queries_however_many_users(auditor: User) -> None:
    from django.test.utils import CaptureQueriesContext

    build_world()
    access_review(auditor, now=NOW)
    with CaptureQueriesContext(connection) as few:
        access_review(auditor, now=NOW)
    for n in range(15):
        signed_in(make_user(f"extra{n}", roles=["analyst"]), 1, 40)
    with CaptureQueriesContext(connection) as many:
        access_review(auditor, now=NOW)
    assert len(few) == len(many) == 6


# --- the snapshot ---------------------------------------------------------------------------------


def test_the_same_data_at_the_same_moment_gives_the_same_bytes_and_hash(auditor: User) -> None:
    build_world()
    made = [
        serialise(
            document(access_review(auditor, now=NOW), review_id="r", taken_at=NOW, taken_by="erin", dormant_days=90)
        )
        for _ in range(2)
    ]
    assert made[0] == made[1]
    data, sha256 = made[0]
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert canonical(json.loads(data)) == data  # the ledger's canonical form: sorted keys, no spaces


def test_it_stores_the_snapshot_encrypted_with_its_hash_and_records_it(auditor: User) -> None:
    build_world()
    review = take_access_review(acting_user=auditor)
    stored = AccessReview.objects.get(pk=review.pk)
    assert hashlib.sha256(stored.canonical()).hexdigest() == stored.sha256
    sealed = AccessReview.objects.filter(pk=review.pk).values_list("content", flat=True).get()
    assert not sealed.envelope.startswith(b"\x1f\x8b")  # encrypted, not the gzip stream itself
    assert gzip.decompress(bytes(stored.content)) == stored.canonical()
    assert (stored.users, stored.taken_by) == (User.objects.count(), auditor)
    taken = events()[-1]
    assert taken["name"] == "ACCESS_REVIEW_TAKEN"
    assert taken["object"] == {"type": "access-review", "id": str(review.pk)}
    assert taken["after"]["sha256"] == review.sha256  # type: ignore[index]
    assert taken["actor"]["name"] == "erin"  # type: ignore[index]


def test_a_snapshot_stays_as_taken_while_the_live_data_moves(auditor: User, analyst: User, admin: User) -> None:
    review = take_access_review(acting_user=auditor)
    account_actions.set_active(analyst, False, acting_user=admin, reason="left")
    assert user_of(AccessReview.objects.get(pk=review.pk).document(), "bob")["active"] is True


def test_it_withholds_a_snapshot_whose_hash_was_changed(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    with connection.cursor() as cursor:  # as a superuser could, past the trigger
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE reporting_accessreview SET sha256 = %s WHERE id = %s", ["0" * 64, review.pk])
        cursor.execute("SET LOCAL session_replication_role = origin")
    altered = AccessReview.objects.get(pk=review.pk)
    with pytest.raises(SnapshotAlteredError):
        altered.document()
    with pytest.raises(SnapshotAlteredError):
        sign_off_access_review(altered, sha256_seen="0" * 64, comment="", acting_user=manager)
    assert client_for(auditor).get(reverse("access_review:review", args=[review.pk])).status_code == 409


# --- sign-off -------------------------------------------------------------------------------------


def test_it_signs_off_with_its_event_naming_the_hash(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    signed = sign_off(review, manager, "  Reviewed with HR.  ")
    stored = AccessReview.objects.get(pk=review.pk)
    assert (stored.signed_off_by, stored.sign_off_comment) == (manager, "Reviewed with HR.")
    assert stored.signed_off_at == signed.signed_off_at
    event = events()[-1]
    assert event["name"] == "ACCESS_REVIEW_SIGNED_OFF"
    assert event["reason"] == "Reviewed with HR."
    assert event["after"]["sha256"] == review.sha256  # type: ignore[index]
    assert event["actor"]["name"] == "dana"  # type: ignore[index]


def test_the_sign_off_and_its_event_commit_together(
    auditor: User, manager: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    review = take_access_review(acting_user=auditor)

    def ledger_down(*args: object, **kwargs: object) -> None:
        raise DatabaseError("the ledger could not record")

    monkeypatch.setattr("reporting.actions.record", ledger_down)
    with pytest.raises(DatabaseError):
        sign_off(review, manager)
    assert not AccessReview.objects.get(pk=review.pk).signed_off


def test_it_refuses_a_hash_that_is_not_the_snapshots(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    other = take_access_review(acting_user=auditor)
    with pytest.raises(ValidationError, match="its SHA-256 differs"):
        sign_off_access_review(review, sha256_seen=other.sha256, comment="", acting_user=manager)
    assert not AccessReview.objects.get(pk=review.pk).signed_off
    assert names()[-1] == "ACCESS_REVIEW_TAKEN"


def test_it_refuses_a_second_sign_off(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    sign_off(review, manager, "first")
    mona = make_user("mona", roles=["manager"])
    with pytest.raises(ValidationError, match="signed off already, by dana"):
        sign_off(review, mona, "second")
    stored = AccessReview.objects.get(pk=review.pk)
    assert (stored.signed_off_by, stored.sign_off_comment) == (manager, "first")
    assert names().count("ACCESS_REVIEW_SIGNED_OFF") == 1


def test_only_a_holder_of_the_sign_off_permission_signs_off(auditor: User, admin: User) -> None:
    review = take_access_review(acting_user=auditor)
    for user in (auditor, admin):
        with pytest.raises(PermissionDenied):
            sign_off(review, user)


def test_the_database_keeps_a_snapshot_as_taken_and_its_sign_off_once(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    refused = (
        lambda: AccessReview.objects.filter(pk=review.pk).update(sha256="1" * 64),
        lambda: AccessReview.objects.filter(pk=review.pk).update(users=0),
        lambda: AccessReview.objects.filter(pk=review.pk).delete(),
    )
    for change in refused:
        with pytest.raises(DatabaseError), transaction.atomic():
            change()
    sign_off(review, manager)
    with pytest.raises(DatabaseError), transaction.atomic():
        AccessReview.objects.filter(pk=review.pk).update(signed_off_at=timezone.now(), sign_off_comment="again")
    assert AccessReview.objects.get(pk=review.pk).sign_off_comment == ""


@pytest.mark.django_db(transaction=True)
def test_two_managers_signing_off_at_once_only_one_wins(db: None) -> None:
    erin = make_user("erin", roles=["auditor"])
    managers = [make_user("dana", roles=["manager"]), make_user("mona", roles=["manager"])]
    review = take_access_review(acting_user=erin)
    start = threading.Barrier(len(managers))
    outcomes: list[str] = []

    def sign(manager: User) -> None:
        try:
            start.wait(10)
            sign_off(review, manager, f"signed by {manager.username}")
            outcomes.append("signed")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=sign, args=(manager,)) for manager in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["refused", "signed"]
    stored = AccessReview.objects.select_related("signed_off_by").get(pk=review.pk)
    assert stored.sign_off_comment == f"signed by {stored.signed_off_by.username}"  # type: ignore[union-attr]
    recorded = [event["name"] for event in sequenced_and_pending()]
    assert recorded.count("ACCESS_REVIEW_SIGNED_OFF") == 1
    assert recorded.count("ACCESS_REVIEW_TAKEN") == 1


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_is_read_in_one_database_snapshot(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from reporting import access_review as gathering

    erin = make_user("erin", roles=["auditor"])
    levels: list[str] = []
    gather = gathering.access_review

    def observed(*args: Any, **kwargs: Any) -> Any:
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            levels.append(cursor.fetchone()[0])
        return gather(*args, **kwargs)

    monkeypatch.setattr(gathering, "access_review", observed)
    take_access_review(acting_user=erin)
    assert levels == ["repeatable read"]
    with connection.cursor() as cursor:  # and the connection is back to its own level afterwards
        cursor.execute("SHOW transaction_isolation")
        assert cursor.fetchone()[0] == "read committed"


# --- the pages ------------------------------------------------------------------------------------


def test_reviewers_list_snapshots_newest_first_and_others_are_refused(
    auditor: User, manager: User, admin: User, analyst: User
) -> None:
    older = take_access_review(acting_user=auditor)
    newer = take_access_review(acting_user=manager)
    sign_off(older, manager)
    for reviewer in (auditor, manager):
        page = client_for(reviewer).get(reverse("access_review:list"))
        assert page.status_code == 200
        html = page.content.decode()
        assert html.index(str(newer.pk)) < html.index(str(older.pk))
        assert "Signed off</span> by dana" in html
        assert "Waiting for sign-off" in html
    for other in (admin, analyst):
        assert client_for(other).get(reverse("access_review:list")).status_code == 403
    assert Client().get(reverse("access_review:list")).status_code == 302


def test_a_reviewer_takes_a_snapshot_and_lands_on_it(auditor: User) -> None:
    response = client_for(auditor).post(reverse("access_review:take"))
    review = AccessReview.objects.get()
    assert response["Location"] == reverse("access_review:review", args=[review.pk])
    assert review.taken_by == auditor


def test_the_page_shows_the_report_its_hash_and_the_sign_off_form_to_managers_only() -> None:
    world = build_world()
    auditor, manager = world.users["auditor"], world.users["manager"]
    User.objects.filter(username="frank").update(date_joined=timezone.now() - timedelta(days=200))
    review = take_access_review(acting_user=auditor)
    url = reverse("access_review:review", args=[review.pk])
    managers_page = client_for(manager).get(url).content.decode()
    assert review.sha256 in managers_page
    assert f'name="sha256" value="{review.sha256}"' in managers_page
    assert "Sign off this snapshot" in managers_page
    assert "Yours is recent enough." in managers_page
    dormant = managers_page[managers_page.index('id="dormant-heading"') : managers_page.index('id="conflicts-heading"')]
    assert "frank" in dormant
    assert "bob" not in dormant
    assert "Nobody holds permissions that conflict." in managers_page
    auditors_page = client_for(auditor).get(url).content.decode()
    assert review.sha256 in auditors_page
    assert "Sign off this snapshot" not in auditors_page
    assert world.users["analyst"].username in auditors_page


def test_an_unknown_snapshot_is_not_found(auditor: User, manager: User) -> None:
    missing = uuid.uuid4()
    assert client_for(auditor).get(reverse("access_review:review", args=[missing])).status_code == 404
    assert client_for(auditor).get(reverse("access_review:download", args=[missing, "csv"])).status_code == 404
    assert client_for(manager).post(reverse("access_review:sign_off", args=[missing])).status_code == 404
    review = take_access_review(acting_user=auditor)
    assert client_for(auditor).get(reverse("access_review:download", args=[review.pk, "xlsx"])).status_code == 404


def test_a_manager_signs_off_from_the_page(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    url = reverse("access_review:review", args=[review.pk])
    response = client_for(manager).post(
        reverse("access_review:sign_off", args=[review.pk]), {"sha256": review.sha256, "comment": "All in order."}
    )
    assert response["Location"] == url
    page = client_for(manager).get(url).content.decode()
    assert "All in order." in page
    assert "Sign off this snapshot" not in page
    assert client_for(auditor).post(reverse("access_review:sign_off", args=[review.pk])).status_code == 403


def test_the_page_says_why_a_sign_off_was_refused(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    client = client_for(manager)
    url = reverse("access_review:sign_off", args=[review.pk])
    wrong = client.post(url, {"sha256": "a" * 64})
    assert wrong.status_code == 409
    assert "its SHA-256 differs" in wrong.content.decode()
    malformed = client.post(url, {"sha256": "not a hash", "comment": "x" * 2001})
    assert malformed.status_code == 400
    assert not AccessReview.objects.get(pk=review.pk).signed_off


def test_a_sign_off_needs_a_fresh_second_factor(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    client = client_for(manager)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time() - 11 * 60
    session.save()
    page = reverse("access_review:review", args=[review.pk])
    assert "verify it now" in client.get(page).content.decode()
    response = client.post(
        reverse("access_review:sign_off", args=[review.pk]),
        {"sha256": review.sha256},
        HTTP_REFERER=f"http://testserver{page}",
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/login/verify/?next=")
    assert not AccessReview.objects.get(pk=review.pk).signed_off
    assert "ACCESS_REVIEW_SIGNED_OFF" not in names()


def test_the_navigation_opens_the_access_review_to_reviewers(auditor: User, manager: User, analyst: User) -> None:
    link = f'href="{reverse("access_review:list")}"'
    assert link in client_for(auditor).get("/audit/").content.decode()
    assert link in client_for(manager).get("/dashboard/").content.decode()
    assert link not in client_for(analyst).get("/work/").content.decode()


# --- CSV and PDF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_cell_never_starts_a_formula(start: str) -> None:
    assert csv_cell(f"{start}SUM(A1)") == f"'{start}SUM(A1)"
    assert csv_cell("bob=1") == "bob=1"
    assert csv_cell(None) == ""


def test_the_csv_holds_the_snapshot_and_is_recorded(auditor: User, manager: User) -> None:
    make_user("@evil", roles=["analyst"])
    make_user("-minus")
    review = take_access_review(acting_user=auditor)
    sign_off(review, manager, "=HYPERLINK(1)")
    response = client_for(auditor).get(reverse("access_review:download", args=[review.pk, "csv"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="{AccessReview.objects.get(pk=review.pk).filename}.csv"' in response["Content-Disposition"]
    assert response["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    facts = dict(row for row in rows[:8])
    assert facts["Caspix access review"] == str(review.pk)
    assert facts["SHA-256"] == review.sha256
    assert (facts["signed off by"], facts["sign-off comment"]) == ("dana", "'=HYPERLINK(1)")
    header = rows[9]
    assert header[:3] == ["username", "active", "roles"]
    assert "sign-ins 30 d" in header
    assert "active days 90 d" in header
    usernames = [row[0] for row in rows[10:] if row and row[0] and not row[0].startswith("changed at")]
    assert {"'@evil", "'-minus", "erin"} <= set(usernames)
    exported = events()[-1]
    assert exported["name"] == "ACCESS_REVIEW_EXPORTED"
    assert exported["after"] == {"format": "csv", "sha256": review.sha256, "signed_off": True}


def test_the_pdf_prints_unicode_usernames_and_names_the_snapshot(auditor: User) -> None:
    for username in ("Ζωή", "Дмитрий", "محمد", "李雷", "Zoë"):
        make_user(username, roles=["analyst"])
    review = take_access_review(acting_user=auditor)
    response = client_for(auditor).get(reverse("access_review:download", args=[review.pk, "pdf"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert f"Access review {review.pk}, SHA-256 {review.sha256}".encode() in pdf
    assert b"DejaVuSans" in pdf  # the vendored Unicode font, embedded
    assert events()[-1]["after"] == {"format": "pdf", "sha256": review.sha256, "signed_off": False}


def test_the_pdf_font_is_the_vendored_pinned_one() -> None:
    root = access_review_files.FONT_DIR.parents[2]
    manifest = json.loads((root / "static/vendor/VENDORED.json").read_text(encoding="utf-8"))["dejavu-fonts-ttf"]
    pins = json.loads((root / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    assert manifest["version"] == pins["dejavu-fonts-ttf"]
    for name, digest in manifest["files"].items():
        assert digest == "sha256:" + hashlib.sha256((root / "static/vendor" / name).read_bytes()).hexdigest()
    assert (access_review_files.FONT_DIR / "LICENSE").exists()


def test_the_pdf_shows_a_character_the_font_lacks_as_a_replacement(auditor: User) -> None:
    review = take_access_review(acting_user=auditor)
    made = access_review_files._Document(review)
    assert made.printable("Дмитрий Zoë") == "Дмитрий Zoë"
    assert made.printable("李雷") == "\ufffd\ufffd"


def test_the_pdf_of_thousands_of_users_stays_quick(auditor: User, manager: User) -> None:
    review = take_access_review(acting_user=auditor)
    sign_off(review, manager, "ok")
    snapshot = review.document()
    user = user_of(snapshot, "erin")
    snapshot["users"] = [{**user, "username": f"Пользователь-{n}", "dormant": n % 7 == 0} for n in range(3000)]
    started = time.perf_counter()
    pdf = access_review_files.to_pdf(AccessReview.objects.select_related("signed_off_by").get(pk=review.pk), snapshot)
    assert time.perf_counter() - started < 15  # about 1.5 s on the reference machine
    assert pdf.startswith(b"%PDF-")


def test_downloads_are_for_reviewers_only(auditor: User, analyst: User) -> None:
    review = take_access_review(acting_user=auditor)
    assert client_for(analyst).get(reverse("access_review:download", args=[review.pk, "pdf"])).status_code == 403
    with pytest.raises(PermissionDenied):
        export_access_review(review, "pdf", acting_user=analyst)
    with pytest.raises(ValidationError):
        export_access_review(review, "xlsx", acting_user=auditor)
