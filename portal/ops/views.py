"""The ops console: health across all organizations, connections, the failure queue, records, metrics.

Reading pages are open to support (they troubleshoot the customers they onboard); every action
(re-sync, retry, dismiss, pause, resume) needs the ops role. Each list downloads as CSV with
``?format=csv``.
"""

from __future__ import annotations

import functools
import hmac
from urllib.parse import urlencode

import redis
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func

from .. import csvfiles
from ..connections.lookup import connection_or_404
from ..customers import services as customer_services
from ..database import utcnow
from ..extensions import db, queue
from ..fragments import wants_fragment
from ..integrations import specs
from ..models import Connection, ConnectionStatus, ExternalRecord, RecordKind, RecordState, Role
from ..models.external_record import Resolution
from ..params import choice_arg, id_list, int_arg, page_arg, page_size, text_arg
from ..security import is_safe_redirect, require_role
from ..sync import actions, backlog, limiter
from . import charts, fixes, metrics, queries

bp = Blueprint("ops", __name__, url_prefix="/ops")
#: /metrics sits at the root, where scrapers look for it.
metrics_bp = Blueprint("metrics", __name__)

#: Most records one bulk action may name by id (a whole group is acted on by its filters instead).
MAX_BULK = 1000
#: Most Exact Online divisions the dashboard's quota table shows (the closest to their daily limit).
QUOTA_ROWS = 50
#: The dashboard polls its figures this often.
DASHBOARD_REFRESH_SECONDS = 30


class ConnectionPage(Pagination):
    """A page of the connection list and the number of all matching connections.

    A filtered list reads its page's ids with the total (``count(*) OVER ()``) over narrow rows, so
    the filters (a search across organizations, units and companies) run once. The whole list reads
    its page's ids from the indexes (names, units, connections) and counts the connections table
    alone, whatever the number of connections. A second statement loads the page's connections with
    their unit and organization. A page past the end counts separately.
    """

    def _query_items(self) -> list:
        filters = self._query_args["filters"]
        filtered = any(name != "sort" for name in filters.args())
        columns = (Connection.id, func.count().over()) if filtered else (Connection.id,)
        stmt = queries.connections_query(filters, columns=columns)
        rows = db.session.execute(stmt.limit(self.per_page).offset(self._query_offset)).all()
        self._counted = rows[0][1] if rows and filtered else None
        if not rows:
            return []
        ids = [row[0] for row in rows]
        loaded = db.session.scalars(
            queries.connections_query(queries.ConnectionFilters()).where(Connection.id.in_(ids))
        )
        by_id = {connection.id: connection for connection in loaded}
        return [by_id[i] for i in ids if i in by_id]

    def _query_count(self) -> int:
        if self._counted is not None:
            return self._counted
        return queries.connection_count(self._query_args["filters"])


@functools.lru_cache(maxsize=1024)
def group_query(error_class: str, provider: str, text: str) -> str:
    """Return the query string listing a failure group's records (encoded once per group: the same
    groups show on every visit of the failure list)."""
    return urlencode({"error_class": error_class, "provider": provider, "text": text})


def get_connection(connection_id: int) -> Connection:
    """Load a connection (404 when it does not exist)."""
    return connection_or_404(connection_id)


def get_record(record_id: int) -> ExternalRecord:
    """Load a record.

    :raise: 404 when it does not exist.
    """
    record = db.session.get(ExternalRecord, record_id)
    if record is None:
        abort(404, description=f"There is no record with id {record_id}.")
    return record


def _actor():
    return current_user._get_current_object()


def _wants_csv() -> bool:
    return text_arg("format", 8).lower() == "csv"


def _back(default: str):
    """Redirect to the form's ``next`` when it is a path on this site, else to ``default``."""
    target = request.form.get("next", "")
    return redirect(target if is_safe_redirect(target) else default, code=303)


def _days_arg(name: str, high: int = 3650) -> int | None:
    value = int_arg(name)
    if value is not None and value > high:
        abort(400, description=f"{name} must be a number of days from 0 to {high}, not {value}.")
    return value


def _ids_from_form() -> list[int]:
    raw = request.form.getlist("ids")
    if len(raw) > MAX_BULK:
        abort(400, description=f"Select at most {MAX_BULK} rows at once, or act on the whole group.")
    return id_list(raw, "ids")


def _provider_arg() -> str:
    provider = text_arg("provider", 32)
    if provider and provider not in specs.PROVIDERS:
        abort(400, description=f"provider must be one of {', '.join(specs.PROVIDERS)}, not {provider!r}.")
    return provider


