"""The ledger's tables refuse UPDATE, DELETE and TRUNCATE in the database itself.

PostgreSQL: a trigger function raises on UPDATE and DELETE (row triggers) and on TRUNCATE
(statement triggers); the grant script ``deploy/postgres/grants.sql`` also gives the
application's role only INSERT and SELECT on these tables. SQLite (the embedded default):
triggers refuse UPDATE and DELETE (SQLite has no TRUNCATE). The triggers: ``caspix/appendonly.py``.
"""

from typing import Any

from django.db import migrations

from caspix import appendonly

APPEND_ONLY = ("audit_event", "audit_tree_node", "audit_checkpoint")


def install(apps: Any, schema_editor: Any) -> None:
    appendonly.install(schema_editor, APPEND_ONLY, prefix="audit", what="the audit ledger is append-only")


def uninstall(apps: Any, schema_editor: Any) -> None:
    appendonly.uninstall(schema_editor, APPEND_ONLY, prefix="audit")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, uninstall)]
