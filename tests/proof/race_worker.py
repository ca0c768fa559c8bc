"""A worker process for the refresh races: refreshes several connections at once whenever told to.

Like tests/portal/connections/refresh_worker.py, but one process serves every connection of the
race (a long-lived thread per connection, as a worker with several jobs in flight would): reads lines
"go <epoch seconds> <connection id>,<connection id>..." on stdin, waits until that instant, refreshes
every listed connection through the vault at once and answers one JSON line mapping each connection
id to "ok <refresh-token fingerprint>" or "error <class>: <message>".
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    from portal import create_app
    from portal.connections import vault

    app = create_app()
    print("ready", flush=True)

    def refresh(connection_id: str) -> tuple[str, str]:
        with app.app_context():
            try:
                tokens = vault.refresh(int(connection_id))
            except Exception as exc:  # every failure goes to the test, which asserts on it
                return connection_id, f"error {type(exc).__name__}: {exc}"
            fingerprint = hashlib.sha256((tokens.refresh_token or "").encode()).hexdigest()[:12]
            return connection_id, f"ok {fingerprint}"

    # Threads live as long as the process, as a worker's do, each with its pooled HTTP session.
    pool = ThreadPoolExecutor(max_workers=8)
    for line in sys.stdin:
        command, at, ids = [*line.strip().split(" "), "", ""][:3]
        if command != "go":
            break
        time.sleep(max(0.0, float(at) - time.time()))
        answers = dict(pool.map(refresh, ids.split(",")))
        print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
