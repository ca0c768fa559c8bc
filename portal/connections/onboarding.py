"""The onboarding checklist of a connection and its go-live gate.

A new connection pushes nothing by itself until support takes it live: before that the scheduler
skips it and its records wait as "not live yet" (``Connection.live_since`` is None). The
checklist leads there, each step with its state and the screen that finishes it:

1. connected — a company pinned with working tokens;
2. reference data read — done by the "first data run" right after pinning (and after an
   authorization link completes);
3. defaults complete — what the ledger needs on every invoice (the mappings' own rules:
   :func:`portal.mappings.services.default_gaps`);
4. "Check mappings" clean — the last check found no error, and no mapping changed since;
5. customers reviewed — the ledger's customers fetched for suggestions and the customer mode chosen;
6. test invoice passed — the last test invoice made from the mappings was booked and compared;
7. go live — from a connection date (``sync_from``); older records go by the historical push.

Services flush; views commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import url_for
from sqlalchemy import select

from .. import audit
from ..database import utcnow
from ..extensions import db
from ..models import Connection, ConnectionStatus, SyncRun, SyncRunKind
from ..runs import start_run

REFERENCE_JOB = "jobs.reference.refresh_reference_data"
#: Steps that must be done before going live without an explicit confirmation.
REQUIRED = ("connected", "reference", "defaults", "check", "customers", "test")
#: Where a connection stands, as a badge: "live", "not live yet" or none for a disconnected one.
NOT_LIVE = "Not live yet"


class GoLiveRefused(Exception):
    """Going live cannot happen (or needs a confirmation); the message says why."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Step:
    """One step of the checklist."""

    key: str
    title: str
    #: "done", "todo", "running" (a job is at it), "failed" or "stale" (done once, outdated since).
    state: str
    detail: str
    fix_url: str | None = None
    fix_label: str | None = None
    #: The problems still open, as (message, fix url, fix label).
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    run: SyncRun | None = None

    @property
    def done(self) -> bool:
        """Say whether the step is finished."""
        return self.state == "done"

    @property
    def state_label(self) -> str:
        """Return the state in words."""
        return {"done": "Done", "todo": "To do", "running": "Running", "failed": "Failed", "stale": "Check again"}[
            self.state
        ]


@dataclass
class Checklist:
    """The steps and where the connection stands."""

    connection: Connection
    steps: list[Step]

    @property
    def open_steps(self) -> list[Step]:
        """Return the required steps not done yet."""
        return [s for s in self.steps if s.key in REQUIRED and not s.done]

    @property
    def done_count(self) -> int:
        """Return how many required steps are done."""
        return sum(1 for s in self.steps if s.key in REQUIRED and s.done)

    @property
    def ready(self) -> bool:
        """Say whether every required step is done."""
        return not self.open_steps

    def step(self, key: str) -> Step:
        """Return the step of ``key``."""
        return next(s for s in self.steps if s.key == key)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stored_time(raw: str | None) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(raw)) if raw else None
    except ValueError:
        return None


def latest_run(connection: Connection, kind: SyncRunKind) -> SyncRun | None:
    """Return the connection's newest run of ``kind``, or None."""
    return db.session.scalar(
        select(SyncRun)
        .where(SyncRun.kind == kind, SyncRun.parameters["connection_id"].as_integer() == connection.id)
        .order_by(SyncRun.id.desc())
        .limit(1)
    )


def start_first_data_run(connection: Connection, started_by=None) -> SyncRun:
    """Enqueue the reading of the ledger's reference data right after a company was pinned.

    Commits (the run must exist before a worker looks for it).
    """
    return start_run(
        SyncRunKind.reference_refresh,
        REFERENCE_JOB,
        queue_name="default",
        parameters={"connection_id": connection.id, "first_data_run": True},
        started_by=started_by,
    )


