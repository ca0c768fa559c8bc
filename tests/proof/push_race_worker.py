"""A worker process for the push races: pushes invoices of several connections at once whenever told to.

Reads lines "go <epoch seconds> <connection id>:<invoice id>+<invoice id>,..." on stdin, waits until that
instant, then pushes each connection's invoices in a thread of its own through the job's path
(``push.push_invoices`` with its lanes) on an adapter the process keeps for the whole race, as a
long push job keeps one: the ledger's clock has moved on between rounds, so the first call of a
round meets an access token the ledger refuses and the refresh happens mid-job. Answers one JSON
line mapping each connection id to "ok <states> <refresh-token fingerprint>" or "error <class>: <message>".
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    from portal import create_app
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection, ExternalRecord, Invoice, RecordKind
    from portal.sync import push

    app = create_app()
    adapters: dict[int, object] = {}
    print("ready", flush=True)

    def push_some(item: str) -> tuple[str, str]:
        connection_id, ids = item.split(":")
        invoice_ids = [int(i) for i in ids.split("+")]
        with app.app_context():
            try:
                connection = db.session.get(Connection, int(connection_id))
                adapter = adapters.get(connection.id)
                if adapter is None:
                    adapter = adapters[connection.id] = vault.fresh_adapter(connection)
                helpers = functools.partial(vault.joined_adapter, connection, adapter)
                push.push_invoices(connection, invoice_ids, adapter, helpers=helpers)
                db.session.commit()
                states = sorted(
                    db.session.scalars(
                        db.select(ExternalRecord.state).where(
                            ExternalRecord.connection_id == connection.id,
                            ExternalRecord.kind == RecordKind.invoice,
                            ExternalRecord.local_id.in_(invoice_ids),
                        )
                    )
                )
                assert all(db.session.get(Invoice, i) for i in invoice_ids)
            except Exception as exc:  # every failure goes to the test, which asserts on it
                db.session.rollback()
                return connection_id, f"error {type(exc).__name__}: {exc}"
            refresh = adapter.tokens.refresh_token or ""
            fingerprint = hashlib.sha256(refresh.encode()).hexdigest()[:12]
            return connection_id, f"ok {'+'.join(s.value for s in states)} {fingerprint}"

    pool = ThreadPoolExecutor(max_workers=8)
    for line in sys.stdin:
        command, at, items = [*line.strip().split(" "), "", ""][:3]
        if command != "go":
            break
        time.sleep(max(0.0, float(at) - time.time()))
        answers = dict(pool.map(push_some, items.split(",")))
        print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
