"""QuickBooks Online emulator: Intuit OAuth 2.0 and the Accounting API v3 (see README.md)."""

from __future__ import annotations

import threading

from flask import Flask, Response

from ..core.clients import DEFAULT_CLIENTS
from ..core.provider import ControlError, ProviderEmulator
from . import api, auth, demo, ops
from .auth import ConsentError, add_query
from .faults import QBOFault
from .ledger import Realm
from .oauth import ACCOUNTING, KNOWN_SCOPES, PAYMENT, TokenStore

#: Real limits (quickbooks-online.md §5), scaled by ctx.scaled(); batch_items is not scaled.
DEFAULT_LIMITS = {"per_minute": 500, "concurrent": 10, "batch_per_minute": 40, "batch_items": 30}


class QuickBooksEmulator(ProviderEmulator):
    """QuickBooks Online: consent, tokens with rotation rules, and per-realm company ledgers."""

    name = "quickbooks"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.tokens = TokenStore()
        self.realms: dict[str, Realm] = {}
        self.limits = dict(DEFAULT_LIMITS)
        self.access: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    # -- wiring ----------------------------------------------------------------------------------
    def register(self, app: Flask) -> None:
        """Register the appcenter, oauth, developer and api blueprints."""
        for bp in auth.build(self):
            app.register_blueprint(bp)
        app.register_blueprint(api.build(self))

    def reset(self) -> None:
        """Drop all state and load the US and UK demo companies."""
        ts = self.ctx.clock.time()
        with self._lock:
            self.tokens.reset()
            self.limits = dict(DEFAULT_LIMITS)
            self.realms = {r.id: r for r in (demo.build_us(ts), demo.build_uk(ts))}
            self.access = {uid: list(u["realms"]) for uid, u in demo.USERS.items()}

    # -- quotas ------------------------------------------------------------------------------------
    def check_quotas(self, realm_id: str, client_id: str, render) -> Response | None:
        """Count one request against 500/min and the 10-concurrent gate of the realm+app."""
        if not self.ctx.quotas_enabled:
            return None
        from flask import g

        state = self.ctx.windows.hit(
            ("quickbooks", realm_id, client_id),
            window=60,
            limit=self.ctx.scaled(self.limits["per_minute"]),
            now=self.ctx.clock.time(),
        )
        if not state.allowed:
            return render(None)
        key = ("quickbooks", realm_id, client_id)
        if not self.ctx.concurrency.enter(key, self.ctx.scaled(self.limits["concurrent"])):
            return render(None)
        g.qbo_slot = key
        return None

    def check_batch_quota(self, realm_id: str, client_id: str, render) -> Response | None:
        """Count one batch request against 40 batches/min per realm+app."""
        if not self.ctx.quotas_enabled:
            return None
        state = self.ctx.windows.hit(
            ("quickbooks-batch", realm_id, client_id),
            window=60,
            limit=self.ctx.scaled(self.limits["batch_per_minute"]),
            now=self.ctx.clock.time(),
        )
        return None if state.allowed else render(None)

    # -- OAuth decisions ---------------------------------------------------------------------------
    def validate_authorize(self, params: dict) -> str | None:
        """Check an authorization request; return an error redirect URL, or None to show consent.

        :raise ConsentError: for an unknown client or an unregistered redirect URI (never redirected).
        """
        client = self.ctx.clients.get(self.name, params.get("client_id"))
        if client is None:
            raise ConsentError("invalid_client: the client_id is not known to Intuit.")
        uri = params.get("redirect_uri")
        if not client.allows_redirect(uri):
            raise ConsentError(
                "The redirect_uri query parameter value is invalid. Make sure it is listed in the "
                "Redirect URIs section of your app's keys."
            )
        state = params.get("state")
        if params.get("response_type") != "code":
            return add_query(uri, {"error": "unsupported_response_type", "state": state})
        scopes = (params.get("scope") or "").split()
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            return add_query(uri, {"error": "invalid_scope", "state": state})
        return None

    def decide(self, params: dict) -> str:
        """Apply an Approve/Deny decision; return the redirect URL back to the client.

        :raise ConsentError: 409 when the user cannot connect the chosen company (page re-shown).
        """
        early = self.validate_authorize(params)
        if early is not None:
            return early
        uri, state = params["redirect_uri"], params.get("state")
        if params.get("decision") != "approve":
            return add_query(uri, {"error": "access_denied", "state": state})
        user = params.get("user")
        if user not in self.access:
            raise ConsentError("Choose a user to sign in as.", 409)
        scopes = params.get("scope", "").split()
        realm_id = None
        if ACCOUNTING in scopes or PAYMENT in scopes:
            realm_id = params.get("realm_id")
            if realm_id not in self.realms:
                raise ConsentError("Choose a company to connect.", 409)
            if realm_id not in self.access[user]:
                raise ConsentError(f"{user} has no access to company {realm_id}; choose another company.", 409)
        code = self.tokens.issue_code(
            client_id=params["client_id"],
            redirect_uri=uri,
            realm_id=realm_id,
            user_id=user,
            scopes=scopes,
            now=self.ctx.clock.time(),
        )
        # realmId is present only for the accounting/payment scopes (quickbooks-online.md §1 "Callback").
        return add_query(uri, {"code": code, "state": state, "realmId": realm_id})

    # -- control hooks ---------------------------------------------------------------------------
    def companies(self) -> list[dict]:
        """List the demo companies with the users who may connect them."""
        return [
            {
                "id": r.id,
                "name": r.name,
                "country": r.country,
                "currency": r.currency["value"],
                "users": [
                    {"id": uid, **{k: v for k, v in demo.USERS[uid].items() if k != "realms"}}
                    for uid, realms in self.access.items()
                    if r.id in realms
                ],
            }
            for r in self.realms.values()
        ]

    def _realm(self, realm_id) -> Realm:
        realm = self.realms.get(str(realm_id or ""))
        if realm is None:
            raise ControlError(f"unknown realm {realm_id!r}; known: {', '.join(self.realms)}", 404)
        return realm

    def ledger(self, company_id: str) -> dict:
        """Return one company's entities, preferences and OAuth grants."""
        realm = self._realm(company_id)
        with realm.lock:
            data = realm.snapshot()
        data["grants"] = self.tokens.describe(self.ctx.clock.time(), realm.id)
        return data

    def consent(self, params: dict) -> dict:
        """Approve or deny like the consent page; params as the form plus ``decision``."""
        params = {k: (str(v) if v is not None else None) for k, v in params.items() if k != "provider"}
        params.setdefault("response_type", "code")
        params.setdefault("scope", ACCOUNTING)
        params.setdefault("decision", "approve")
        if not params.get("client_id"):
            params["client_id"] = DEFAULT_CLIENTS[self.name][0]
        if "realm_id" not in params and "company" in params:
            params["realm_id"] = params["company"]
        try:
            return {"redirect_url": self.decide(params)}
        except ConsentError as exc:
            raise ControlError(exc.message, 400) from exc

    def control(self, action: str, body: dict) -> dict:
        """Carry out a QBO test action (see README.md, "Control actions")."""
        handler = getattr(self, f"_control_{action}", None)
        if handler is None:
            raise ControlError(f"unknown action {action!r} for quickbooks", 404)
        try:
            return handler(body)
        except QBOFault as fault:
            raise ControlError(f"{fault.code} {fault.message}: {fault.detail}") from fault
        except (TypeError, ValueError, KeyError) as exc:
            raise ControlError(f"invalid argument: {exc}") from exc

    def _control_revoke_tokens(self, body: dict) -> dict:
        if body.get("token"):
            return {"revoked": int(self.tokens.revoke_token(str(body["token"])))}
        realm_id = body.get("realm_id")
        if realm_id is not None:
            self._realm(realm_id)
        return {"revoked": self.tokens.revoke_where(realm_id=realm_id, client_id=body.get("client_id"))}

    def _control_set_refresh_grace(self, body: dict) -> dict:
        hours = float(body["hours"])
        if hours < 0:
            raise ControlError("hours must be >= 0 (0 or 24 are the documented variants)")
        self.tokens.grace_hours = hours
        return {"grace_hours": hours}

    def _control_force_rotation(self, body: dict) -> dict:
        n = self.tokens.age_refresh_tokens(seconds=25 * 3600, realm_id=body.get("realm_id"))
        return {"grants": n}

    def _control_expire_refresh_tokens(self, body: dict) -> dict:
        n = self.tokens.expire_refresh_tokens(now=self.ctx.clock.time(), realm_id=body.get("realm_id"))
        return {"grants": n}

    def _control_expire_access_tokens(self, body: dict) -> dict:
        n = self.tokens.expire_access_tokens(now=self.ctx.clock.time(), realm_id=body.get("realm_id"))
        return {"tokens": n}

    def _control_set_preferences(self, body: dict) -> dict:
        realm = self._realm(body.get("realm_id"))
        with realm.lock:
            prefs = realm.preferences
            if "custom_txn_numbers" in body:
                prefs["SalesFormsPrefs"]["CustomTxnNumbers"] = bool(body["custom_txn_numbers"])
            if "closing_date" in body:
                value = body["closing_date"]
                if value is not None:
                    from datetime import date

                    value = date.fromisoformat(str(value)).isoformat()
                prefs["AccountingInfoPrefs"]["BookCloseDate"] = value
            if "class_tracking" in body:
                prefs["AccountingInfoPrefs"]["ClassTrackingPerTxnLine"] = bool(body["class_tracking"])
            if "class_tracking_per_txn" in body:
                prefs["AccountingInfoPrefs"]["ClassTrackingPerTxn"] = bool(body["class_tracking_per_txn"])
            if "categories_enabled" in body:
                realm.categories_enabled = bool(body["categories_enabled"])
            prefs["SyncToken"] = str(int(prefs["SyncToken"]) + 1)
            return {"Preferences": prefs, "categories_enabled": realm.categories_enabled}

    def _control_mark_paid(self, body: dict) -> dict:
        realm = self._realm(body.get("realm_id"))
        with realm.lock:
            invoice = realm.get("Invoice", str(body["invoice_id"]))
            if invoice is None:
                raise ControlError(f"no invoice {body['invoice_id']} in realm {realm.id}", 404)
            amount = body.get("amount", invoice["Balance"])
            payment = ops.save_payment(
                realm,
                {
                    "CustomerRef": invoice["CustomerRef"],
                    "TotalAmt": amount,
                    "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
                },
                self.ctx.clock.time(),
                update=False,
            )
            return {"Payment": payment, "Invoice": realm.get("Invoice", invoice["Id"])}

    def _control_set_tax_rate(self, body: dict) -> dict:
        """Change a TaxRate's RateValue (``{"realm_id", "rate_id", "value"}``): transactions then compute with it."""
        realm = self._realm(body.get("realm_id"))
        with realm.lock:
            rate = realm.get("TaxRate", str(body.get("rate_id")))
            if rate is None:
                raise ControlError(f"no TaxRate {body.get('rate_id')} in realm {realm.id}", 404)
            try:
                rate["RateValue"] = float(body["value"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ControlError("value is required, a percentage") from exc
            realm.bump("TaxRate", rate, self.ctx.clock.time())
            return {"TaxRate": rate}

    def _control_make_item_category(self, body: dict) -> dict:
        realm = self._realm(body.get("realm_id"))
        with realm.lock:
            item = realm.get("Item", str(body["item_id"]))
            if item is None:
                raise ControlError(f"no item {body['item_id']} in realm {realm.id}", 404)
            item["Type"] = "Category"
            for key in ("IncomeAccountRef", "UnitPrice", "Taxable", "PurchaseCost", "TrackQtyOnHand"):
                item.pop(key, None)
            realm.bump("Item", item, self.ctx.clock.time())
            return {"Item": item}

    def _control_set_user_access(self, body: dict) -> dict:
        user = body["user"]
        if user not in demo.USERS:
            raise ControlError(f"unknown user {user!r}; known: {', '.join(demo.USERS)}", 404)
        realms = [str(r) for r in body["realm_ids"]]
        for realm_id in realms:
            self._realm(realm_id)
        self.access[user] = realms
        return {"user": user, "realm_ids": realms}

    def _control_set_limits(self, body: dict) -> dict:
        for key in DEFAULT_LIMITS:
            if key in body:
                value = int(body[key])
                if value < 1:
                    raise ControlError(f"{key} must be at least 1")
                self.limits[key] = value
        return dict(self.limits)

    def _control_grants(self, body: dict) -> dict:
        return {"grants": self.tokens.describe(self.ctx.clock.time(), body.get("realm_id"))}