#: Reads the daily windows of many divisions inside Redis and returns the QUOTA_ROWS closest to their
#: limit as [index, used, limit, ...] (1-based index into the keys); a window already reset counts as unused.
_BUSIEST_WINDOWS = """
local now, wanted, default = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local found = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'used', 'limit', 'reset')
  if v[1] or v[2] then
    local used, limit, reset = tonumber(v[1]) or 0, tonumber(v[2]) or default, tonumber(v[3])
    if reset and reset <= now then used = 0 end
    table.insert(found, {i, used, limit})
  end
end
table.sort(found, function(a, b)
  local ra, rb = a[2] / math.max(a[3], 1), b[2] / math.max(b[3], 1)
  if ra ~= rb then return ra > rb end
  return a[1] < b[1]
end)
local out = {}
for n = 1, math.min(wanted, #found) do
  table.insert(out, found[n][1]) table.insert(out, tostring(found[n][2])) table.insert(out, tostring(found[n][3]))
end
return out
"""


def _busiest_divisions(divisions: list[tuple[str, str, str]]) -> list[dict]:
    """Return the QUOTA_ROWS Exact Online divisions closest to their daily limit (then by division).

    Every division's window is read inside Redis in one call, which returns only the busiest, so
    the page costs the same for ten divisions as for ten thousand. Divisions without calls today
    fill the table up to QUOTA_ROWS.
    """
    default = specs.get_spec(specs.EXACT_ONLINE).quotas.per_day
    if default is None:
        raise RuntimeError("Exact Online's daily call limit is missing from its provider facts")
    keys = [limiter.window_key(specs.EXACT_ONLINE, division, "day") for division, _, _ in divisions]
    busy: list[tuple[int, float, float]] = []
    if keys:
        try:
            raw = queue.connection.eval(
                _BUSIEST_WINDOWS, len(keys), *keys, int(utcnow().timestamp() * 1000), QUOTA_ROWS, default
            )
        except redis.RedisError:
            current_app.logger.exception("rate limiter counters unavailable")
            raw = []
        busy = [(int(raw[i]) - 1, float(raw[i + 1]), float(raw[i + 2])) for i in range(0, len(raw), 3)]
    shown = {index for index, _, _ in busy}
    rows = [(index, used, limit) for index, used, limit in busy]
    for index in range(len(divisions)):
        if len(rows) >= QUOTA_ROWS:
            break
        if index not in shown:
            rows.append((index, 0.0, float(default)))
    return [
        {
            "division": divisions[index][0],
            "name": divisions[index][1],
            "region": divisions[index][2],
            "used": int(used),
            "limit": int(limit),
        }
        for index, used, limit in rows
    ]