def checklist(connection: Connection) -> Checklist:
    """Return the onboarding steps of ``connection`` with their states."""
    from ..customers import services as customers
    from ..mappings import services as mappings

    mappings_url = url_for("mappings.show_mappings", connection_id=connection.id)
    page = url_for("connections.show_connection", connection_id=connection.id)
    steps: list[Step] = []

    # 1. Connected.
    pinned = bool(connection.external_company_id) and connection.status is not ConnectionStatus.pending_authorization
    if not connection.is_live:
        steps.append(Step("connected", "Connected", "failed", "Disconnected: connect the business unit anew."))
    elif connection.status is ConnectionStatus.needs_reauthorization:
        steps.append(
            Step(
                "connected",
                "Connected",
                "failed",
                f"Pinned to {connection.company_label}, but the ledger no longer accepts the authorization.",
                page + "#status",
                "Re-authorize",
            )
        )
    else:
        steps.append(
            Step(
                "connected",
                "Connected",
                "done" if pinned else "todo",
                f"Pinned to {connection.company_label}." if pinned else "No company pinned yet.",
            )
        )

    # 2. Reference data read (the first data run).
    refs = mappings.reference_data(connection)
    run = latest_run(connection, SyncRunKind.reference_refresh)
    if refs:
        read_at = _aware(max(_aware(r.fetched_at) for r in refs.values()))
        steps.append(
            Step(
                "reference",
                "Reference data read",
                "done",
                f"{len(refs)} lists read from the ledger, last at {read_at:%Y-%m-%d %H:%M} UTC.",
                mappings_url + "#reference",
                "Read again",
            )
        )
    elif run is not None and not run.status.finished:
        steps.append(
            Step(
                "reference",
                "Reference data read",
                "running",
                "Reading the ledger's items, tax codes, accounts and other lists…",
                url_for("system.show_job", run_id=run.id),
                "Watch the run",
                run=run,
            )
        )
    else:
        failed = run is not None and run.status.value == "failed"
        steps.append(
            Step(
                "reference",
                "Reference data read",
                "failed" if failed else "todo",
                f"Reading the ledger failed: {run.message}"
                if run is not None and failed and run.message
                else "Not read yet.",
                mappings_url + "#reference",
                "Read the reference data",
            )
        )

    # 3. Defaults complete for this ledger.
    if not refs:
        steps.append(
            Step(
                "defaults",
                "Defaults complete",
                "todo",
                "The defaults are chosen from the ledger's lists: read the reference data first.",
                mappings_url + "#defaults",
                "Open the mappings",
            )
        )
    else:
        gaps = mappings.default_gaps(connection, refs)
        steps.append(
            Step(
                "defaults",
                "Defaults complete",
                "todo" if gaps else "done",
                f"{len(gaps)} thing(s) the ledger needs are not set."
                if gaps
                else "Every code the ledger needs on an invoice is set.",
                mappings_url + "#defaults",
                "Set the defaults",
                problems=[(g.message, g.fix_url, g.fix_label) for g in gaps],
            )
        )

    # 4. "Check mappings" clean.
    check = connection.onboarding_step("preflight")
    checked_at = _stored_time(check.get("at"))
    changed_at = mappings.last_mapping_change(connection)
    check_url = mappings_url + "#preflight"
    if not check:
        steps.append(Step("check", "Check mappings clean", "todo", "Not run yet.", check_url, "Check mappings"))
    elif check.get("error"):
        steps.append(
            Step(
                "check",
                "Check mappings clean",
                "failed",
                f"The check could not read the ledger: {check['error']}",
                check_url,
                "Check again",
            )
        )
    elif check.get("errors"):
        steps.append(
            Step(
                "check",
                "Check mappings clean",
                "failed",
                f"The last check ({checked_at:%Y-%m-%d %H:%M} UTC) found {check['errors']} problem(s).",
                check_url,
                "Fix and check again",
            )
        )
    elif checked_at is not None and changed_at is not None and changed_at > checked_at:
        steps.append(
            Step(
                "check",
                "Check mappings clean",
                "stale",
                f"Clean at {checked_at:%Y-%m-%d %H:%M} UTC, but the mappings changed since.",
                check_url,
                "Check again",
            )
        )
    else:
        warnings = check.get("warnings") or 0
        steps.append(
            Step(
                "check",
                "Check mappings clean",
                "done",
                f"No problem at {checked_at:%Y-%m-%d %H:%M} UTC"
                + (f" ({warnings} warning(s) to read)." if warnings else "."),
                check_url,
                "Check again",
            )
        )

    # 5. Customers reviewed.
    customers_url = url_for("customers.show_customer_links", connection_id=connection.id)
    fetched = customers.last_fetched_at(connection)
    mode_chosen = bool(connection.onboarding_step("customer_mode")) or "customer_mode" in (connection.settings or {})
    suggest_run = latest_run(connection, SyncRunKind.customer_match)
    mode_words = customers.CUSTOMER_MODES.get(customers.customer_mode(connection), "")
    if fetched and mode_chosen:
        steps.append(
            Step(
                "customers",
                "Customers reviewed",
                "done",
                f"Ledger customers fetched {fetched:%Y-%m-%d %H:%M} UTC; mode: {mode_words.lower()}.",
                customers_url,
                "Review the customer links",
            )
        )
    else:
        missing = [
            *([] if fetched else ["fetch the ledger's customers for link suggestions"]),
            *([] if mode_chosen else ["choose the customer mode"]),
        ]
        running = suggest_run is not None and not suggest_run.status.finished
        steps.append(
            Step(
                "customers",
                "Customers reviewed",
                "running" if running else "todo",
                "Still to do: " + " and ".join(missing) + ".",
                customers_url,
                "Review the customer links",
                run=suggest_run if running else None,
            )
        )

    # 6. Test invoice passed.
    test = connection.onboarding_step("test_invoice")
    tested_at = _stored_time(test.get("at"))
    test_url = page + "#test-box"
    if not test:
        steps.append(
            Step("test", "Test invoice passed", "todo", "No test invoice yet.", test_url, "Create a test invoice")
        )
    elif test.get("passed"):
        steps.append(
            Step(
                "test",
                "Test invoice passed",
                "done",
                f"Booked and compared at {tested_at:%Y-%m-%d %H:%M} UTC.",
                test_url,
                "Test again",
            )
        )
    else:
        steps.append(
            Step(
                "test",
                "Test invoice passed",
                "failed",
                f"The last test ({tested_at:%Y-%m-%d %H:%M} UTC) failed: {test.get('message') or 'see the test box'}",
                test_url,
                "Test again",
            )
        )

    # 7. Go live.
    if connection.went_live:
        steps.append(
            Step(
                "live",
                "Live",
                "done",
                f"Live since {connection.live_since:%Y-%m-%d %H:%M} UTC: records dated from "
                f"{connection.sync_from:%Y-%m-%d} are pushed automatically.",
            )
        )
    else:
        steps.append(
            Step(
                "live",
                "Go live",
                "todo",
                "Nothing is pushed automatically yet: records wait until the connection goes live.",
                page + "#go-live",
                "Go live",
            )
        )
    return Checklist(connection, steps)


