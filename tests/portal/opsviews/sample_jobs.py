"""Job functions the job-console tests put on the real queues."""

from __future__ import annotations

from jobs.runtime import tracked


@tracked
def explode(run, log) -> dict:
    """Fail the way a job with a broken ledger call fails."""
    raise RuntimeError("the ledger answered 500 three times")


@tracked
def settle(run, log) -> dict:
    """Succeed at once."""
    return {"done": 1}


@tracked
def linger(run, log) -> dict:
    """Keep busy for half a minute, long enough to be stopped while it runs."""
    import time

    time.sleep(30)
    return {"done": 1}
