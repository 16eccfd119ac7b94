"""The authorization matrix, as data: route, persona and ownership give the status expected.

Every URL pattern of Caspix (and, when they come, every API route) has an entry here; the test
module expands the entries into one parametrised test per cell and fails when a route is
missing. Ownership is the acting persona's relation to the object the route names: "own"
(assigned to them), "team" (in their team's queue), "other team", or "none" (the route names no
object, or one that does not exist).

An empty POST is what the matrix sends: a status of 400 means the door opened and the form then
refused the empty input; 403 means the role lacks the permission; 404 means the object is out of
reach or absent (alike, so a guessed id learns nothing); 302 for the anonymous is the way to
sign-in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tests.personas import MISSING_PK, PERSONAS, World

ANONYMOUS = "anonymous"
ALL = (ANONYMOUS, *PERSONAS)
CASE_OWNERSHIPS = ("own", "team", "other team", "none")
CASEWORK = ("analyst", "lead", "other_analyst")

Expected = int | Mapping[str, int]
Kwargs = Callable[[World, str, str], dict[str, object]]


@dataclass(frozen=True)
class Entry:
    name: str
    method: str
    expect: Mapping[str, Expected]
    kwargs: Kwargs = lambda world, persona, ownership: {}
    ownerships: tuple[str, ...] = ("none",)
    data: Mapping[str, str] = field(default_factory=dict)

    def status(self, persona: str, ownership: str) -> int:
        expected = self.expect[persona]
        return expected if isinstance(expected, int) else expected[ownership]


def signed_in(default: Expected, anonymous: int = 302, **overrides: Expected) -> dict[str, Expected]:
    """Every persona gets ``default`` unless named in ``overrides``; the anonymous go to sign-in."""
    return {ANONYMOUS: anonymous, **dict.fromkeys(PERSONAS, default), **overrides}


NOWHERE = "00000000-0000-4000-8000-000000000000"  # no object has this id


def only(allowed: Expected, *personas: str) -> dict[str, Expected]:
    """The named personas get ``allowed``, every other signed-in one 403."""
    return {**signed_in(403), **dict.fromkeys(personas, allowed)}


def everyone(status: int) -> dict[str, Expected]:
    return dict.fromkeys(ALL, status)


def case(world: World, persona: str, ownership: str) -> dict[str, object]:
    return {"pk": world.case_for(persona, ownership)}


# A case worker reaches own and team cases; another team's, and a missing one, answer 404 alike.
REACHABLE = {"own": 200, "team": 200, "other team": 404, "none": 404}
REACHABLE_FORM = {"own": 400, "team": 400, "other team": 404, "none": 404}
REACHABLE_ACTION = {"own": 302, "team": 302, "other team": 404, "none": 404}

ADMIN = "admin"

MATRIX: tuple[Entry, ...] = (
    # --- sign-in and the landing router
    Entry("accounts:home", "GET", signed_in(302, roleless=403)),
    Entry("accounts:login", "GET", signed_in(302, anonymous=200)),
    Entry("accounts:logout", "GET", everyone(405)),
    # --- the second factor: every signed-in persona has one (the matrix signs in verified)
    Entry("accounts:verify", "GET", signed_in(200)),
    Entry("accounts:verify", "POST", signed_in(400)),
    Entry("accounts:enrol", "GET", signed_in(200)),
    Entry("accounts:enrol", "POST", signed_in(302)),  # no enrolment begun: back to its start
    Entry("accounts:factors", "GET", signed_in(200)),
    Entry("accounts:factor_remove", "POST", signed_in(302), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("accounts:recovery_codes", "POST", signed_in(200)),
    Entry("accounts:passkey_remove", "POST", signed_in(302), lambda w, p, o: {"pk": MISSING_PK}),
    # passkeys: registering one begins for anyone signed in with a fresh factor; completing it
    # without a begun ceremony is refused. Authentication is open to the anonymous (a sign-in
    # without a password, begun here); a persona with no passkey is refused it.
    Entry("accounts:passkey_register_begin", "POST", signed_in(200)),
    Entry("accounts:passkey_register_complete", "POST", signed_in(400)),
    Entry("accounts:passkey_authenticate_begin", "POST", signed_in(403, anonymous=200)),
    Entry("accounts:passkey_authenticate_complete", "POST", signed_in(403, anonymous=400)),
    # --- SAML: off in the matrix's world (no identity provider configured), so absent for all;
    # tests/accounts/test_saml.py runs it with one
    Entry("accounts:saml_metadata", "GET", everyone(404)),
    Entry("accounts:saml_login", "GET", everyone(404)),
    Entry("accounts:saml_acs", "POST", everyone(404)),
    # --- OIDC: off in the matrix's world too; tests/accounts/test_oidc.py runs it with a provider
    Entry("accounts:oidc_login", "GET", everyone(404)),
    Entry("accounts:oidc_callback", "GET", everyone(404)),
    # --- one's own sessions (ending one not one's own, or a missing one, says so and goes back)
    Entry("accounts:sessions", "GET", signed_in(200)),
    Entry("accounts:session_end", "POST", signed_in(302), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("accounts:sessions_end_others", "POST", signed_in(302)),
    Entry("accounts:keepalive", "POST", signed_in(204)),
    # withdrawing one's own request: a request that is not there (or not one's own) says so, back home
    Entry("accounts:approval_withdraw", "POST", signed_in(302), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("accounts:approval_withdraw", "GET", signed_in(405), lambda w, p, o: {"pk": MISSING_PK}),
    # --- administration: users, role templates, teams, approvals, queues
    Entry("accounts:admin_home", "GET", only(200, ADMIN)),
    Entry("accounts:user_new", "GET", only(200, ADMIN)),
    Entry("accounts:user_new", "POST", only(400, ADMIN)),
    Entry("accounts:user", "GET", only(200, ADMIN), lambda w, p, o: {"username": "frank"}),
    Entry("accounts:user_roles", "POST", only(400, ADMIN), lambda w, p, o: {"username": "frank"}),
    Entry("accounts:user_roles", "GET", only(405, ADMIN), lambda w, p, o: {"username": "frank"}),
    Entry("accounts:user_active", "POST", only(400, ADMIN), lambda w, p, o: {"username": "frank"}),
    Entry("accounts:user_sessions_end", "POST", only(302, ADMIN), lambda w, p, o: {"username": "frank"}),
    Entry("accounts:roles", "GET", only(200, ADMIN)),
    Entry("accounts:role_new", "GET", only(200, ADMIN)),
    Entry("accounts:role_new", "POST", only(400, ADMIN)),
    Entry("accounts:role", "GET", only(200, ADMIN), lambda w, p, o: {"slug": "trainee"}),
    Entry("accounts:role_edit", "POST", only(400, ADMIN), lambda w, p, o: {"slug": "trainee"}),
    Entry("accounts:teams", "GET", only(200, ADMIN)),
    Entry("accounts:teams", "POST", only(400, ADMIN)),
    Entry("accounts:team", "GET", only(200, ADMIN), lambda w, p, o: {"slug": "cards"}),
    Entry(
        "accounts:team_remove",
        "POST",
        only(302, ADMIN),
        lambda w, p, o: {"slug": "cards", "username": "bob"},
    ),
    Entry("accounts:approvals", "GET", only(200, ADMIN)),
    Entry("accounts:approval", "GET", only(200, ADMIN), lambda w, p, o: {"pk": w.approval.pk}),
    Entry("accounts:approval", "POST", only(400, ADMIN), lambda w, p, o: {"pk": w.approval.pk}),
    Entry("queues:list", "GET", only(200, ADMIN)),
    Entry("queues:list", "POST", only(400, ADMIN)),
    Entry("queues:detail", "GET", only(200, ADMIN), lambda w, p, o: {"slug": "cards"}),
    Entry("queues:move", "POST", only(400, ADMIN), lambda w, p, o: {"slug": "cards"}),
    Entry("fiu_profiles:list", "GET", only(200, ADMIN)),
    Entry("fiu_profiles:list", "POST", only(400, ADMIN)),
    Entry("fiu_profiles:detail", "GET", only(404, ADMIN), lambda w, p, o: {"slug": "nowhere"}),
    Entry("fiu_profiles:detail", "POST", only(404, ADMIN), lambda w, p, o: {"slug": "nowhere"}),
    Entry("fiu_profiles:rules", "POST", only(404, ADMIN), lambda w, p, o: {"slug": "nowhere"}),
    Entry("fiu_profiles:rules", "GET", only(405, ADMIN), lambda w, p, o: {"slug": "nowhere"}),
    Entry("fiu_profiles:holiday", "POST", only(404, ADMIN), lambda w, p, o: {"slug": "nowhere"}),
    # --- reports: drafters (analysts and leads) reach the reports of cases they reach; a report
    # that is not there, or out of reach, answers 404 alike (tests/reporting runs them with reports)
    Entry("reports:list", "GET", only(200, *CASEWORK)),
    Entry("reports:new", "GET", only(REACHABLE, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("reports:new", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("reports:report", "GET", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:report", "POST", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:generate", "POST", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:progress", "GET", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:request", "POST", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:decide", "POST", only(404, "lead"), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:decide", "GET", only(405, "lead"), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:download", "GET", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK, "file": NOWHERE}),
    Entry("reports:submitted", "POST", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:answer", "POST", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("reports:abandon", "POST", only(404, *CASEWORK), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("routing_rules:list", "GET", only(200, ADMIN)),
    Entry("routing_rules:list", "POST", only(400, ADMIN)),
    Entry("routing_rules:detail", "GET", only(404, ADMIN), lambda w, p, o: {"pk": 999_999}),
    Entry("routing_rules:detail", "POST", only(404, ADMIN), lambda w, p, o: {"pk": 999_999}),
    # --- API clients: step-up for every change; a client that is not there answers 404
    Entry("api_clients:list", "GET", only(200, ADMIN)),
    Entry("api_clients:list", "POST", only(400, ADMIN)),
    Entry("api_clients:detail", "GET", only(404, ADMIN), lambda w, p, o: {"source": "nowhere"}),
    Entry("api_clients:issue_key", "POST", only(404, ADMIN), lambda w, p, o: {"source": "nowhere"}),
    Entry("api_clients:revoke_key", "POST", only(404, ADMIN), lambda w, p, o: {"source": "nowhere", "key_id": "k-1"}),
    Entry("webhooks:list", "GET", only(200, ADMIN)),
    Entry("webhooks:list", "POST", only(400, ADMIN)),
    Entry("webhooks:detail", "GET", only(404, ADMIN), lambda w, p, o: {"pk": NOWHERE}),
    Entry("webhooks:replay", "POST", only(404, ADMIN), lambda w, p, o: {"pk": NOWHERE}),
    Entry("webhooks:switch", "POST", only(404, ADMIN), lambda w, p, o: {"pk": NOWHERE}),
    # --- the analysts' workspace: object-level access
    Entry("cases:workspace", "GET", only(200, *CASEWORK)),
    Entry("cases:next_case", "POST", only(302, *CASEWORK)),
    Entry("cases:bulk", "POST", only(400, *CASEWORK)),
    Entry("cases:search", "GET", only(200, *CASEWORK)),
    Entry("cases:case", "GET", only(REACHABLE, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:case_grant", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:case_take", "POST", only(REACHABLE_ACTION, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry(
        "cases:case_revoke",
        "POST",
        only(REACHABLE_FORM, *CASEWORK),
        lambda w, p, o: {**case(w, p, o), "username": "frank"},
        CASE_OWNERSHIPS,
    ),
    Entry("cases:access", "GET", only(REACHABLE, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:case_move", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:case_close", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:case_reopen", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:note_add", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:evidence_add", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    # a note or a file that is not there answers 404 alike on a reachable case
    Entry(
        "cases:note",
        "GET",
        only(404, *CASEWORK),
        lambda w, p, o: {**case(w, p, o), "thread": NOWHERE},
        CASE_OWNERSHIPS,
    ),
    Entry(
        "cases:evidence",
        "GET",
        only(404, *CASEWORK),
        lambda w, p, o: {**case(w, p, o), "evidence": NOWHERE},
        CASE_OWNERSHIPS,
    ),
    Entry("cases:related", "GET", only(REACHABLE, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry("cases:link", "POST", only(REACHABLE_FORM, *CASEWORK), case, CASE_OWNERSHIPS),
    Entry(
        "cases:unlink",
        "POST",
        only(404, *CASEWORK),
        lambda w, p, o: {**case(w, p, o), "other": MISSING_PK},
        CASE_OWNERSHIPS,
    ),
    # the leads' decisions on closures and reopenings (none waits in the matrix's world)
    Entry("cases:approvals", "GET", only(200, "lead")),
    Entry("cases:approval", "GET", only(404, "lead"), lambda w, p, o: {"pk": MISSING_PK}),
    Entry("cases:approval", "POST", only(404, "lead"), lambda w, p, o: {"pk": MISSING_PK}),
    # --- dashboards and the audit area
    Entry("reporting:dashboard", "GET", only(200, "manager")),
    Entry("reporting:dashboard", "POST", only(405, "manager")),
    Entry("reporting:dashboard_export", "GET", only(200, "manager"), lambda w, p, o: {"table": "open-queues"}),
    Entry("reporting:dashboard_export", "GET", only(404, "manager"), lambda w, p, o: {"table": "nowhere"}),
    Entry("reporting:dashboard_export", "POST", only(405, "manager"), lambda w, p, o: {"table": "open-queues"}),
    # --- access review: snapshots for who reviews access (auditors, managers), sign-off for managers;
    # no snapshot exists in the world, so one named answers 404 alike to those who may read it
    Entry("access_review:list", "GET", only(200, "manager", "auditor")),
    Entry("access_review:take", "POST", only(302, "manager", "auditor")),
    Entry("access_review:take", "GET", only(405, "manager", "auditor")),
    Entry("access_review:review", "GET", only(404, "manager", "auditor"), lambda w, p, o: {"pk": NOWHERE}),
    Entry("access_review:sign_off", "POST", only(404, "manager"), lambda w, p, o: {"pk": NOWHERE}),
    Entry(
        "access_review:download",
        "GET",
        only(404, "manager", "auditor"),
        lambda w, p, o: {"pk": NOWHERE, "file_format": "pdf"},
    ),
    Entry("audit:home", "GET", only(200, ADMIN, "auditor")),
    Entry("audit:events", "GET", only(200, ADMIN, "auditor")),
    Entry("audit:event", "GET", only(200, ADMIN, "auditor"), lambda w, p, o: {"seq": w.event_seq}),
    Entry("audit:ledger_keys", "GET", everyone(200)),
    # --- the auditors' evidence packs and exports (their own only; none exists in the world)
    Entry("exports:list", "GET", only(200, "auditor")),
    Entry("exports:list", "POST", only(400, "auditor")),
    Entry("exports:export", "GET", only(404, "auditor"), lambda w, p, o: {"pk": NOWHERE}),
    Entry("exports:progress", "GET", only(404, "auditor"), lambda w, p, o: {"pk": NOWHERE}),
    Entry("exports:download", "GET", only(404, "auditor"), lambda w, p, o: {"pk": NOWHERE}),
    # --- the intake API: a signed request or nothing, whoever is signed in to the browser
    Entry("api:alerts", "POST", everyone(401)),
    Entry("api:alerts_bulk", "POST", everyone(401)),
    Entry("api:alert", "GET", everyone(401), lambda w, p, o: {"pk": "00000000-0000-4000-8000-000000000000"}),
    Entry("api:schema", "GET", everyone(200)),  # its description is public, as any API's
    Entry("api:docs", "GET", everyone(200)),
    # --- probes: public, or gated by source address (the test client comes from loopback)
    Entry("healthz", "GET", everyone(200)),
    Entry("readyz", "GET", everyone(200)),
    Entry("metrics", "GET", everyone(200)),
)
