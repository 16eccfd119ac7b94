"""Django's PostgreSQL backend, with the ledger's pending events sent with the COMMIT.

``audit.ledger.record()`` runs in every audited action, and its INSERT into ``audit_pending`` was a
round trip of its own: with sixteen web processes on two cores, each round trip is a switch to
the server and back, and that, more than the statement, was a fifth of an action's cost. Here the
connection keeps the rows an action records (in :attr:`DatabaseWrapper.ledger_pending`) and sends
them in one pipeline with the COMMIT: the same statements in the same transaction, one round
trip for all.

What stays the same for every caller:

* **Order and visibility.** Any statement that Django runs on the connection gets its cursor
  first, and the kept rows are sent before that cursor is made (:meth:`DatabaseWrapper._cursor`).
  A read in the same transaction sees them; a savepoint rolled back after them rolls them back; a
  later ``record_many`` inserts after them.
* **All or nothing.** The rows are inserted before the COMMIT, in the same transaction. If one
  fails, the COMMIT is not run: the commit raises Django's error, the action's transaction rolls
  back and its caller sees the failure, as when the INSERT failed at once. A rollback or a closed
  connection discards the kept rows.

The ledger keeps a row here only inside an open transaction that has run a statement, and only
where Django neither logs queries nor runs execute wrappers (these see every statement, so they
get the plain INSERT). Code that drives the psycopg connection itself, past Django's cursors, does
not send the kept rows first: in Caspix only read-only snapshots do, in transactions of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq

STATEMENT = b"caspix_ledger_pending"
_SQL = b"INSERT INTO audit_pending (body, recorded_at) VALUES ($1, $2)"
_TYPES = [17, 1184]  # bytea, timestamptz
_FORMATS = [1, 0]  # the body in binary, the time as text


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger_pending: list[tuple[bytes, datetime]] = []  # recorded, not yet sent
        self._ledger_prepared: object = None  # the psycopg connection the statement is prepared on

    def _cursor(self, name: str | None = None) -> Any:
        if self.ledger_pending:
            with self.wrap_database_errors:
                self._send_ledger_pending(commit=False)
        return super()._cursor(name)  # type: ignore[misc]  # private in the stubs, not in Django

    def _commit(self) -> None:
        if self.ledger_pending and self.connection is not None:
            with self.wrap_database_errors:
                self._send_ledger_pending(commit=True)
        super()._commit()  # type: ignore[misc]  # psycopg's own commit: nothing left to do once the COMMIT has run

    def _rollback(self) -> None:
        self.ledger_pending.clear()
        super()._rollback()  # type: ignore[misc]

    def _close(self) -> None:
        self.ledger_pending.clear()
        super()._close()  # type: ignore[misc]

    def _send_ledger_pending(self, *, commit: bool) -> None:
        """Send the kept rows, and the COMMIT if asked, in one pipeline; raise the first error.

        The rows are taken off the list first: whatever happens, none is sent twice (a failure
        leaves the transaction failed, and only a rollback follows)."""
        rows, self.ledger_pending = self.ledger_pending, []
        raw: psycopg.Connection[Any] = self.connection
        pgconn = raw.pgconn
        if self._ledger_prepared is not raw:  # a new connection is a new session
            _checked(raw, pgconn.prepare(STATEMENT, _SQL, _TYPES))
            self._ledger_prepared = raw
        error: psycopg.Error | None = None
        pgconn.enter_pipeline_mode()
        try:
            for body, recorded_at in rows:
                pgconn.send_query_prepared(STATEMENT, [body, recorded_at.isoformat().encode()], _FORMATS)
            if commit:
                pgconn.send_query_params(b"COMMIT", None)
            pgconn.pipeline_sync()
            while True:
                result = pgconn.get_result()
                if result is None:  # the end of one statement's results
                    if pgconn.status == pq.ConnStatus.BAD:
                        raise psycopg.OperationalError(
                            f"the connection was lost: {pgconn.get_error_message(raw.info.encoding)}"
                        )
                    continue
                if result.status == pq.ExecStatus.PIPELINE_SYNC:
                    break
                if result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                    error = psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
                # COMMAND_OK, or PIPELINE_ABORTED for what followed an error: not run
        finally:
            if pgconn.status == pq.ConnStatus.OK and pgconn.pipeline_status != pq.PipelineStatus.OFF:
                pgconn.exit_pipeline_mode()
        if error is not None:
            raise error


def _checked(raw: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
