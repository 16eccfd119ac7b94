"""Administrators read the audit ledger too (the ledger browser is for auditors and admins).

Installations that shipped their roles before this get the grant here; new ones get it from
0002, which ships the current templates.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def grant(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Role = apps.get_model("accounts", "Role")
    RolePermission = apps.get_model("accounts", "RolePermission")
    admin = Role.objects.filter(slug="admin", builtin=True).first()
    if admin is not None:
        RolePermission.objects.get_or_create(role=admin, permission="audit.view_ledger")
        admin.description = (
            "Users, role templates, teams, queues, routing rules, API clients and settings; reads the audit "
            "ledger. Never works or approves cases."
        )
        admin.save(update_fields=["description"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_totp_device")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
