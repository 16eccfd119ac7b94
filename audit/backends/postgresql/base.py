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
  A read in the same transaction sees them, and a later ``record_many`` inserts after them. A
  savepoint rolled back drops the rows recorded since it, unsent: the rollback would undo them.
* **All or nothing.** The rows are inserted before the COMMIT, in the same transaction. If one
  fails, the COMMIT is not run: the commit raises Django's error, the action's transaction rolls
  back and its caller sees the failure. If sending fails before another statement, that
  statement raises; and should the caller catch the error, the transaction still cannot commit
  (unless a savepoint open at the failure is rolled back): :meth:`DatabaseWrapper._commit` raises
  instead of sending a COMMIT that PostgreSQL would answer by rolling back without an error. It
  does so for any transaction that failed on the server, whoever caught the error. A rollback or
  a closed connection discards the kept rows.
* **Waiting.** The wait for the server's answer is in ``poll``: other threads run and signals
  arrive. An exception that interrupts it (a time limit's) closes the connection, as its state
  is then unknown; the server may or may not have committed, as with any interrupted commit,
  and either way the change and its event stand or fall together.

The ledger keeps a row here only inside an open transaction that has run a statement, and only
where Django neither logs queries nor runs execute wrappers (these see every statement, so they
get the plain INSERT), and not with Django's connection pool (one psycopg connection shared by
several wrappers would share the prepared statement). Code that drives the psycopg connection
itself, past Django's cursors, does not send the kept rows first, nor does a cursor made before
``record()`` and used after it: in Caspix only read-only snapshots drive psycopg themselves, in
transactions of their own.
"""

from __future__ import annotations

import select
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import DatabaseError
from django.db.backends.postgresql import base
from psycopg import pq

STATEMENT = b"caspix_ledger_pending"
_SQL = b"INSERT INTO audit_pending (body, recorded_at) VALUES ($1, $2)"
_TYPES = [17, 1184]  # bytea, timestamptz
_FORMATS = [1, 0]  # the body in binary, the time as text
_NO_SUCH_STATEMENT = "26000"  # invalid_sql_statement_name: deallocated behind our back
_STATEMENT_EXISTS = "42P05"  # duplicate_prepared_statement


@dataclass(frozen=True, slots=True)
class KeptRow:
    body: bytes
    recorded_at: datetime
    savepoints: frozenset[str]  # open when it was recorded: rolling one back drops the row


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger_pending: list[KeptRow] = []  # recorded, not yet sent
        self._ledger_prepared: object = None  # the psycopg connection the statement is prepared on
        # Sending kept rows failed, with these savepoints open: the transaction must not commit,
        # unless one of them is rolled back (which undoes what failed).
        self._ledger_failed: frozenset[str] | None = None
        # Rows are kept only on a connection of its own: Django's pool shares one psycopg
        # connection, and the prepared statement with it, between wrappers.
        self.keeps_ledger_rows = not (self.settings_dict.get("OPTIONS") or {}).get("pool")

    def keep_ledger_row(self, body: bytes, recorded_at: datetime) -> None:
        self.ledger_pending.append(KeptRow(body, recorded_at, self._open_savepoints()))

    def _open_savepoints(self) -> frozenset[str]:
        return frozenset(filter(None, self.savepoint_ids))  # None: an atomic block without one

    def send_ledger_rows(self) -> None:
        """Send the kept rows now (before a statement that does not go through :meth:`_cursor`)."""
        if self.ledger_pending:
            with self.wrap_database_errors:
                self._send_ledger_pending(commit=False)

    def _cursor(self, name: str | None = None) -> Any:
        self.send_ledger_rows()
        return super()._cursor(name)  # type: ignore[misc]  # private in the stubs, not in Django

    def _savepoint_rollback(self, sid: str) -> None:
        # what was recorded since the savepoint is undone by its rollback: it need not be sent
        # (and a failure to send it must not fail the rollback)
        self.ledger_pending = [row for row in self.ledger_pending if sid not in row.savepoints]
        super()._savepoint_rollback(sid)  # type: ignore[misc]
        if self._ledger_failed is not None and sid in self._ledger_failed:
            self._ledger_failed = None

    def _commit(self) -> None:
        if self.connection is not None:
            if (
                self._ledger_failed is not None
                or self.connection.pgconn.transaction_status == pq.TransactionStatus.INERROR
            ):
                # A statement failed and the error was caught without a savepoint rolled back:
                # PostgreSQL would answer COMMIT by rolling back, without an error. Say so.
                raise DatabaseError("the transaction failed before its commit, and was not committed")
            if self.ledger_pending:
                with self.wrap_database_errors:
                    self._send_ledger_pending(commit=True)
        super()._commit()  # type: ignore[misc]  # psycopg's own commit: nothing left to do once the COMMIT has run

    def _rollback(self) -> None:
        self.ledger_pending.clear()
        self._ledger_failed = None
        super()._rollback()  # type: ignore[misc]

    def _close(self) -> None:
        self.ledger_pending.clear()
        self._ledger_failed = None
        self._ledger_prepared = None
        super()._close()  # type: ignore[misc]

    def _send_ledger_pending(self, *, commit: bool) -> None:
        """Send the kept rows, and the COMMIT if asked, in one pipeline; raise the first error.

        The rows leave the list only once the server has taken them all. Until then the
        transaction is marked failed: whatever interrupts the exchange (an error, a signal's
        exception, a lost connection), it cannot be committed without its rows, unless a
        savepoint open now is rolled back, which drops them too. A connection left in an unknown
        state by an interruption is closed.
        """
        rows = self.ledger_pending
        raw: psycopg.Connection[Any] = self.connection
        pgconn = raw.pgconn
        self._ledger_failed = self._open_savepoints()
        if self._ledger_prepared is not raw:  # a new connection is a new session
            prepared = pgconn.prepare(STATEMENT, _SQL, _TYPES)
            if prepared.status == pq.ExecStatus.COMMAND_OK or _sqlstate(prepared) == _STATEMENT_EXISTS:
                self._ledger_prepared = raw
            _checked(raw, prepared)
        error: psycopg.Error | None = None
        pgconn.enter_pipeline_mode()
        try:
            for row in rows:
                pgconn.send_query_prepared(STATEMENT, [row.body, row.recorded_at.isoformat().encode()], _FORMATS)
            if commit:
                pgconn.send_query_params(b"COMMIT", None)
            pgconn.pipeline_sync()
            while True:
                result = _next_result(raw)
                if result is None:  # the end of one statement's results
                    continue
                if result.status == pq.ExecStatus.PIPELINE_SYNC:
                    break
                if result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                    if _sqlstate(result) == _NO_SUCH_STATEMENT:
                        self._ledger_prepared = None  # prepared again in the next transaction
                    error = psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
                # COMMAND_OK, or PIPELINE_ABORTED for what followed an error: not run
            pgconn.exit_pipeline_mode()
        except BaseException:
            # Interrupted with answers unread: the connection's state is unknown. Closed as
            # Django closes one (inside an atomic block, the block then ends without it), so that
            # the interruption itself reaches the caller.
            self.close()
            raise
        if error is not None:
            raise error
        self.ledger_pending = []
        self._ledger_failed = None


def _next_result(raw: psycopg.Connection[Any]) -> pq.abc.PGresult | None:
    """libpq's next result, waiting for it in ``poll`` rather than in libpq: the wait releases
    the interpreter lock and lets signals through, as psycopg's own waits do."""
    pgconn = raw.pgconn
    while pgconn.flush():  # the output not sent yet (libpq may leave some in nonblocking mode)
        _wait(pgconn.socket, select.POLLOUT)
    while pgconn.is_busy():
        _wait(pgconn.socket, select.POLLIN)
        pgconn.consume_input()
    if pgconn.status == pq.ConnStatus.BAD:
        raise psycopg.OperationalError(f"the connection was lost: {pgconn.get_error_message(raw.info.encoding)}")
    return pgconn.get_result()


def _wait(socket: int, event: int) -> None:
    """Until ``socket`` is ready (``poll``: unlike ``select``, any descriptor number will do)."""
    poller = select.poll()
    poller.register(socket, event | select.POLLERR | select.POLLHUP)
    poller.poll()


def _sqlstate(result: pq.abc.PGresult) -> str:
    return (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()


def _checked(raw: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
    if result.status != pq.ExecStatus.COMMAND_OK:
        raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
