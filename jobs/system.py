"""Jobs about the job system itself."""

from __future__ import annotations

import os
import socket

from portal.models import SyncRun

from .runtime import tracked


@tracked
def queue_check(run: SyncRun, log) -> dict:
    """Do nothing but say which worker picked the job up: proves the queue is served."""
    run.progress_total = run.progress_done = 1
    run.message = f"Picked up by worker pid {os.getpid()} on {socket.gethostname()}."
    log.info("queue check ran")
    return {"worker_pid": os.getpid()}
