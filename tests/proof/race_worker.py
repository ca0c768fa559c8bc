"""A worker process for the refresh races: refreshes several connections at once whenever told to.

Like tests/portal/connections/refresh_worker.py, but one process serves every connection of the
race (a thread per connection, as an ``rq worker`` with several jobs in flight would): reads lines
"go <epoch seconds> <connection id>,<connection id>..." on stdin, waits until that instant, refreshes
every listed connection through the vault at once and answers one JSON line mapping each connection
id to "ok <refresh-token fingerprint>" or "error <class>: <message>".
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time


def main() -> None:
    from portal import create_app
    from portal.connections import vault

    app = create_app()
    print("ready", flush=True)

    def refresh(connection_id: int, answers: dict[str, str]) -> None:
        with app.app_context():
            try:
                tokens = vault.refresh(connection_id)
            except Exception as exc:  # every failure goes to the test, which asserts on it
                answers[str(connection_id)] = f"error {type(exc).__name__}: {exc}"
            else:
                fingerprint = hashlib.sha256((tokens.refresh_token or "").encode()).hexdigest()[:12]
                answers[str(connection_id)] = f"ok {fingerprint}"

    for line in sys.stdin:
        command, at, ids = [*line.strip().split(" "), "", ""][:3]
        if command != "go":
            break
        time.sleep(max(0.0, float(at) - time.time()))
        answers: dict[str, str] = {}
        threads = [threading.Thread(target=refresh, args=(int(cid), answers)) for cid in ids.split(",")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