# -- dashboard --------------------------------------------------------------------------------
@bp.get("/")
@require_role(Role.support)
def dashboard():
    now = utcnow()
    key, held = queries.dashboard_keys(now)
    counts, counted_at = queries.status_counts_at(now, key)
    series = queries.daily_volume(30, now, held)
    late, late_at = queries.late_counts_at(now, key)
    quota, quota_at = queries.minute_cached(
        "quota", key, lambda: _busiest_divisions(queries.exact_divisions()), list, list
    )
    not_live = counts["health"].get("not_live", 0)
    return render_template(
        # The figures refresh themselves: the page polls its own fragment (htmx).
        "ops/_dashboard.html" if wants_fragment() else "ops/dashboard.html",
        now=now,
        refresh_seconds=DASHBOARD_REFRESH_SECONDS,
        failed_jobs=queries.failed_runs(now),
        failed_jobs_hours=int(queries.FAILING_JOBS_WINDOW.total_seconds() // 3600),
        not_live=not_live,
        not_live_waiting=queries.not_live_waiting() if not_live else 0,
        counts=counts,
        counted_at=min(counted_at, late_at, quota_at),
        held=queries.held_total(held),
        oldest=queries.oldest_failure(held),
        late_records=sum(late.values()),
        late_connections=len(late),
        expiring=counts["expiring"],
        expiry_days=queries.EXPIRY_HORIZON.days,
        quota=quota,
        draining=backlog.draining(),
        volume=charts.bar_chart("Records pushed per day", series.days, series.pushed),
        failures=charts.bar_chart("Records failed per day", series.days, series.failed),
        provider_name=queries.provider_name,
        delay_minutes=queries.sync_delay_minutes(),
    )


# -- connections ------------------------------------------------------------------------------
def _connection_filters() -> queries.ConnectionFilters:
    health = text_arg("health", 32)
    if health and health not in (*queries.HEALTH, "not_live"):
        abort(400, description=f"health must be one of {', '.join(queries.HEALTH)}, not_live, not {health!r}.")
    sort = text_arg("sort", 32) or "organization"
    if sort not in queries.SORTS:
        abort(400, description=f"sort must be one of {', '.join(queries.SORTS)}, not {sort!r}.")
    region = text_arg("region", 8).lower()
    if region and region not in specs.get_spec(specs.EXACT_ONLINE).regions:
        abort(400, description=f"region must be an Exact Online region such as nl or be, not {region!r}.")
    return queries.ConnectionFilters(
        q=text_arg("q"),
        provider=_provider_arg(),
        region=region,
        status=choice_arg("status", ConnectionStatus),
        health=health,
        stale_days=_days_arg("stale_days"),
        expiring_days=_days_arg("expiring_days"),
        late=request.args.get("late") == "1",
        with_failures=request.args.get("with_failures") == "1",
        sort=sort,
    )


@bp.get("/connections")
@require_role(Role.support)
def list_connections():
    filters = _connection_filters()
    if _wants_csv():
        stmt = queries.connections_query(filters)
        return csvfiles.csv_response(
            "connections.csv",
            [
                "connection_id",
                "organization",
                "organization_id",
                "business_unit",
                "provider",
                "region",
                "company",
                "company_number",
                "status",
                "status_reason",
                "last_success_at",
                "last_error",
                "refresh_expires_at",
            ],
            lambda: (
                (
                    c.id,
                    c.business_unit.organization.name,
                    c.business_unit.organization.external_id,
                    c.business_unit.name,
                    c.provider,
                    c.region,
                    c.external_company_name,
                    c.external_company_number or c.external_company_id,
                    c.status.value,
                    c.status_reason,
                    c.last_success_at,
                    c.last_error,
                    c.refresh_expires_at,
                )
                for c in db.session.scalars(stmt.execution_options(yield_per=500))
            ),
        )
    pagination = ConnectionPage(filters=filters, page=page_arg(), per_page=page_size(), error_out=False, count=True)
    context = dict(
        pagination=pagination,
        filters=filters,
        held=queries.held_counts([c.id for c in pagination.items]),
        shared=queries.shared_companies(list(pagination.items)),
        statuses=list(ConnectionStatus),
        providers=specs.PROVIDERS,
        provider_name=queries.provider_name,
        regions=list(specs.get_spec(specs.EXACT_ONLINE).regions),
        sorts=queries.SORTS,
        healths=queries.HEALTH,
    )
    template = "ops/_connections.html" if wants_fragment() else "ops/connections.html"
    return render_template(template, **context)


@bp.post("/connections/bulk")
@require_role(Role.ops)
def bulk_connections():
    ids = _ids_from_form()
    action = request.form.get("action", "")
    if action not in ("pause", "resume", "resync", "resync_failed"):
        abort(400, description="action must be pause, resume, resync or resync_failed.")
    if not ids:
        flash("Select at least one connection.", "warning")
        return _back(url_for("ops.list_connections"))
    connections = db.session.scalars(db.select(Connection).where(Connection.id.in_(ids)).order_by(Connection.id))
    done, messages = 0, []
    reason = request.form.get("reason", "")
    if action == "pause" and not reason.strip():
        flash("Say why the connections are paused: a reason is required.", "error")
        return _back(url_for("ops.list_connections"))
    for connection in list(connections):
        try:
            if action == "pause":
                done += actions.pause(connection, _actor(), reason)
            elif action == "resume":
                done += bool(actions.resume(connection, _actor()).changed)
            else:
                outcome = actions.resync_connection(connection, _actor(), failed_only=action == "resync_failed")
                done += 1
                messages.extend(outcome.waiting.values())
        except actions.ActionError as exc:
            messages.append(f"{connection.company_label}: {exc}")
    db.session.commit()
    verb = {"pause": "Paused", "resume": "Resumed", "resync": "Re-sync started for", "resync_failed": "Retried"}
    flash(f"{verb[action]} {done} of {len(ids)} connection(s)." + (" " + " ".join(messages) if messages else ""))
    return _back(url_for("ops.list_connections"))


@bp.post("/connections/<int:connection_id>/pause")
@require_role(Role.ops)
def pause_connection(connection_id: int):
    connection = get_connection(connection_id)
    try:
        changed = actions.pause(connection, _actor(), request.form.get("reason", ""))
    except actions.ActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(url_for("connections.show_connection", connection_id=connection.id))
    db.session.commit()
    flash("Paused: nothing is pushed until it is resumed." if changed else "The connection was paused already.")
    return _back(url_for("connections.show_connection", connection_id=connection.id))


@bp.post("/connections/<int:connection_id>/resume")
@require_role(Role.ops)
def resume_connection(connection_id: int):
    connection = get_connection(connection_id)
    try:
        outcome = actions.resume(connection, _actor())
    except actions.ActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(url_for("connections.show_connection", connection_id=connection.id))
    db.session.commit()
    flash("Resumed; a push was queued." if outcome.changed else "The connection was not paused.")
    return _back(url_for("connections.show_connection", connection_id=connection.id))


@bp.post("/connections/<int:connection_id>/resync")
@require_role(Role.ops)
def resync_connection(connection_id: int):
    connection = get_connection(connection_id)
    failed_only = request.form.get("failed_only") == "1"
    try:
        outcome = actions.resync_connection(connection, _actor(), failed_only=failed_only)
    except actions.ActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(url_for("ops.list_records", connection_id=connection.id))
    db.session.commit()
    flash(("Retry of failed records: " if failed_only else "Re-sync: ") + outcome.summary())
    return _back(url_for("ops.list_records", connection_id=connection.id))


# -- failures ---------------------------------------------------------------------------------
def _failure_filters(source=None) -> queries.FailureFilters:
    source = source if source is not None else request.args
    error_class = (source.get("error_class") or "").strip()
    if error_class and error_class not in fixes.CLASS_TITLES:
        abort(400, description=f"error_class must be one of {', '.join(fixes.CLASS_TITLES)}, not {error_class!r}.")
    provider = (source.get("provider") or "").strip()
    if provider and provider not in specs.PROVIDERS:
        abort(400, description=f"provider must be one of {', '.join(specs.PROVIDERS)}, not {provider!r}.")
    text = source.get("text")
    if text is not None and len(text) > 4000:
        abort(400, description="text may have at most 4,000 characters.")
    q = (source.get("q") or "").strip()
    if len(q) > 100:
        abort(400, description="q may have at most 100 characters.")
    state = (source.get("state") or "").strip()
    if state and state not in {s.value for s in queries.HELD}:
        abort(400, description=f"state must be one of {', '.join(s.value for s in queries.HELD)}, not {state!r}.")
    return queries.FailureFilters(
        error_class=error_class, provider=provider, text=text or None, q=q, state=RecordState(state) if state else None
    )


@bp.get("/failures")
@require_role(Role.support)
def list_failures():
    filters = _failure_filters()
    classes, touched = queries.failure_groups(filters)
    if _wants_csv():
        rows = [
            (
                g.error_class,
                g.provider,
                g.text,
                fixes.advise(g.error_class, g.provider, g.text).fix_label,
                g.records,
                g.organizations,
                g.connections,
                g.oldest,
            )
            for c in classes
            for g in c.groups
        ]
        return csvfiles.csv_response(
            "failure-groups.csv",
            ["error_class", "provider", "error", "fix", "records", "organizations", "connections", "oldest"],
            lambda: rows,
        )
    context = dict(
        classes=classes,
        touched=touched,
        filters=filters,
        titles=fixes.CLASS_TITLES,
        advise=fixes.advise,
        group_query=group_query,
        provider_name=queries.provider_name,
        providers=specs.PROVIDERS,
        states=queries.HELD,
    )
    return render_template("ops/_failures.html" if wants_fragment() else "ops/failures.html", **context)


@bp.get("/failures/records")
@require_role(Role.support)
def list_failure_records():
    filters = _failure_filters()
    stmt = queries.held_records_query(filters)
    if _wants_csv():
        return _records_csv("failed-records.csv", stmt)
    pagination = db.paginate(stmt, page=page_arg(), per_page=page_size(), error_out=False, count=True)
    context = dict(
        pagination=pagination,
        filters=filters,
        labels=queries.local_labels(pagination.items),
        titles=fixes.CLASS_TITLES,
        advise=fixes.advise,
        provider_name=queries.provider_name,
        resolutions=list(Resolution),
    )
    template = "ops/_failure_records.html" if wants_fragment() else "ops/failure_records.html"
    return render_template(template, **context)


def _chosen_records():
    """Return the records a bulk form names: its checked ids, or its whole group (``scope=group``)."""
    if request.form.get("scope") == "group":
        return queries.held_ids_query(_failure_filters(request.form))
    ids = _ids_from_form()
    return db.select(ExternalRecord).where(ExternalRecord.id.in_(ids or [-1])).order_by(ExternalRecord.id)


@bp.post("/failures/retry")
@require_role(Role.ops)
def retry_failures():
    outcome = actions.retry_failed(_chosen_records(), _actor())
    db.session.commit()
    flash("Retry: " + outcome.summary(), "success" if outcome.changed else "warning")
    return _back(url_for("ops.list_failures"))


@bp.post("/failures/dismiss")
@require_role(Role.ops)
def dismiss_failures():
    try:
        outcome = actions.dismiss(
            _chosen_records(), _actor(), request.form.get("resolution", ""), request.form.get("note", "")
        )
    except actions.ActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(url_for("ops.list_failures"))
    db.session.commit()
    flash("Dismissed: " + outcome.summary(), "success" if outcome.changed else "warning")
    return _back(url_for("ops.list_failures"))


# -- records of one connection ----------------------------------------------------------------
def _records_csv(filename: str, stmt):
    def rows():
        for record in db.session.scalars(stmt.execution_options(yield_per=500)):
            advice = fixes.advise(record.last_error_class, record.connection.provider, record.last_error_text)
            yield (
                record.id,
                record.connection_id,
                record.connection.company_label,
                record.kind.value,
                record.local_id,
                record.reference,
                record.state_label,
                record.attempts,
                record.external_id,
                record.external_number,
                record.last_error_class,
                advice.plain if record.last_error_text else "",
                advice.provider_text,
                record.last_attempt_at,
                record.resolution.value if record.resolution else "",
                record.resolution_note,
            )

    return csvfiles.csv_response(
        filename,
        [
            "record_id",
            "connection_id",
            "company",
            "kind",
            "local_id",
            "reference",
            "state",
            "attempts",
            "external_id",
            "external_number",
            "error_class",
            "error",
            "provider_text",
            "last_attempt_at",
            "resolution",
            "resolution_note",
        ],
        rows,
    )


@bp.get("/connections/<int:connection_id>/records")
@require_role(Role.support)
def list_records(connection_id: int):
    connection = get_connection(connection_id)
    filters = queries.RecordFilters(
        state=choice_arg("state", RecordState), kind=choice_arg("kind", RecordKind), q=text_arg("q")
    )
    stmt = queries.connection_records_query(connection, filters)
    if _wants_csv():
        return _records_csv(f"records-connection-{connection.id}.csv", stmt)
    pagination = db.paginate(stmt, page=page_arg(), per_page=page_size(), error_out=False, count=True)
    context = dict(
        connection=connection,
        pagination=pagination,
        filters=filters,
        counts=queries.state_counts(connection),
        labels=queries.local_labels(pagination.items),
        held_customers=queries.held_customers(pagination.items),
        creates_customers=customer_services.customer_mode(connection) == "create",
        states=list(RecordState),
        kinds=list(RecordKind),
        advise=fixes.advise,
        titles=fixes.CLASS_TITLES,
        provider_name=queries.provider_name,
        held=queries.HELD,
    )
    return render_template("ops/_records.html" if wants_fragment() else "ops/records.html", **context)


@bp.post("/records/<int:record_id>/resync")
@require_role(Role.ops)
def resync_record(record_id: int):
    record = get_record(record_id)
    try:
        outcome = actions.resync_record(record, _actor())
    except actions.ActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash("Re-sync: " + outcome.summary(), "success" if outcome.changed else "warning")
    return _back(url_for("ops.list_records", connection_id=record.connection_id))


@bp.post("/records/<int:record_id>/send-again")
@require_role(Role.ops)
def send_again(record_id: int):
    record = get_record(record_id)
    try:
        sent, words = actions.send_again(record, _actor())
    except actions.ActionError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        flash(words, "success" if sent else "warning")
    return _back(url_for("ops.list_records", connection_id=record.connection_id))


# -- metrics ----------------------------------------------------------------------------------
def bearer_or_role(role: Role):
    """Let a scraper in with the METRICS_TOKEN bearer token, or logged-in staff with ``role``."""

    def decorate(view):
        guarded = require_role(role)(view)

        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            expected = str(current_app.config.get("METRICS_TOKEN") or "")
            given = request.headers.get("Authorization", "")
            if expected and given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip(), expected):
                return view(*args, **kwargs)
            return guarded(*args, **kwargs)

        wrapper.required_role = role
        return wrapper

    return decorate


@metrics_bp.get("/metrics")
@bearer_or_role(Role.ops)
def show_metrics():
    return metrics.exposition(), 200, {"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"}
