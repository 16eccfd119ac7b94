"""The curated catalog of business permissions a role template may hold.

These are not Django's model permissions (add/change/delete/view per model): a role grants
business capabilities, and nothing outside this catalog can be granted.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Perm(StrEnum):
    MANAGE_USERS = "accounts.manage_users"
    MANAGE_ROLES = "accounts.manage_roles"
    MANAGE_TEAMS = "accounts.manage_teams"
    MANAGE_API_CLIENTS = "accounts.manage_api_clients"
    MANAGE_SETTINGS = "accounts.manage_settings"
    APPROVE_ACCESS_CHANGE = "accounts.approve_access_change"
    WORK_CASES = "cases.work_cases"
    APPROVE_CASE_CLOSURE = "cases.approve_closure"
    DRAFT_STR = "reporting.draft_str"
    APPROVE_STR = "reporting.approve_str"
    VIEW_DASHBOARD = "reporting.view_dashboard"
    SIGN_OFF_ACCESS_REVIEW = "reporting.sign_off_access_review"
    VIEW_LEDGER = "audit.view_ledger"
    EXPORT_EVIDENCE = "reporting.export_evidence"
    VIEW_ACCESS_REVIEW = "reporting.view_access_review"


DESCRIPTIONS: dict[Perm, str] = {
    Perm.MANAGE_USERS: "Create, deactivate and assign roles to users",
    Perm.MANAGE_ROLES: "Create and edit role templates",
    Perm.MANAGE_TEAMS: "Manage investigator teams and their queues",
    Perm.MANAGE_API_CLIENTS: "Manage API clients and their keys",
    Perm.MANAGE_SETTINGS: "Change institution settings and routing rules",
    Perm.APPROVE_ACCESS_CHANGE: "Approve another administrator's privileged access change",
    Perm.WORK_CASES: "Work cases in the queues of one's teams",
    Perm.APPROVE_CASE_CLOSURE: "Approve case closures proposed by others (four-eyes)",
    Perm.DRAFT_STR: "Draft suspicious transaction reports",
    Perm.APPROVE_STR: "Approve STR submissions drafted by others (four-eyes)",
    Perm.VIEW_DASHBOARD: "See aggregate dashboards, without customer data",
    Perm.SIGN_OFF_ACCESS_REVIEW: "Sign off access-review reports",
    Perm.VIEW_LEDGER: "Read the audit ledger and its integrity status",
    Perm.EXPORT_EVIDENCE: "Export evidence packs and regulatory extracts",
    Perm.VIEW_ACCESS_REVIEW: "Read access-review reports",
}


def unknown(names: Iterable[str]) -> list[str]:
    """The names in ``names`` that are not business permissions of the catalog, in order."""
    known = {p.value for p in Perm}
    return [name for name in names if name not in known]


# Segregation of duties: no one person, through any mix of roles, holds permissions from both
# sides. Administrators shape access and must not work or approve cases; case workers must not
# shape their own access.
ADMINISTRATION: frozenset[Perm] = frozenset(
    {
        Perm.MANAGE_USERS,
        Perm.MANAGE_ROLES,
        Perm.MANAGE_TEAMS,
        Perm.MANAGE_API_CLIENTS,
        Perm.MANAGE_SETTINGS,
        Perm.APPROVE_ACCESS_CHANGE,
    }
)
CASEWORK: frozenset[Perm] = frozenset({Perm.WORK_CASES, Perm.DRAFT_STR, Perm.APPROVE_CASE_CLOSURE, Perm.APPROVE_STR})


# A role holding any of these is privileged: granting or revoking it needs a second
# administrator's approval (four-eyes), as does creating or editing any role template.
PRIVILEGED: frozenset[Perm] = ADMINISTRATION | {Perm.APPROVE_CASE_CLOSURE, Perm.APPROVE_STR}


def segregation_conflict(perms: Iterable[str]) -> str | None:
    """Why a set of permissions held together breaks segregation of duties, or ``None``."""
    held = set(perms)
    admin = sorted(held & ADMINISTRATION)
    casework = sorted(held & CASEWORK)
    if admin and casework:
        return f"segregation of duties: {admin[0]} and {casework[0]} cannot be held by one person"
    return None
