"""OAuth blueprints: consent page (appcenter), token endpoint (oauth), revoke + discovery (developer)."""

from __future__ import annotations

import base64
import binascii
import secrets
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, request

from .demo import USERS
from .oauth import ACCOUNTING, KNOWN_SCOPES, OPENID_SCOPES, PAYMENT, OAuthError

if TYPE_CHECKING:
    from . import QuickBooksEmulator


class ConsentError(Exception):
    """An authorization request that cannot be shown or redirected (bad client or redirect URI)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def add_query(url: str, params: dict) -> str:
    """Return ``url`` with ``params`` appended to its query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def build(emu: QuickBooksEmulator) -> list[Blueprint]:
    """Return the appcenter, oauth and developer blueprints bound to ``emu``."""
    appcenter = Blueprint("quickbooks_appcenter", __name__, url_prefix="/quickbooks/appcenter")
    oauth = Blueprint("quickbooks_oauth", __name__, url_prefix="/quickbooks/oauth")
    developer = Blueprint("quickbooks_developer", __name__, url_prefix="/quickbooks/developer")

    def tid(resp: Response) -> Response:
        resp.headers["intuit_tid"] = f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"
        return resp

    for bp in (appcenter, oauth, developer):
        bp.after_request(tid)

    # -- consent ---------------------------------------------------------------------------------
    def consent_page(params: dict, error: str | None = None, status: int = 200) -> Response:
        scopes = params.get("scope", "").split()
        user_options = "".join(
            f'<option value="{escape(uid)}"{" selected" if params.get("user") == uid else ""}>'
            f"{escape(u['name'])} ({escape(u['email'])})</option>"
            for uid, u in USERS.items()
        )
        realm_options = "".join(
            f'<option value="{escape(r.id)}"{" selected" if params.get("realm_id") == r.id else ""}>'
            f"{escape(r.name)} ({escape(r.country)}, realm {escape(r.id)})</option>"
            for r in emu.realms.values()
        )
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{escape(params.get(k) or "")}">'
            for k in ("client_id", "redirect_uri", "scope", "state", "response_type")
        )
        needs_company = ACCOUNTING in scopes or PAYMENT in scopes
        company_block = (
            f'<p><label for="realm_id">Company to connect</label><br>'
            f'<select id="realm_id" name="realm_id">{realm_options}</select></p>'
            if needs_company
            else ""
        )
        html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Intuit - Connect to QuickBooks (sandbox)</title></head>
