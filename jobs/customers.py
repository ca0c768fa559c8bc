"""Customer linking jobs: fetch the ledger's customers and suggest links."""

from __future__ import annotations

from portal.customers import services
from portal.extensions import db
from portal.models import Connection, SyncRun

from .runtime import tracked


@tracked
def suggest_links(run: SyncRun, log) -> dict:
    """Fetch every ledger customer page by page, then suggest links for the unlinked customers."""
    connection = db.session.get(Connection, run.parameters["connection_id"])
    if connection is None:
        raise LookupError(f"Connection {run.parameters['connection_id']} does not exist")
    fetched = services.fetch_ledger_customers(connection, page_size=run.parameters.get("page_size"))
    run.message = f"Fetched {fetched['fetched']} ledger customers; matching…"
    db.session.commit()
    log.info("fetched ledger customers", extra={"counts": fetched})

    # Called every 500 customers: the page polls the run row for the progress bar.
    def progress(done: int, total: int) -> None:
        run.progress_total, run.progress_done = total, done
        db.session.commit()

    counts = services.run_suggestions(connection, run_id=run.id, progress=progress)
    by_method = ", ".join(f"{n} by {m.replace('_', ' ')}" for m, n in sorted(counts["by_method"].items()))
    run.message = (
        f"Fetched {fetched['fetched']} ledger customers ({fetched['deleted']} gone since last time). "
        f"{counts['suggested']} of {counts['customers']} unlinked customers have a suggestion"
        f"{f' ({by_method})' if by_method else ''}; {counts['ambiguous']} are ambiguous."
    )
    return {**{f"ledger_{k}": v for k, v in fetched.items()}, **counts}
