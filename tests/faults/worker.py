"""The production worker class with one addition: SIGUSR1 breaks the process's database connections.

On SQLite there is no server whose backends a test can terminate; the closest equivalent of a
dropped connection is a DBAPI connection closed underneath the pool. Every connection the
engine opens is remembered; on SIGUSR1 each is closed at the driver level, so the next statement
on it fails as a dropped PostgreSQL connection does ("Cannot operate on a closed database", which
SQLAlchemy's SQLite dialect treats as a disconnect). The handler runs in the main thread between
bytecodes, where the worker runs its jobs, so it never closes a connection in the middle of a call.
"""

from __future__ import annotations

import contextlib
import os
import signal

from sqlalchemy import event

from jobs.worker import LedgerlinkWorker
from portal.extensions import db

#: Every DBAPI connection the engine opened in this process.
_opened: list = []


def _remember(dbapi_connection, _record) -> None:
    _opened.append(dbapi_connection)


def _break_connections(_signum, _frame) -> None:
    """Close every DBAPI connection the pool handed out or keeps, as a server restart would."""
    os.write(2, f"fault: closed {len(_opened)} database connections underneath the pool\n".encode())
    for dbapi_connection in _opened:
        # Already closed, or a driver that refuses: nothing more to break.
        with contextlib.suppress(Exception):
            dbapi_connection.close()
    _opened.clear()


#: Invoices one QuickBooks batch call creates in these workers: a case's twelve invoices take
#: several calls, so that a fault (a revoked grant, a lost answer, a kill) can land between them.
BATCH_SIZE = 3


class FaultWorker(LedgerlinkWorker):
    """:class:`jobs.worker.LedgerlinkWorker` whose database connections a test can break with SIGUSR1."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flask_app.config["PUSH_BATCH_SIZE"] = BATCH_SIZE
        with self.flask_app.app_context():
            event.listen(db.engine, "connect", _remember)
        signal.signal(signal.SIGUSR1, _break_connections)
