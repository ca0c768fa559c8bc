"""bexio emulator: auth.bexio.com (Keycloak realm "bexio") and api.bexio.com.

Hosts map to ``/bexio/auth`` and ``/bexio/api``; behaviour follows
docs/providers/bexio.md (cited as "bexio.md §n"). See README.md in this package.
"""

from __future__ import annotations

import base64
import json
import threading
from decimal import Decimal
from typing import Any

from flask import Flask, Response

from ..core.provider import ControlError, ProviderEmulator
from . import data
from .oauth import _PKCE_RE, SCOPES_SUPPORTED, OAuthError, add_query, error_page
from .store import ApiError, Company, f6
from .tokens import Grant, TokenStore, pkce_s256

#: Scopes a PAT carries: the user's full default rights (bexio.md §1.4).
PAT_SCOPES = frozenset(
    {
        "openid",
        "profile",
        "email",
        "company_profile",
        "accounting",
        "contact_edit",
        "kb_invoice_edit",
        "article_edit",
        "bank_account_show",
        "bank_payment_edit",
    }
)


class BexioEmulator(ProviderEmulator):
    """The bexio provider: OAuth realm, REST API 2.0/3.0, per-company state and test controls."""

    name = "bexio"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}
        self.companies_by_id: dict[str, Company] = {}
        self.tokens = TokenStore()

    # -- wiring -----------------------------------------------------------------------------
    def register(self, app: Flask) -> None:
        """Register the auth.bexio.com and api.bexio.com blueprints."""
        from .api import create_blueprint as api_blueprint
        from .oauth import create_blueprint as auth_blueprint

        app.register_blueprint(auth_blueprint(self))
        app.register_blueprint(api_blueprint(self))

    def reset(self) -> None:
        """Drop all state and load the demo companies, users and master data."""
        with self.lock:
            self.tokens = TokenStore()
            self.users = {u["username"]: json.loads(json.dumps(u)) for u in data.USERS}
            self.companies_by_id = {}
            for spec in data.COMPANIES:
                company = Company(spec, self.ctx.clock)
                for user in self.users.values():
                    if spec["company_id"] in user["companies"]:
                        company.add_user(user, user["companies"][spec["company_id"]])
                self._seed(company)
                self.companies_by_id[company.company_id] = company

    def _seed(self, company: Company) -> None:
        contacts = data.CONTACTS if company.company_id == "q69vysq7fkzl" else data.CONTACTS[:3]
        for spec in contacts:
            contact = company.create_contact({**spec, "user_id": 1, "owner_id": 1})
            # Seeded contacts read back salutation_id 0 when unset (bexio.md §3.1).
            if contact["salutation_id"] is None:
                contact["salutation_id"] = 0
            contact["updated_at"] = "2024-03-12 09:15:00"
        for code, name, kind, price, unit, tax, account in data.ARTICLES:
            company.create_article(
                {
                    "user_id": 1,
                    "intern_code": code,
                    "intern_name": name,
                    "article_type_id": kind,
                    "sale_price": price,
                    "unit_id": unit,
                    "tax_income_id": tax,
                    "account_id": account,
                }
            )
        if company.company_id == "q69vysq7fkzl":
            # One paid and one open invoice, so reads and searches find history.
            paid = company.create_invoice(
                {
                    "contact_id": 2,
                    "user_id": 1,
                    "title": "Beratung Januar",
                    "is_valid_from": "2026-01-15",
                    "is_valid_to": "2026-02-14",
                    "api_reference": "seed-0001",
                    "positions": [{"type": "KbPositionArticle", "article_id": 1, "amount": "4"}],
                }
            )
            company.issue(paid["id"])
            company.add_payment(paid["id"], {"value": f6(paid["totals"]["total"]), "date": "2026-02-10"})
            company.create_invoice(
                {
                    "contact_id": 3,
                    "user_id": 1,
                    "title": "Lizenz 2026",
                    "api_reference": "seed-0002",
                    "positions": [{"type": "KbPositionArticle", "article_id": 2, "amount": "1"}],
                }
            )

    # -- control hooks ----------------------------------------------------------------------
    def companies(self) -> list[dict]:
        """List the companies with their users (company_user_id per person)."""
        with self.lock:
            return [
                {
                    "id": c.company_id,
                    "name": c.name,
                    "currency": "CHF",
                    "locale": "de-CH",
                    "users": [
                        {
                            "company_user_id": uid,
                            "username": u["username"],
                            "sub": u["sub"],
                            "email": u["email"],
                        }
                        for uid, u in c.users.items()
                    ],
                }
                for c in self.companies_by_id.values()
            ]

    def company(self, company_id: Any) -> Company:
        """Return a company for a control action.

        :raise ControlError: 404 when unknown.
        """
        company = self.companies_by_id.get(str(company_id))
        if company is None:
            known = ", ".join(self.companies_by_id)
            raise ControlError(f"unknown bexio company {company_id!r}; known: {known}", 404)
        return company

    def ledger(self, company_id: str) -> dict:
        """Return the company's contacts, articles, invoices (with payments) and taxes."""
        with self.lock:
            c = self.company(company_id)
            invoices = []
            for inv in c.invoices.values():
                out = c.invoice_json(inv)
                out["payments"] = [c.payment_json(p) for p in inv["payments"]]
                out["communications"] = list(inv["sent"])
                invoices.append(out)
            return {
                "company": {"company_id": c.company_id, "name": c.name, "trial": c.trial},
                "contacts": [
                    {**c.contact_json(x, with_image=False), "deleted": x["deleted"]} for x in c.contacts.values()
                ],
                "articles": list(c.articles.values()),
                "invoices": invoices,
                "taxes": list(c.taxes.values()),
                "accounts": list(c.accounts.values()),
                "bank_accounts": list(c.bank_accounts.values()),
            }

    # -- OAuth ------------------------------------------------------------------------------
    def check_authorization(self, params: dict, iss: str) -> Response | str | None:
        """Validate an authorization request like Keycloak.

        Returns an error page (bad client or redirect URI: no redirect), an error redirect URL,
        or None when the request may be shown the consent page.
        """
        client = self.ctx.clients.get(self.name, params.get("client_id"))
        if client is None:
            return error_page("Client nicht gefunden.")
        redirect_uri = params.get("redirect_uri")
        if not client.allows_redirect(redirect_uri):
            return error_page("Ungültiger Parameter: redirect_uri")
        state = params.get("state")

        def fail(error: str, description: str) -> str:
            return add_query(
                redirect_uri, {"error": error, "error_description": description, "state": state, "iss": iss}
            )

        response_type = params.get("response_type")
        if not response_type:
            return fail("invalid_request", "Missing parameter: response_type")
        if response_type != "code":
            return fail(
                "unauthorized_client",
                "Client is not allowed to initiate browser login with given response_type.",
            )
        unknown = [s for s in (params.get("scope") or "").split() if s not in SCOPES_SUPPORTED]
        if unknown:
            return fail("invalid_scope", f"Invalid scopes: {params.get('scope')}")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if method and method not in ("plain", "S256"):
            return fail("invalid_request", "Invalid parameter: code challenge method is not configured one")
        if challenge is not None and not _PKCE_RE.match(challenge):
            return fail("invalid_request", "Invalid parameter: code_challenge")
        return None

    def decide(self, params: dict, iss: str) -> str:
        """Turn an Approve/Deny decision into the redirect URL back to the client.

        :raise ValueError: when the chosen person may not access the chosen company.
        """
        redirect_uri, state = params["redirect_uri"], params.get("state")
        if params.get("decision") != "approve":
            # Keycloak's answer to a denied consent (bexio.md §1.1; issue text: error=access_denied).
            return add_query(redirect_uri, {"error": "access_denied", "state": state, "iss": iss})
        with self.lock:
            user = self.users.get(params.get("username") or "")
            if user is None:
                user = next((u for u in self.users.values() if u["sub"] == params.get("sub")), None)
            if user is None:
                raise ValueError("Unbekannter Benutzer.")
            company_id = params.get("company_id") or next(iter(user["companies"]))
            if company_id not in user["companies"] or company_id not in self.companies_by_id:
                raise ValueError(f"{user['username']} hat keinen Zugriff auf die Firma {company_id}.")
            scope = " ".join(dict.fromkeys((params.get("scope") or "").split()))
            code = self.tokens.issue_code(
                {
                    "client_id": params["client_id"],
                    "redirect_uri": redirect_uri,
                    "scope": scope,
                    "sub": user["sub"],
                    "company_id": company_id,
                    "company_user_id": user["companies"][company_id],
                    "nonce": params.get("nonce"),
                    "code_challenge": params.get("code_challenge"),
                    "code_challenge_method": params.get("code_challenge_method") or "plain",
                },
                now=self.ctx.clock.time(),
            )
        import uuid

        return add_query(redirect_uri, {"state": state, "session_state": str(uuid.uuid4()), "iss": iss, "code": code})

    def consent(self, params: dict) -> dict:
        """Approve or deny programmatically; params as on the consent page plus ``decision``."""
        from .oauth import issuer

        params = {k: v for k, v in params.items() if k != "provider" and v is not None}
        params = {k: str(v) for k, v in params.items()}
        params.setdefault("response_type", "code")
        params.setdefault("decision", "approve")
        outcome = self.check_authorization(params, issuer())
        if isinstance(outcome, Response):
            raise ControlError("authorization request refused: unknown client_id or redirect_uri not allowed")
        if isinstance(outcome, str):
            return {"redirect_url": outcome}
        try:
            return {"redirect_url": self.decide(params, issuer())}
        except ValueError as exc:
            raise ControlError(str(exc), 403) from exc

    def _user_by_sub(self, sub: str) -> dict:
        return next(u for u in self.users.values() if u["sub"] == sub)

    def redeem_code(self, client_id: str, form, iss: str) -> dict:
        """Exchange an authorization code (single use, PKCE-checked) for tokens.

        :raise OAuthError: invalid_grant for a bad, reused or expired code, redirect or verifier.
        """
        code_value = form.get("code")
        if not code_value:
            raise OAuthError("invalid_request", "Missing parameter: code")
        now = self.ctx.clock.time()
        code = self.tokens.codes.pop(code_value, None)
        if code is None:
            sid = self.tokens.used_codes.get(code_value)
            if sid is not None and sid in self.tokens.sessions:
                # A replayed code ends the session it created (RFC 6749 §4.1.2).
                self.tokens.end_session(self.tokens.sessions[sid])
            raise OAuthError("invalid_grant", "Code not valid")
        if code["expires_at"] < now:
            raise OAuthError("invalid_grant", "Code is expired")
        if code["client_id"] != client_id:
            raise OAuthError("invalid_grant", "Auth error")
        if form.get("redirect_uri") != code["redirect_uri"]:
            raise OAuthError("invalid_grant", "Incorrect redirect_uri")
        if code.get("code_challenge"):
            verifier = form.get("code_verifier")
            if not verifier:
                raise OAuthError("invalid_grant", "PKCE code verifier not specified")
            expected = pkce_s256(verifier) if code["code_challenge_method"] == "S256" else verifier
            if not _PKCE_RE.match(verifier) or expected != code["code_challenge"]:
                raise OAuthError("invalid_grant", "PKCE verification failed: Code mismatch")
        elif form.get("code_verifier"):
            raise OAuthError("invalid_grant", "PKCE code verifier specified but challenge not present in authorization")
        session = self.tokens.new_session(code, now=now)
        self.tokens.used_codes[code_value] = session.sid
        return self.tokens.tokens_for(session, issuer=iss, now=now, user=self._user_by_sub(session.sub))

    def refresh(self, client_id: str, form, iss: str) -> dict:
        """Rotate a refresh token: the old one stops working at once (bexio.md §1.3).

        :raise OAuthError: invalid_grant for unknown, reused, expired or revoked tokens.
        """
        value = form.get("refresh_token")
        if not value:
            raise OAuthError("invalid_request", "Missing parameter: refresh_token")
        entry = self.tokens.refresh.get(value)
        if entry is None:
            raise OAuthError("invalid_grant", "Invalid refresh token")
        sid, expires_at, current = entry
        session = self.tokens.sessions.get(sid)
        now = self.ctx.clock.time()
        if session is None or not session.active:
            raise OAuthError("invalid_grant", "Offline user session not found")
        if session.client_id != client_id:
            raise OAuthError("invalid_grant", "Invalid refresh token. Token client and authorized client don't match")
        if not current:
            raise OAuthError("invalid_grant", "Maximum allowed refresh token reuse exceeded")
        if expires_at <= now:
            raise OAuthError("invalid_grant", "Token is not active")
        # A refresh cannot add scopes (bexio.md §1.2).
        wanted = (form.get("scope") or "").split()
        extra = [s for s in wanted if s not in session.scope.split()]
        if extra:
            raise OAuthError("invalid_scope", f"Invalid scopes: {form.get('scope')}")
        return self.tokens.tokens_for(session, issuer=iss, now=now, user=self._user_by_sub(session.sub))

    def grant_for(self, token: str) -> Grant | None:
        """Return the live grant of an access token or PAT, or None when invalid/expired/revoked."""
        grant = self.tokens.access.get(token)
        if grant is None or grant.revoked or grant.expires_at <= self.ctx.clock.time():
            return None
        if grant.session is not None and not grant.session.active:
            return None
        return grant

    def revoke(self, client_id: str, token: str) -> None:
        """Revoke an access token, or a refresh token with its whole session (RFC 7009)."""
        entry = self.tokens.refresh.get(token)
        if entry is not None:
            session = self.tokens.sessions.get(entry[0])
            if session is not None and session.client_id == client_id:
                self.tokens.end_session(session)
            return
        grant = self.tokens.access.get(token)
        if grant is not None and grant.client_id == client_id:
            grant.revoked = True

    def logout_refresh(self, client_id: str, token: str) -> None:
        """End the session of a refresh token (back-channel logout).

        :raise OAuthError: invalid_grant for an unknown token.
        """
        entry = self.tokens.refresh.get(token)
        session = self.tokens.sessions.get(entry[0]) if entry else None
        if session is None or session.client_id != client_id:
            raise OAuthError("invalid_grant", "Invalid refresh token")
        self.tokens.end_session(session)

    def logout_id_token(self, id_token: str | None) -> str | None:
        """End the session named by an ID token hint; return its client id."""
        if not id_token:
            return None
        try:
            payload = id_token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return None
        session = self.tokens.sessions.get(claims.get("sid", ""))
        if session is not None:
            self.tokens.end_session(session)
        return claims.get("azp")

    def userinfo(self, grant: Grant) -> dict:
        """Return the userinfo claims in the recorded order (bexio.md §1.5)."""
        user = self._user_by_sub(grant.sub)
        company = self.companies_by_id[grant.company_id]
        return {
            "sub": user["sub"],
            "email_verified": True,
            "gender": user["gender"],
            "company_id": company.company_id,
            "shard_id": company.spec["shard_id"],
            "company_name": company.name,
            "locale": user["locale"],
            "given_name": user["given_name"],
            "company_user_id": grant.company_user_id,
            "family_name": user["family_name"],
            "email": user["email"],
        }

    # -- test controls ----------------------------------------------------------------------
    def control(self, action: str, body: dict) -> dict:
        """Carry out a test action; see README.md "Control actions".

        :raise ControlError: for an unknown action or bad arguments.
        """
        handler = getattr(self, f"_control_{action}", None)
        if handler is None:
            actions = sorted(n[len("_control_") :] for n in dir(self) if n.startswith("_control_"))
            raise ControlError(f"unknown action {action!r} for bexio; known: {', '.join(actions)}", 404)
        with self.lock:
            try:
                return handler(body)
            except ApiError as exc:
                raise ControlError(f"{exc.message} {exc.errors or ''}".strip(), exc.status) from exc

    def _sessions_matching(self, body: dict):
        company_id, username = body.get("company"), body.get("username")
        sub = self.users[username]["sub"] if username in self.users else None
        if username is not None and sub is None:
            raise ControlError(f"unknown username {username!r}", 404)
        if company_id is not None:
            self.company(company_id)
        for session in self.tokens.sessions.values():
            if company_id is not None and session.company_id != str(company_id):
                continue
            if sub is not None and session.sub != sub:
                continue
            yield session

    def _control_revoke_tokens(self, body: dict) -> dict:
        """End sessions (their access and refresh tokens), optionally per company/username."""
        ended = 0
        for session in list(self._sessions_matching(body)):
            if session.active:
                self.tokens.end_session(session)
                ended += 1
        for grant in self.tokens.access.values():
            if grant.session is None and body.get("company") in (None, grant.company_id):
                grant.revoked = True
        return {"revoked_sessions": ended}

    def _control_expire_access_tokens(self, body: dict) -> dict:
        """Make current access tokens expired (refresh tokens keep working)."""
        now, count = self.ctx.clock.time(), 0
        sids = {s.sid for s in self._sessions_matching(body)}
        for grant in self.tokens.access.values():
            if grant.session is not None and grant.session.sid in sids and grant.expires_at > now:
                grant.expires_at = now - 1
                count += 1
        return {"expired_access_tokens": count}

    def _control_expire_refresh_tokens(self, body: dict) -> dict:
        """Make current refresh tokens expired ("Token is not active" on use)."""
        now, count = self.ctx.clock.time(), 0
        for session in self._sessions_matching(body):
            entry = self.tokens.refresh.get(session.refresh_token or "")
            if entry is not None and entry[2]:
                entry[1] = now - 1
                count += 1
        return {"expired_refresh_tokens": count}

    def _invoice_arg(self, body: dict):
        company = self.company(body.get("company"))
        try:
            invoice_id = int(body.get("invoice_id"))
        except (TypeError, ValueError) as exc:
            raise ControlError("invoice_id is required (integer)") from exc
        if invoice_id not in company.invoices:
            raise ControlError(f"no invoice {invoice_id} in {company.company_id}", 404)
        return company, invoice_id

    def _control_mark_paid(self, body: dict) -> dict:
        """Record a payment as if booked in bexio: full amount (→ 9) or ``amount`` (→ 9/16)."""
        company, invoice_id = self._invoice_arg(body)
        invoice = company.invoices[invoice_id]
        remaining = invoice["totals"]["total_remaining_payments"]
        amount = str(body["amount"]) if "amount" in body else f6(remaining)
        try:
            positive = Decimal(amount) > 0
        except ArithmeticError as exc:
            raise ControlError(f"amount must be a decimal, not {amount!r}") from exc
        if not positive:
            raise ControlError("nothing left to pay on this invoice")
        payment = company.add_payment(invoice_id, {"value": amount, "date": body.get("date")})
        return {
            "payment": company.payment_json(payment),
            "kb_item_status_id": company.status(invoice),
        }

    def _control_set_overdue(self, body: dict) -> dict:
        """Mark a pending invoice overdue (status 31) regardless of its due date."""
        company, invoice_id = self._invoice_arg(body)
        invoice = company.invoices[invoice_id]
        if invoice["status"] != 8:
            raise ControlError("only pending (8) invoices can become overdue (31)", 409)
        invoice["overdue"] = bool(body.get("overdue", True))
        return {"kb_item_status_id": company.status(invoice)}

    def _control_deactivate_tax(self, body: dict) -> dict:
        """Deactivate (or with ``"active": true`` reactivate) a tax; inactive ones are refused."""
        company = self.company(body.get("company"))
        try:
            tax = company.taxes[int(body.get("tax_id"))]
        except (TypeError, ValueError, KeyError) as exc:
            raise ControlError(f"unknown tax_id {body.get('tax_id')!r}", 404) from exc
        tax["is_active"] = bool(body.get("active", False))
        return tax

    def _control_set_tax_value(self, body: dict) -> dict:
        """Change a tax's rate in place (``{"company", "tax_id", "value"}``): positions then book the new one."""
        company = self.company(body.get("company"))
        try:
            tax = company.taxes[int(body.get("tax_id"))]
            tax["value"] = float(body["value"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ControlError("tax_id (known) and value (a number) are required", 404) from exc
        return tax

    def _control_set_user_rights(self, body: dict) -> dict:
        """Deny (or allow again) modules to a company user: the API answers 403 (bexio.md §1.2)."""
        company = self.company(body.get("company"))
        try:
            user_id = int(body.get("user_id"))
        except (TypeError, ValueError) as exc:
            raise ControlError("user_id (company_user_id) is required") from exc
        if user_id not in company.users:
            raise ControlError(f"no user {user_id} in {company.company_id}", 404)
        deny = body.get("deny", [])
        if not isinstance(deny, list) or not all(isinstance(m, str) for m in deny):
            raise ControlError('deny must be a list of modules, e.g. ["kb_invoice"]')
        company.denied[user_id] = set(deny)
        return {"user_id": user_id, "denied": sorted(deny)}

    def _control_set_trial(self, body: dict) -> dict:
        """Switch trial mode: invoices can then be sent only to the token owner's e-mail (bexio.md §3.4)."""
        company = self.company(body.get("company"))
        company.trial = bool(body.get("trial", True))
        return {"company": company.company_id, "trial": company.trial}

    def _control_issue_pat(self, body: dict) -> dict:
        """Create a personal access token for a user in a company (bexio.md §1.4)."""
        company = self.company(body.get("company"))
        user = self.users.get(body.get("username") or "max.mustermann")
        if user is None or company.company_id not in user["companies"]:
            raise ControlError("username must name a user of that company", 404)
        token = self.tokens.issue_pat(
            user["sub"],
            company.company_id,
            user["companies"][company.company_id],
            PAT_SCOPES,
            now=self.ctx.clock.time(),
        )
        return {"token": token, "scopes": sorted(PAT_SCOPES)}

    def _control_set_large_document_failure(self, body: dict) -> dict:
        """Set (or with ``"enabled": false`` lift) the positions limit above which a create fails."""
        company = self.company(body.get("company"))
        enabled = body.get("enabled", True)
        company.max_positions = int(body.get("max_positions", 150)) if enabled else 10**9
        return {"company": company.company_id, "max_positions": company.max_positions}
