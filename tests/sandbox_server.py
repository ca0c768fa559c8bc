"""Serve the provider sandbox on a free loopback port in a background thread."""

from __future__ import annotations

import socket
import threading
import time

import requests
from waitress.server import create_server


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    """A WSGI app served by waitress in a daemon thread until :meth:`close`."""

    def __init__(self, app, *, threads: int = 16) -> None:
        self.server = create_server(app, host="127.0.0.1", port=free_port(), threads=threads)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"server at {self.url} did not start")

    def close(self) -> None:
        """Stop serving."""
        self.server.close()
