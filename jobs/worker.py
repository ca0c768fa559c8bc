"""The production worker class: ``rq worker -w jobs.worker.LedgerlinkWorker sync history default``.

It builds the Flask app once per process and runs each job in its context without forking,
so a job pays no start-up cost and shares the process's database pool.
"""

from __future__ import annotations

from portal.queue import AppContextWorker

from .runtime import get_app


class LedgerlinkWorker(AppContextWorker):
    """An RQ worker bound to the Ledgerlink app configured from the environment."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flask_app = get_app()
