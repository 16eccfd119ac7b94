"""Tables the database itself keeps append-only: triggers refuse UPDATE and DELETE of a row, and
TRUNCATE of a table that holds rows (TRUNCATE of an empty one destroys nothing, and is how test
databases are reset). PostgreSQL and SQLite (which has no TRUNCATE).

Migrations call :func:`install` and :func:`uninstall` (the audit ledger's tables, case notes and
evidence); the grant script ``deploy/postgres/grants.sql`` also withholds UPDATE and DELETE on
them from the application's role.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_POSTGRES_FUNCTIONS = """
CREATE OR REPLACE FUNCTION {prefix}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{what}: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- TRUNCATE of an empty table destroys nothing (and is how test databases are reset).
CREATE OR REPLACE FUNCTION {prefix}_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    holds_rows boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', TG_TABLE_NAME) INTO holds_rows;
    IF holds_rows THEN
        RAISE EXCEPTION '{what}: TRUNCATE on % refused', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;
"""


def install(schema_editor: Any, tables: Sequence[str], *, prefix: str, what: str) -> None:
    """Make ``tables`` append-only; ``prefix`` names the trigger functions, ``what`` starts the
    error (``the audit ledger is append-only``)."""
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(_POSTGRES_FUNCTIONS.format(prefix=prefix, what=what), params=None)
        for table in tables:
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {prefix}_refuse_change()"
            )
            schema_editor.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {prefix}_refuse_truncate()"
            )
    elif vendor == "sqlite":
        for table in tables:
            for operation in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{what}: {operation} on {table} refused'); END"
                )
    else:
        raise RuntimeError(f"no append-only triggers for {vendor}")


def uninstall(schema_editor: Any, tables: Sequence[str], *, prefix: str) -> None:
    vendor = schema_editor.connection.vendor
    for table in tables:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    if vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {prefix}_refuse_change()")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {prefix}_refuse_truncate()")
