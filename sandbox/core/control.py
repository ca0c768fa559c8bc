"""The /_control test API: companies, OAuth clients, consent, ledgers, faults, clock, reset."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, current_app, jsonify, request

from .clients import OAuthClient
from .faults import FaultSpecError
from .provider import ControlError, ProviderEmulator, SandboxContext

bp = Blueprint("control", __name__, url_prefix="/_control")


def _ctx() -> SandboxContext:
    return current_app.extensions["sandbox"]


def _provider(name: str) -> ProviderEmulator:
    provider = _ctx().providers.get(name)
    if provider is None:
        raise ControlError(f"unknown provider {name!r}; known: {', '.join(_ctx().providers)}", 404)
    return provider


def _body() -> dict:
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ControlError("the request body must be a JSON object")
    return body


@bp.errorhandler(ControlError)
def control_error(exc: ControlError):
    return jsonify(error=exc.message), exc.status


@bp.get("/")
def index():
    return jsonify(
        providers=sorted(_ctx().providers),
        clock=_ctx().clock.describe(),
        quotas_enabled=_ctx().quotas_enabled,
        quota_scale=_ctx().quota_scale,
        window_scale=_ctx().windows.length_scale,
    )


@bp.get("/companies")
def list_companies():
    return jsonify({name: p.companies() for name, p in _ctx().providers.items()})


@bp.get("/clients")
def list_clients():
    return jsonify(_ctx().clients.list())


@bp.post("/clients")
def register_client():
    body = _body()
    provider = _provider(str(body.get("provider", ""))).name
    client_id, secret = body.get("client_id"), body.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
        raise ControlError("client_id and client_secret are required strings")
    uris = body.get("redirect_uris")
    if uris is not None and (not isinstance(uris, list) or not all(isinstance(u, str) for u in uris)):
        raise ControlError("redirect_uris must be a list of strings, or null for any loopback URI")
    client = OAuthClient(provider, client_id, secret, tuple(uris) if uris is not None else None)
    _ctx().clients.register(client)
    return jsonify(client.describe()), 201


@bp.post("/consent")
def consent():
    body = _body()
    return jsonify(_provider(str(body.get("provider", ""))).consent(body))


@bp.get("/ledger/<provider>/<company_id>")
def read_ledger(provider: str, company_id: str):
    return jsonify(_provider(provider).ledger(company_id))


@bp.get("/faults")
def list_faults():
    return jsonify(_ctx().faults.list())


@bp.post("/faults")
def add_fault():
    body = _body()
    _provider(str(body.get("provider", "")))
    try:
        fault = _ctx().faults.add(body, now=_ctx().clock.time())
    except FaultSpecError as exc:
        raise ControlError(str(exc)) from exc
    return jsonify(fault.describe()), 201


@bp.delete("/faults")
def clear_faults():
    _ctx().faults.clear(request.args.get("provider"))
    return jsonify(_ctx().faults.list())


@bp.delete("/faults/<int:fault_id>")
def remove_fault(fault_id: int):
    if not _ctx().faults.remove(fault_id):
        raise ControlError(f"no fault {fault_id}", 404)
    return jsonify(_ctx().faults.list())


@bp.get("/clock")
def read_clock():
    return jsonify(_ctx().clock.describe())


@bp.post("/clock")
def set_clock():
    """Body: {"advance_seconds": n} | {"set": ISO-8601, "freeze": bool} | {"reset": true}."""
    body, clock = _body(), _ctx().clock
    try:
        if body.get("reset"):
            clock.reset()
        elif "advance_seconds" in body:
            clock.advance(float(body["advance_seconds"]))
        elif "set" in body:
            when = datetime.fromisoformat(str(body["set"]))
            if when.tzinfo is None:
                raise ControlError("set must carry a UTC offset, e.g. 2026-01-31T23:59:00+00:00")
            clock.set(when, freeze=bool(body.get("freeze")))
        elif body.get("freeze"):
            clock.freeze()
        else:
            raise ControlError("give advance_seconds, set, freeze or reset")
    except (TypeError, ValueError) as exc:
        raise ControlError(f"invalid clock value: {exc}") from exc
    return jsonify(clock.describe())


@bp.get("/quotas")
def read_quotas():
    """Quota settings and, per counted window, the requests within and over its limit since the last reset."""
    ctx = _ctx()
    return jsonify(
        enabled=ctx.quotas_enabled,
        scale=ctx.quota_scale,
        window_scale=ctx.windows.length_scale,
        counters=ctx.windows.counters(),
    )


@bp.post("/quotas")
def set_quotas():
    """Body: {"enabled": bool, "scale": float, "window_scale": float}.

    ``scale`` multiplies every provider limit; ``window_scale`` multiplies every quota window's
    length (0.1: a minute lasts 6 s), and the rate-limit headers report the shortened windows.
    """
    body, ctx = _body(), _ctx()
    scales = {}
    for name in ("scale", "window_scale"):
        if name in body:
            try:
                scales[name] = float(body[name])
            except (TypeError, ValueError) as exc:
                raise ControlError(f"{name} must be a number") from exc
            if scales[name] <= 0:
                raise ControlError(f"{name} must be greater than 0")
    if "enabled" in body:
        ctx.quotas_enabled = bool(body["enabled"])
    if "scale" in scales:
        ctx.quota_scale = scales["scale"]
    if "window_scale" in scales:
        ctx.windows.length_scale = scales["window_scale"]
    ctx.windows.reset()
    return jsonify(enabled=ctx.quotas_enabled, scale=ctx.quota_scale, window_scale=ctx.windows.length_scale)


@bp.post("/reset")
def reset():
    _ctx().reset()
    if _ctx().state_file is not None:
        _ctx().state_file.save()  # the kept state starts afresh too
    return jsonify(status="reset")


@bp.post("/<provider>/<action>")
def provider_action(provider: str, action: str):
    return jsonify(_provider(provider).control(action, _body()))