<body>
<h1>Connect your QuickBooks company</h1>
{f'<p role="alert" class="error">{escape(error)}</p>' if error else ""}
<p>The app <strong>{escape(params.get("client_id") or "")}</strong> would like to access:</p>
<ul>{"".join(f"<li>{escape(s)}</li>" for s in scopes)}</ul>
<form method="post" action="{escape(request.base_url)}">
{hidden}
<p><label for="user">Sign in as</label><br><select id="user" name="user">{user_options}</select></p>
{company_block}
<button type="submit" name="decision" value="approve">Connect</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
</body></html>"""
        return Response(html, status=status, mimetype="text/html")

    def error_page(message: str, status: int) -> Response:
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Intuit - Error</title></head>'
            f'<body><h1>Something went wrong</h1><p role="alert">{escape(message)}</p></body></html>'
        )
        return Response(html, status=status, mimetype="text/html")

    @appcenter.get("/connect/oauth2")
    def show_consent():
        params = request.args.to_dict()
        try:
            early = emu.validate_authorize(params)
        except ConsentError as exc:
            return error_page(exc.message, exc.status)
        if early is not None:
            return redirect(early)
        return consent_page(params)

    @appcenter.post("/connect/oauth2")
    def submit_consent():
        params = request.form.to_dict()
        try:
            url = emu.decide(params)
        except ConsentError as exc:
            if exc.status == 409:
                return consent_page(params, exc.message, 400)
            return error_page(exc.message, exc.status)
        return redirect(url)

    # -- token endpoint ------------------------------------------------------------------------
    def client_credentials() -> tuple[str | None, str | None]:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None, None
            cid, _, secret = decoded.partition(":")
            return cid, secret
        return request.form.get("client_id"), request.form.get("client_secret")

    def token_error(exc: OAuthError) -> Response:
        resp = jsonify(exc.body())
        resp.status_code = exc.status
        return resp

    @oauth.post("/oauth2/v1/tokens/bearer")
    def token():
        cid, secret = client_credentials()
        client = emu.ctx.clients.authenticate(emu.name, cid, secret)
        if client is None:
            return token_error(OAuthError("invalid_client", status=401))
        grant_type = request.form.get("grant_type")
        now = emu.ctx.clock.time()
        try:
            if grant_type == "authorization_code":
                code = request.form.get("code")
                if not code:
                    raise OAuthError("invalid_request", "code is required")
                grant = emu.tokens.exchange_code(
                    code, client_id=client.client_id, redirect_uri=request.form.get("redirect_uri"), now=now
                )
            elif grant_type == "refresh_token":
                rt = request.form.get("refresh_token")
                if not rt:
                    raise OAuthError("invalid_request", "refresh_token is required")
                grant = emu.tokens.use_refresh(rt, client_id=client.client_id, now=now)
            elif not grant_type:
                raise OAuthError("invalid_request", "grant_type is required")
            else:
                raise OAuthError("unsupported_grant_type")
        except OAuthError as exc:
            return token_error(exc)
        access = emu.tokens.new_access(grant, now)
        body = {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": grant.refresh_token,
            "expires_in": 3600,
            "x_refresh_token_expires_in": int(grant.rt_expires_at - now),
        }
        if request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true":
            body["x_refresh_token_hard_expires_in"] = int(grant.hard_expires_at - now)
        resp = jsonify(body)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @oauth.get("/v1/openid_connect/userinfo")
    def userinfo():
        header = request.headers.get("Authorization", "")
        state, grant = emu.tokens.check_access(header[7:].strip(), emu.ctx.clock.time())
        if not header.lower().startswith("bearer ") or state != "ok" or grant is None:
            resp = jsonify(error="invalid_token")
            resp.status_code = 401
            resp.headers["WWW-Authenticate"] = 'Bearer realm="Intuit", error="invalid_token"'
            return resp
        if "openid" not in grant.scopes:
            resp = jsonify(error="insufficient_scope")
            resp.status_code = 403
            return resp
        user = USERS.get(grant.user_id, {})
        given, _, family = user.get("name", "").partition(" ")
        body = {"sub": grant.user_id}
        if "email" in grant.scopes:
            body.update(email=user.get("email"), emailVerified=True)
        if "profile" in grant.scopes:
            body.update(givenName=given, familyName=family)
        if "phone" in grant.scopes:
            body.update(phoneNumber="+1 6505550100", phoneNumberVerified=False)
        return jsonify(body)

    @oauth.get("/op/v1/jwks")
    def jwks():
        # No id_token is issued (see README, deviations), so the key set is empty.
        return jsonify(keys=[])

    # -- revoke + discovery ----------------------------------------------------------------------
    @developer.post("/v2/oauth2/tokens/revoke")
    def revoke():
        cid, secret = client_credentials()
        if emu.ctx.clients.authenticate(emu.name, cid, secret) is None:
            return token_error(OAuthError("invalid_client", status=401))
        body = request.get_json(silent=True) or {}
        value = body.get("token") if isinstance(body, dict) else None
        if not value:
            value = request.form.get("token")
        if not value:
            return token_error(OAuthError("invalid_request", "token is required"))
        emu.tokens.revoke_token(str(value))
        return Response("", status=200)

    def discovery() -> Response:
        root = request.url_root.rstrip("/")
        return jsonify(
            {
                "issuer": "https://oauth.platform.intuit.com/op/v1",
                "authorization_endpoint": f"{root}/quickbooks/appcenter/connect/oauth2",
                "token_endpoint": f"{root}/quickbooks/oauth/oauth2/v1/tokens/bearer",
                "userinfo_endpoint": f"{root}/quickbooks/oauth/v1/openid_connect/userinfo",
                "revocation_endpoint": f"{root}/quickbooks/developer/v2/oauth2/tokens/revoke",
                "jwks_uri": f"{root}/quickbooks/oauth/op/v1/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": sorted(KNOWN_SCOPES & ({ACCOUNTING, PAYMENT} | OPENID_SCOPES)),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "claims_supported": [
                    "aud",
                    "exp",
                    "iat",
                    "iss",
                    "realmid",
                    "sub",
                    "email",
                    "emailVerified",
                    "givenName",
                    "familyName",
                    "phoneNumber",
                    "phoneNumberVerified",
                ],
            }
        )

    for spelling in (
        "openid_configuration",
        "openid_sandbox_configuration",
        "openid-configuration",
        "openid-sandbox-configuration",
    ):
        developer.add_url_rule(f"/.well-known/{spelling}", f"discovery_{spelling}", discovery)
        developer.add_url_rule(f"/.well-known/{spelling}/", f"discovery_{spelling}_slash", discovery)

    return [appcenter, oauth, developer]
