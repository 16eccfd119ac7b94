"""PostgreSQL binds each event's repeated columns to its body, so verification need not re-parse.

The constraint is checked at every insert (the integrator's); ``audit_verify`` then checks that it
is still in place, validated, and refuses a mismatch of each column, instead of parsing every
body again. If it is missing or weakened, verification falls back to parsing every body.
"""

from typing import Any

from django.db import migrations

CONSTRAINT = "audit_event_columns_match_body"
CHECK = """
ALTER TABLE audit_event ADD CONSTRAINT audit_event_columns_match_body CHECK (
    audit_event_fields_agree(body, event_type, occurred_at, actor_id, object_type, object_id)
)
"""
FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_fields_agree(
    body bytea, event_type integer, occurred_at timestamptz, actor_id bigint, object_type text, object_id text
) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    -- coalesce: a NULL would let a CHECK pass; a body that is not JSON fails the cast (an error)
    SELECT coalesce(
        d->>'v' = '1'
        AND (d->>'type')::integer = event_type
        AND (d->>'time')::timestamptz = occurred_at
        AND (d->'actor'->>'id')::bigint IS NOT DISTINCT FROM actor_id
        AND d->'object'->>'type' = object_type
        AND d->'object'->>'id' = object_id,
        false)
    FROM (SELECT convert_from(body, 'UTF8')::jsonb AS d) AS parsed
$$;
"""


def install(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION, params=None)
        schema_editor.execute(CHECK, params=None)


def uninstall(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE audit_event DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS audit_event_fields_agree(bytea, integer, timestamptz, bigint, text, text)"
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_delivery_cursor")]
    operations = [migrations.RunPython(install, uninstall)]
