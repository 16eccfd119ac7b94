"""Query expressions the apps share."""

from __future__ import annotations

from typing import Any

from django.db import models


class AnyOf(models.Func):
    """``column = ANY(ARRAY(subquery))``: the subquery runs once, and each branch of an OR of
    these probes its own index (PostgreSQL ORs them as bitmaps). ``column IN (subquery)`` would
    become a join, and an OR of joins scans the whole table. Plain ``IN`` elsewhere (SQLite)."""

    output_field = models.BooleanField()

    def __init__(self, column: str, subquery: models.QuerySet[Any]) -> None:
        super().__init__(models.F(column), models.Subquery(subquery))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        column, subquery = self.get_source_expressions()
        column_sql, column_params = compiler.compile(column)
        subquery_sql, subquery_params = compiler.compile(subquery)
        template = "%s = ANY(ARRAY%s)" if connection.vendor == "postgresql" else "%s IN %s"
        return template % (column_sql, subquery_sql), [*column_params, *subquery_params]


class KeyText(models.Func):
    """A primary key as the text the ledger names objects by: ``str(pk)``. PostgreSQL's cast
    gives that for integers and UUIDs alike; SQLite stores a UUID as 32 hex digits, which this
    puts back into the dashed form ``str(uuid)`` gives."""

    output_field = models.CharField()

    def __init__(self, column: str, *, uuid: bool) -> None:
        super().__init__(models.F(column))
        self.uuid = uuid

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        (column,) = self.get_source_expressions()
        sql, params = compiler.compile(column)
        if connection.vendor == "sqlite" and self.uuid:
            parts = " || '-' || ".join(
                f"substr({sql}, {start}, {length})" for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
            )
            return f"lower({parts})", params * 5
        return f"CAST({sql} AS varchar)", params
