"""A writer process for the PostgreSQL-restart test: records events until told to stop.

Each action is one transaction with one ledger event; the object id of every action whose commit
returned is printed (flushed) on its own line: those are the actions that "reported success".
Database errors (the server restarting) are retried after a pause, as a web worker's next request
would be.
"""

from __future__ import annotations

import sys
import time

import django


def main(writer: int, count: int) -> None:
    django.setup()
    from django.db import DatabaseError, connection, transaction

    from audit.events import EventType
    from audit.ledger import Actor, record

    done = 0
    attempt = 0
    failed = 0
    while done < count:
        attempt += 1
        object_id = f"{writer}-{attempt}"
        try:
            with transaction.atomic():
                record(EventType.KEY_ROTATED, actor=Actor.system(f"writer {writer}"), object_id=object_id)
        except DatabaseError:
            failed += 1
            connection.close()
            time.sleep(0.05)
            continue
        print(object_id, flush=True)  # noqa: T201 (the test reads what succeeded)
        done += 1
    print(f"failed {failed}", flush=True)  # noqa: T201


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
