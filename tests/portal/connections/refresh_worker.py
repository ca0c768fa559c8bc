"""A worker process for the refresh-race test: refreshes one connection whenever told to.

Reads lines "go <epoch seconds>" on stdin, waits until that instant, calls the vault's refresh
and answers "ok <refresh-token fingerprint>" or "error <message>" on stdout.
"""

from __future__ import annotations

import hashlib
import sys
import time


def main() -> None:
    from portal import create_app
    from portal.connections import vault

    connection_id = int(sys.argv[1])
    app = create_app()
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, at = line.strip().partition(" ")
        if command != "go":
            break
        time.sleep(max(0.0, float(at) - time.time()))
        with app.app_context():
            try:
                tokens = vault.refresh(connection_id)
            except Exception as exc:  # report every failure to the test, which asserts on it
                print(f"error {type(exc).__name__}: {exc}", flush=True)
            else:
                print("ok " + hashlib.sha256((tokens.refresh_token or "").encode()).hexdigest()[:12], flush=True)


if __name__ == "__main__":
    main()
