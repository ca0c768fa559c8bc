"""Exact Online emulator: OAuth with division consent, the REST API, quotas and test controls.

Behaviour follows docs/providers/exact-online.md (cited as exact-online.md §n); see README.md in this
package for the endpoints, demo data and control actions.
"""

from __future__ import annotations

import secrets
from collections import deque

from flask import Flask, Response, jsonify

from ..core.faults import Fault
from ..core.provider import ControlError, ProviderEmulator
from . import demo, ops
from .messages import ExactError
from .state import REGIONS, AuthCode, Chain, ErrorBlock, ExactState, User
from .web import bp


class ExactOnlineEmulator(ProviderEmulator):
    """Emulates start.exactonline.{nl,be,de,co.uk,com,es,fr}."""

    name = "exact-online"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.state = ExactState()

    # -- wiring ---------------------------------------------------------------------------------
    def register(self, app: Flask) -> None:
        """Mount every regional site under /exact-online/<region>."""
        app.register_blueprint(bp)

    def reset(self) -> None:
        """Drop all state and load the default demo users and divisions."""
        with self.state.lock:
            demo.load(self.state, self.ctx.clock.now())

    # -- control hooks --------------------------------------------------------------------------
    def companies(self) -> list[dict]:
        """List divisions with their region and the users who see them."""
        with self.state.lock:
            out = []
            for div in self.state.divisions.values():
                row = div.describe()
                row["users"] = [
                    {"username": u.username, "has_rights": div.code in u.rights}
                    for u in self.state.users.values()
                    if div.code in u.divisions
                ]
                out.append(row)
            return out

    def ledger(self, company_id: str) -> dict:
        """Return one division's tables and settings.

        :raise ControlError: (404) when the division is unknown.
        """
        with self.state.lock:
            return self._division(company_id, status=404).ledger()

    def consent(self, params: dict) -> dict:
        """Approve or deny like the consent page; return the redirect URL.

        Params: client_id, redirect_uri, state, region (default nl), user (username, default the
        region's first user), divisions (list, default every division the user may grant),
        decision ("approve" | "deny").
        """
        region = str(params.get("region") or "nl")
        if region not in REGIONS:
            raise ControlError(f"unknown region {region!r}")
        client = self.ctx.clients.get(self.name, params.get("client_id"))
        if client is None:
            raise ControlError("unknown client_id")
        if not client.allows_redirect(params.get("redirect_uri")):
            raise ControlError("redirect_uri is not registered for this client")
        divisions = params.get("divisions")
        try:
            return {
                "redirect_url": self.decide(
                    region=region,
                    client_id=client.client_id,
                    redirect_uri=params["redirect_uri"],
                    state=params.get("state"),
                    user_ref=params.get("user"),
                    divisions=None if divisions is None else [str(d) for d in divisions],
                    approve=params.get("decision", "approve") == "approve",
                )
            }
        except ExactError as exc:
            raise ControlError(exc.message) from exc

    def decide(
        self,
        *,
        region: str,
        client_id: str,
        redirect_uri: str,
        state: str | None,
        user_ref: str | None,
        divisions: list[str] | None,
        approve: bool,
    ) -> str:
        """Record a consent decision and return the client redirect URL.

        :raise ExactError: when the user or the chosen divisions are not valid.
        """
        from .web import _with_query

        if not approve:
            return _with_query(
                redirect_uri,
                {"error": "access_denied", "error_description": "The user denied access.", "state": state},
            )
        with self.state.lock:
            users = [u for u in self.state.users.values() if u.region == region]
            user = self.state.user(user_ref) if user_ref else (users[0] if users else None)
            if user is None or user.region != region:
                raise ExactError(400, "Unknown user for this Exact Online site.")
            if divisions is None:
                chosen = {d for d in user.divisions if d in user.rights}
            else:
                try:
                    chosen = {int(d) for d in divisions}
                except ValueError as exc:
                    raise ExactError(400, "Invalid division.") from exc
                if not chosen <= user.rights:
                    raise ExactError(400, "You have no rights to grant access to one of these divisions.")
            if not chosen:
                raise ExactError(400, "Select at least one division.")
            self.state.grants[(client_id, user.id)] = set(chosen)
            code = "stampNL001." + secrets.token_urlsafe(48)
            self.state.codes[code] = AuthCode(
                client_id=client_id,
                redirect_uri=redirect_uri,
                user_id=user.id,
                region=region,
                divisions=set(chosen),
                expires_at=self.ctx.clock.time() + self.state.code_ttl,
            )
        return _with_query(redirect_uri, {"code": code, "state": state})

    # -- request helpers used by the blueprint --------------------------------------------------
    def may_use(self, user: User, chain: Chain, division: int) -> bool:
        """Say whether a token may reach ``division``: granted by consent and still in the user's rights."""
        granted = self.state.grants.get((chain.client_id, user.id), set())
        return division in granted and division in user.rights and division in self.state.divisions

    def apply_quota(self, client_id: str, division: int) -> Response | None:
        """Count a call against 60/min and 5,000/day per (client, division) (exact-online.md §5); maybe refuse it."""
        from flask import g

        ctx, state = self.ctx, self.state
        now = ctx.clock.time()
        key = ("exact-online", client_id, division)
        daily = ctx.windows.hit((*key, "day"), window=86400, limit=ctx.scaled(state.daily_limit), now=now)
        minute = ctx.windows.hit((*key, "minute"), window=60, limit=ctx.scaled(state.minutely_limit), now=now)
        daily_headers = {
            "X-RateLimit-Limit": str(daily.limit),
            "X-RateLimit-Remaining": str(daily.remaining),
            "X-RateLimit-Reset": str(int(daily.reset_at * 1000)),
        }
        minute_headers = {
            "X-RateLimit-Minutely-Limit": str(minute.limit),
            "X-RateLimit-Minutely-Remaining": str(minute.remaining),
            "X-RateLimit-Minutely-Reset": str(int(minute.reset_at * 1000)),
        }
        g.exact_rate_headers = {**daily_headers, **minute_headers}
        if not ctx.quotas_enabled:
            return None
        # On a 429 Exact sends only the exceeded window's headers (PQ README, picqer#646).
        if not daily.allowed:
            g.exact_rate_headers = daily_headers
            return self._too_many()
        if not minute.allowed:
            g.exact_rate_headers = minute_headers
            return self._too_many()
        return None

    def count_token_call(self, client_id: str, user_id: str) -> Response | None:
        """Count a token-endpoint call: at most 200 per app per user per day (exact-online.md §1.5)."""
        ctx = self.ctx
        window = ctx.windows.hit(
            ("exact-online-token", client_id, user_id),
            window=86400,
            limit=ctx.scaled(self.state.token_daily_limit),
            now=ctx.clock.time(),
        )
        if window.allowed or not ctx.quotas_enabled:
            return None
        response = jsonify(
            error="invalid_request",
            error_description="Maximum number of token requests per day reached for this app and user.",
        )
        response.status_code = 429
        return response

    @staticmethod
    def error_scope(chain: Chain, division: int | None, resource: str) -> tuple:
        """Return the error-budget scope of a call: (app, user, division, endpoint) (exact-online.md §4.2)."""
        endpoint = resource.split("?")[0].split("(")[0].strip("/").lower()
        return (chain.client_id, chain.user_id, division, endpoint)

    def count_error(self, status: int) -> None:
        """Feed the 10-errors-per-hour budget (exact-online.md §4.2); start a block when it is spent.

        Counts 400/401/403/404 of calls whose token names a chain (an unknown token has no
        user to charge). The block lasts ``error_block_seconds``, times the number of blocks
        in a row: Exact lifts it after an hour and "gradually increases" it on repeat (INV-21).
        """
        from flask import g

        state = self.state
        if not state.error_budget_enabled or status not in (400, 401, 403, 404):
            return
        chain = g.get("exact_chain")
        if chain is None or g.get("exact_error_blocked"):
            # A block answered with a 4xx (error_block_status) must not extend itself.
            return
        scope = self.error_scope(chain, g.get("exact_division"), g.get("exact_resource", ""))
        now = self.ctx.clock.time()
        with state.lock:
            log = state.error_log.setdefault(scope, deque())
            log.append(now)
            while log and log[0] <= now - 3600:
                log.popleft()
            if len(log) < state.error_budget:
                return
            log.clear()
            previous = state.error_blocks.get(scope)
            strikes = previous.strikes + 1 if previous and now - previous.until < 86400 else 1
            state.error_blocks[scope] = ErrorBlock(until=now + state.error_block_seconds * strikes, strikes=strikes)

    def error_budget_block(self) -> Response | None:
        """Refuse the call if its (app, user, division, endpoint) spent its hourly errors (exact-online.md §4.2).

        The blocked response is undocumented (exact-online.md §10): we answer ``error_block_status`` (429) in
        Exact's error shape without X-RateLimit-* headers, so a client that waits for the
        minutely reset cannot mistake it for the 60/min limit (header-less 429s: picqer#255).
        """
        from flask import g

        state = self.state
        if not state.error_budget_enabled or not self.ctx.quotas_enabled:
            return None
        chain = g.get("exact_chain")
        if chain is None:
            return None
        scope = self.error_scope(chain, g.get("exact_division"), g.get("exact_resource", ""))
        with state.lock:
            block = state.error_blocks.get(scope)
        if block is None or self.ctx.clock.time() >= block.until:
            return None
        g.exact_rate_headers = {}
        g.exact_error_blocked = True
        response = jsonify(
            ExactError(
                state.error_block_status,
                f"API rate limit exceeded: {state.error_budget} errors within one hour "
                "for this app, user, division and endpoint.",
            ).body()
        )
        response.status_code = state.error_block_status
        return response

    def _too_many(self) -> Response:
        # The 429 body is undocumented (exact-online.md §5 gap); Exact's error shape is the safest guess.
        response = jsonify(ExactError(429, "Too many requests").body())
        response.status_code = 429
        return response

    def render_fault_error(self, fault: Fault) -> Response:
        """Render an injected 5xx in Exact's error shape."""
        text = {500: "An error has occurred.", 502: "Bad Gateway", 503: "Service Unavailable"}.get(
            fault.status, "Gateway Timeout"
        )
        response = jsonify(ExactError(fault.status, text).body())
        response.status_code = fault.status
        return response

    def render_rate_limited(self, fault: Fault) -> Response:
        """Render an injected 429 storm with the minutely headers only (exact-online.md §5)."""
        from flask import g

        headers = g.get("exact_rate_headers") or {}
        g.exact_rate_headers = {k: v for k, v in headers.items() if "Minutely" in k}
        if "X-RateLimit-Minutely-Remaining" in g.exact_rate_headers:
            g.exact_rate_headers["X-RateLimit-Minutely-Remaining"] = "0"
        return self._too_many()

    # -- control actions ------------------------------------------------------------------------
    def control(self, action: str, body: dict) -> dict:
        """Carry out a test action; see README.md "Control actions"."""
        handler = getattr(self, f"_control_{action}", None)
        if handler is None:
            raise ControlError(f"unknown action {action!r} for {self.name}", 404)
        with self.state.lock:
            return handler(body)

    def _division(self, ref: object, status: int = 400):
        try:
            div = self.state.divisions.get(int(str(ref)))
        except ValueError:
            div = None
        if div is None:
            raise ControlError(f"unknown division {ref!r}", status)
        return div

    def _user(self, ref: object) -> User:
        user = self.state.user(str(ref)) if ref is not None else None
        if user is None:
            raise ControlError(f"unknown user {ref!r}")
        return user

    def _control_revoke_grant(self, body: dict) -> dict:
        user = self._user(body.get("user"))
        client_id = body.get("client_id")
        division = body.get("division")
        touched = 0
        for (cid, uid), granted in list(self.state.grants.items()):
            if uid != user.id or (client_id and cid != client_id):
                continue
            if division is not None:
                granted.discard(self._division(division).code)
            else:
                del self.state.grants[(cid, uid)]
                for chain in self.state.chains.values():
                    if chain.user_id == uid and chain.client_id == cid:
                        chain.revoked = True
            touched += 1
        return {"revoked": touched, "user": user.username, "division": division}

    def _control_set_vat_percentage(self, body: dict) -> dict:
        """Change a VAT code's percentage, as an accountant does at a rate change (invoices then use the new one)."""
        div = self._division(body.get("division"))
        code = str(body.get("code", "")).strip()
        vat = next((v for v in div.table("VATCodes").values() if v["Code"].strip() == code), None)
        if vat is None:
            raise ControlError(f"no VAT code {code!r} in division {div.code}", 404)
        try:
            vat["Percentage"] = float(body["percentage"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError("percentage is required, as a fraction (0.10 for 10 %)") from exc
        return {"division": div.code, "code": vat["Code"], "percentage": vat["Percentage"]}

    def _control_close_period(self, body: dict) -> dict:
        div = self._division(body.get("division"))
        year, period = self._period(body)
        div.closed.add((year, period))
        return {"division": div.code, "closed_periods": sorted([y, p] for y, p in div.closed)}

    def _control_reopen_period(self, body: dict) -> dict:
        div = self._division(body.get("division"))
        year, period = self._period(body)
        div.closed.discard((year, period))
        return {"division": div.code, "closed_periods": sorted([y, p] for y, p in div.closed)}

    @staticmethod
    def _period(body: dict) -> tuple[int, int]:
        try:
            year, period = int(body["year"]), int(body["period"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError("year and period are required integers") from exc
        if not 1 <= period <= 12:
            raise ControlError("period must be between 1 and 12")
        return year, period

    def _control_mark_paid(self, body: dict, paid: bool = True) -> dict:
        div = self._division(body.get("division"))
        ref = str(body.get("invoice", "")).strip().lower()
        now_ms = int(self.ctx.clock.time() * 1000)
        for receivable in div.table("Receivables").values():
            if ref in (str(receivable["EntryID"]), str(receivable["InvoiceNumber"]), str(receivable["ID"])):
                ops.set_paid(div, receivable, paid, now_ms)
                return {"division": div.code, "receivable": receivable["ID"], "is_fully_paid": paid}
        raise ControlError(f"no receivable for invoice {ref!r} (print the invoice first)", 404)

    def _control_mark_unpaid(self, body: dict) -> dict:
        return self._control_mark_paid(body, paid=False)

    def _control_set_division_access(self, body: dict) -> dict:
        user = self._user(body.get("user"))
        div = self._division(body.get("division"))
        if body.get("allowed", True):
            user.rights.add(div.code)
            if div.code not in user.divisions:
                user.divisions.append(div.code)
        else:
            user.rights.discard(div.code)
        return user.describe()

    def _control_set_current_division(self, body: dict) -> dict:
        user = self._user(body.get("user"))
        user.current_division = self._division(body.get("division")).code
        return user.describe()

    def _control_expire_refresh_tokens(self, body: dict) -> dict:
        user = self._user(body.get("user")) if body.get("user") else None
        now = self.ctx.clock.time()
        count = 0
        for chain in self.state.chains.values():
            if user is None or chain.user_id == user.id:
                # As if the refresh token lay unused for 30 days (exact-online.md §1.5).
                chain.refresh_expires_at = min(chain.refresh_expires_at, now - 1)
                count += 1
        return {"expired": count}

    def _control_set_language(self, body: dict) -> dict:
        language = body.get("language")
        if language not in ("nl", "en"):
            raise ControlError('language must be "nl" or "en"')
        if body.get("user"):
            user = self._user(body["user"])
            user.language = language
            return user.describe()
        region = body.get("region")
        if region not in REGIONS:
            raise ControlError("give user or region (nl, be, de, uk, us, es, fr)")
        self.state.region_language[region] = language
        return {"region": region, "language": language}

    def _control_set_settings(self, body: dict) -> dict:
        s = self.state
        fields = {
            "mandatory_filtering": bool,
            "business_status": int,
            "minutely_limit": int,
            "daily_limit": int,
            "token_daily_limit": int,
            "error_budget_enabled": bool,
            "error_budget": int,
            "error_block_seconds": float,
            "error_block_status": int,
            "code_ttl": float,
            "access_ttl": int,
            "refresh_min_age": float,
            "page_size": int,
            "bulk_page_size": int,
        }
        changes = {}
        for name, value in body.items():
            if name not in fields:
                raise ControlError(f"unknown setting {name!r}; known: {', '.join(fields)}")
            try:
                changes[name] = fields[name](value)
            except (TypeError, ValueError) as exc:
                raise ControlError(f"invalid value for {name}") from exc
        if not 400 <= changes.get("error_block_status", 429) <= 599 or changes.get("error_budget", 1) < 1:
            raise ControlError("error_block_status must be 400-599 and error_budget at least 1")
        for name, value in changes.items():
            setattr(s, name, value)
        return {name: getattr(s, name) for name in fields}

    def _control_set_division_settings(self, body: dict) -> dict:
        div = self._division(body.get("division"))
        if "invoice_number_at_entry" in body:
            div.invoice_number_at_entry = bool(body["invoice_number_at_entry"])
        if "sales_entry_status" in body:
            if body["sales_entry_status"] not in (20, 50):
                raise ControlError("sales_entry_status must be 20 or 50")
            div.sales_entry_status = int(body["sales_entry_status"])
        return {
            "division": div.code,
            "invoice_number_at_entry": div.invoice_number_at_entry,
            "sales_entry_status": div.sales_entry_status,
        }

    def _control_users(self, body: dict) -> dict:
        return {"users": [u.describe() for u in self.state.users.values()]}

    def _control_tokens(self, body: dict) -> dict:
        now = self.ctx.clock.time()
        return {
            "chains": [
                {
                    "id": c.id,
                    "client_id": c.client_id,
                    "user": self.state.users[c.user_id].username,
                    "region": c.region,
                    "revoked": c.revoked,
                    "refresh_expires_in": round(c.refresh_expires_at - now),
                    "grants": sorted(self.state.grants.get((c.client_id, c.user_id), set())),
                }
                for c in self.state.chains.values()
            ]
        }
