"""Ship the five role templates of PRODUCT.md with their business permissions."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

SHIPPED = {
    "admin": (
        "Administrator",
        (
            "Users, role templates, teams, queues, routing rules, API clients and settings; reads the audit "
            "ledger. Never works or approves cases."
        ),
        [
            "audit.view_ledger",
            "accounts.manage_users",
            "accounts.manage_roles",
            "accounts.manage_teams",
            "accounts.manage_api_clients",
            "accounts.manage_settings",
            "accounts.approve_access_change",
        ],
    ),
    "analyst": (
        "Fraud analyst",
        "Works the cases of their teams' queues, proposes closures and drafts STRs.",
        ["cases.work_cases", "reporting.draft_str"],
    ),
    "lead": (
        "Team lead",
        "An analyst who also approves closures and STR submissions made by others in their teams.",
        ["cases.work_cases", "reporting.draft_str", "cases.approve_closure", "reporting.approve_str"],
    ),
    "manager": (
        "Manager",
        "Read-only dashboards without customer data; signs off access reviews.",
        ["reporting.view_dashboard", "reporting.sign_off_access_review"],
    ),
    "auditor": (
        "Auditor",
        "Read-only audit ledger, integrity status, evidence packs, access reviews and regulatory exports.",
        ["audit.view_ledger", "reporting.export_evidence", "reporting.view_access_review"],
    ),
}


def ship_roles(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Role = apps.get_model("accounts", "Role")
    RolePermission = apps.get_model("accounts", "RolePermission")
    for slug, (name, description, permissions) in SHIPPED.items():
        role, _ = Role.objects.update_or_create(
            slug=slug, defaults={"name": name, "description": description, "builtin": True}
        )
        for permission in permissions:
            RolePermission.objects.get_or_create(role=role, permission=permission)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(ship_roles, migrations.RunPython.noop)]
