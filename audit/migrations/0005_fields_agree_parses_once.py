"""The constraint binding an event's columns to its body parses the body once, in PL/pgSQL.

Migration 0004's function was SQL with a subquery, which PostgreSQL cannot inline: each insert ran
it through the executor, and the check cost as much as the rest of moving an event into the
ledger (16 µs of 32 an event). The same test in PL/pgSQL parses the body into one variable and
evaluates the comparison as a simple expression. What it accepts and refuses is unchanged (and
``audit_verify`` probes it column by column), so the rows already checked stand.
"""

import importlib
from typing import Any

from django.db import migrations

PLPGSQL = """
CREATE OR REPLACE FUNCTION audit_event_fields_agree(
    body bytea, event_type integer, occurred_at timestamptz, actor_id bigint, object_type text, object_id text
) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    -- a body that is not JSON fails the cast (an error)
    d jsonb := convert_from(body, 'UTF8')::jsonb;
BEGIN
    -- coalesce: a NULL would let a CHECK pass
    RETURN coalesce(
        d->>'v' = '1'
        AND (d->>'type')::integer = event_type
        AND (d->>'time')::timestamptz = occurred_at
        AND (d->'actor'->>'id')::bigint IS NOT DISTINCT FROM actor_id
        AND d->'object'->>'type' = object_type
        AND d->'object'->>'id' = object_id,
        false);
END
$$;
"""
# Backwards: migration 0004's function, as it was.
SQL = importlib.import_module("audit.migrations.0004_event_columns_match_body").FUNCTION


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PLPGSQL, params=None)


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_event_columns_match_body")]
    operations = [migrations.RunPython(forwards, backwards)]