def go_live(
    connection: Connection,
    sync_from: datetime,
    *,
    open_steps_confirmed: bool = False,
    actor_label: str | None = None,
) -> Checklist:
    """Take the connection live from ``sync_from``: from now on its due records are pushed automatically.

    Records dated before ``sync_from`` stay for the historical push. Audited.

    :raise GoLiveRefused: for a disconnected connection, one live already, one that needs
        re-authorization, or — unless ``open_steps_confirmed`` — while a required step is open
        (the message names them).
    """
    if not connection.is_live:
        raise GoLiveRefused("This connection is disconnected; connect the business unit anew.")
    if connection.went_live:
        raise GoLiveRefused(f"{connection.company_label} is live already (since {connection.live_since:%Y-%m-%d}).")
    if connection.status is ConnectionStatus.needs_reauthorization:
        raise GoLiveRefused("The ledger no longer accepts this connection's authorization: re-authorize it first.")
    if connection.status is ConnectionStatus.pending_authorization:
        raise GoLiveRefused("No company is pinned yet: finish connecting first.")
    steps = checklist(connection)
    open_steps = steps.open_steps
    if open_steps and not open_steps_confirmed:
        names = ", ".join(s.title.lower() for s in open_steps)
        raise GoLiveRefused(
            f"{len(open_steps)} step(s) are not done: {names}. Finish them, or confirm going live without them.",
            status=422,
        )
    sync_from = _aware(sync_from)
    before = {"live_since": None, "sync_from": _aware(connection.sync_from).isoformat()}
    now = utcnow()
    connection.sync_from = sync_from
    connection.live_since = now
    audit.record(
        "connection.went_live",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary=f"{connection.company_label} went live: records dated from {sync_from:%Y-%m-%d} are pushed "
        "automatically"
        + (f" (confirmed with open steps: {', '.join(s.title.lower() for s in open_steps)})" if open_steps else ""),
        before=before,
        after={
            "live_since": now.isoformat(),
            "sync_from": sync_from.isoformat(),
            **({"open_steps": [s.key for s in open_steps]} if open_steps else {}),
        },
        actor_label=actor_label,
    )
    db.session.flush()
    return steps


def waiting_records(connection: Connection) -> int:
    """Return how many invoices and credit notes dated from the connection date wait for the go-live."""
    from sqlalchemy import exists, func

    from ..models import CreditNote, ExternalRecord, Invoice, RecordKind, RecordState

    total = 0
    for model, kind in ((Invoice, RecordKind.invoice), (CreditNote, RecordKind.credit_note)):
        done = select(ExternalRecord.id).where(
            ExternalRecord.connection_id == connection.id,
            ExternalRecord.kind == kind,
            ExternalRecord.local_id == model.id,
            ExternalRecord.state == RecordState.pushed,
        )
        total += (
            db.session.scalar(
                select(func.count())
                .select_from(model)
                .where(
                    model.business_unit_id == connection.business_unit_id,
                    model.issue_date >= connection.sync_from.date(),
                    ~exists(done),
                )
            )
            or 0
        )
    return total
