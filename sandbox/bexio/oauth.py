"""auth.bexio.com: the Keycloak realm ``bexio`` (discovery, consent, token, userinfo, revoke, logout).

Mounted at ``/bexio/auth``; below it paths are the real ones (bexio.md §1.1).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, request

from . import tokens

if TYPE_CHECKING:
    from . import BexioEmulator

REALM = "/realms/bexio"
OIDC = REALM + "/protocol/openid-connect"

_DISCOVERY = json.loads((Path(__file__).parent / "openid-configuration.json").read_text(encoding="utf-8"))
SCOPES_SUPPORTED = frozenset(_DISCOVERY["scopes_supported"])
_PKCE_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")

#: Security headers Keycloak sends on its responses (recorded: OpenID/fetch-user-info.json).
KEYCLOAK_HEADERS = {
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "x-xss-protection": "1; mode=block",
}


class OAuthError(Exception):
    """A token-endpoint style error: ``{"error", "error_description"}`` with a status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def issuer() -> str:
    """Return the realm's issuer URL as seen from the current request."""
    return request.url_root.rstrip("/") + "/bexio/auth" + REALM


def add_query(url: str, params: dict) -> str:
    """Append ``params`` to ``url``'s query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _html(title: str, body: str, status: int = 200) -> Response:
    page = (
        '<!DOCTYPE html>\n<html lang="de-CH"><head><meta charset="utf-8">'
        f"<title>{escape(title)} | bexio</title></head><body>"
        f'<div id="kc-header">bexio</div><main>{body}</main></body></html>'
    )
    resp = Response(page, status=status, mimetype="text/html")
    resp.headers.update(KEYCLOAK_HEADERS)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def error_page(message: str) -> Response:
    """Return Keycloak's HTML error page (no redirect when client or redirect_uri is wrong)."""
    return _html(
        "Fehler",
        f'<h1 id="kc-page-title">Es ist ein Fehler aufgetreten</h1><p id="kc-error-message">{escape(message)}</p>',
        400,
    )


def create_blueprint(emulator: BexioEmulator) -> Blueprint:
    """Build the auth.bexio.com blueprint bound to ``emulator``."""
    bp = Blueprint("bexio_auth", __name__, url_prefix="/bexio/auth")

    @bp.errorhandler(OAuthError)
    def oauth_error(exc: OAuthError):
        resp = jsonify(error=exc.error, error_description=exc.description)
        resp.status_code = exc.status
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Pragma"] = "no-cache"
        resp.headers.update(KEYCLOAK_HEADERS)
        return resp

    def client_credentials(required: bool = True):
        """Authenticate the client by HTTP Basic or form body (bexio.md §1.1).

        :raise OAuthError: 401 when the client is unknown or its secret wrong.
        """
        client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
                basic_id, _, basic_secret = decoded.partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise OAuthError("invalid_client", "Invalid client or Invalid client credentials", 401) from exc
            from urllib.parse import unquote

            client_id, secret = unquote(basic_id), unquote(basic_secret)
        if not client_id:
            if not required:
                return None
            raise OAuthError("invalid_client", "Missing client_id parameter", 401)
        client = emulator.ctx.clients.get(emulator.name, client_id)
        if client is None:
            raise OAuthError("invalid_client", "Invalid client or Invalid client credentials", 401)
        if secret is None or not hmac.compare_digest(client.client_secret, secret):
            raise OAuthError("unauthorized_client", "Invalid client or Invalid client credentials", 401)
        return client

    # -- discovery and keys ------------------------------------------------------------------
    @bp.get(REALM + "/.well-known/openid-configuration")
    @bp.get(REALM + "/.well-known/oauth-authorization-server")
    def discovery():
        # Keycloak serves the same metadata under both names (RFC 8414 beside OpenID Discovery).
        base = issuer()
        doc = json.loads(json.dumps(_DISCOVERY).replace("https://auth.bexio.com/realms/bexio", base))
        resp = jsonify(doc)
        resp.headers.update(KEYCLOAK_HEADERS)
        resp.headers["Cache-Control"] = "no-cache, must-revalidate, no-transform, no-store"
        return resp

    @bp.get(REALM)
    def realm_document():
        """Keycloak's public realm document: the realm, its signing key and its service URLs."""
        base = issuer()
        resp = jsonify(
            {
                "realm": REALM.rsplit("/", 1)[-1],
                "public_key": tokens.public_key_der_b64(),
                "token-service": base + "/protocol/openid-connect",
                "account-service": base + "/account",
                "tokens-not-before": 0,
            }
        )
        resp.headers.update(KEYCLOAK_HEADERS)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @bp.get(OIDC + "/certs")
    def certs():
        return jsonify(tokens.jwks())

    # -- authorization: the consent page -----------------------------------------------------
    @bp.route(OIDC + "/auth", methods=["GET", "POST"])
    def authorize():
        params = request.values.to_dict()
        outcome = emulator.check_authorization(params, issuer())
        if isinstance(outcome, Response):
            return outcome
        if isinstance(outcome, str):
            return redirect(outcome, code=302)
        if request.method == "POST" and request.form.get("decision"):
            try:
                url = emulator.decide(params, issuer())
            except ValueError as exc:
                return consent_page(params, str(exc), 400)
            return redirect(url, code=302)
        return consent_page(params)

    def consent_page(params: dict, message: str | None = None, status: int = 200) -> Response:
        client = emulator.ctx.clients.get(emulator.name, params.get("client_id"))
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(params[k])}">'
            for k in (
                "client_id",
                "redirect_uri",
                "response_type",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
                "response_mode",
            )
            if params.get(k) is not None
        )
        users = "".join(
            f'<option value="{escape(u["username"])}"'
            f"{' selected' if u['username'] == params.get('username') else ''}>"
            f"{escape(u['given_name'])} {escape(u['family_name'])} ({escape(u['email'])})</option>"
            for u in emulator.users.values()
        )
        companies = "".join(
            f'<option value="{escape(c.company_id)}"'
            f"{' selected' if c.company_id == params.get('company_id') else ''}>"
            f"{escape(c.name)} ({escape(c.company_id)})</option>"
            for c in emulator.companies_by_id.values()
        )
        scopes = "".join(f"<li>{escape(s)}</li>" for s in (params.get("scope") or "").split())
        error = f'<p id="kc-error-message" role="alert">{escape(message)}</p>' if message else ""
        body = (
            f'<h1 id="kc-page-title">Bei bexio anmelden</h1>{error}'
            f"<p>Die Anwendung <strong>{escape(client.client_id if client else '')}</strong> "
            f'möchte auf Ihre bexio-Firma zugreifen mit:</p><ul id="scopes">{scopes}</ul>'
            f'<form method="post" action="{escape(request.base_url)}">{hidden}'
            '<p><label for="username">Benutzer</label> '
            f'<select id="username" name="username">{users}</select></p>'
            '<p><label for="company_id">Firma</label> '
            f'<select id="company_id" name="company_id">{companies}</select></p>'
            # Keycloak's German grant page: oauthGrantRequest, doYes, doNo.
            "<p>Wollen Sie diese Zugriffsrechte gewähren?</p>"
            '<p><button type="submit" name="decision" value="approve">Ja</button> '
            '<button type="submit" name="decision" value="deny">Nein</button></p></form>'
        )
        return _html("Zugriff gewähren", body, status)

    # -- token endpoint ----------------------------------------------------------------------
    @bp.post(OIDC + "/token")
    def token():
        client = client_credentials()
        grant_type = request.form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "Missing form parameter: grant_type")
        with emulator.lock:
            if grant_type == "authorization_code":
                body = emulator.redeem_code(client.client_id, request.form, issuer())
            elif grant_type == "refresh_token":
                body = emulator.refresh(client.client_id, request.form, issuer())
            else:
                raise OAuthError("unsupported_grant_type", "Unsupported grant_type")
        resp = jsonify(body)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Pragma"] = "no-cache"
        resp.headers.update(KEYCLOAK_HEADERS)
        return resp

    @bp.post(OIDC + "/token/introspect")
    def introspect():
        client_credentials()
        token_value = request.form.get("token", "")
        with emulator.lock:
            grant = emulator.grant_for(token_value)
            if grant is None:
                return jsonify(active=False)
            return jsonify(
                active=True,
                sub=grant.sub,
                client_id=grant.client_id,
                scope=" ".join(sorted(grant.scopes)),
                exp=int(grant.expires_at),
                company_id=grant.company_id,
                token_type="Bearer",  # noqa: S106 - a token type, not a secret
            )

    @bp.post(OIDC + "/revoke")
    def revoke():
        client = client_credentials()
        token_value = request.form.get("token")
        if not token_value:
            raise OAuthError("invalid_request", "Token not provided")
        with emulator.lock:
            emulator.revoke(client.client_id, token_value)
        resp = Response(status=200)
        resp.headers.update(KEYCLOAK_HEADERS)
        return resp

    # -- userinfo and logout -----------------------------------------------------------------
    @bp.route(OIDC + "/userinfo", methods=["GET", "POST"])
    def userinfo():
        header = request.headers.get("Authorization", "")
        token_value = header[7:].strip() if header[:7].lower() == "bearer " else request.form.get("access_token")
        with emulator.lock:
            grant = emulator.grant_for(token_value or "")
            info = emulator.userinfo(grant) if grant is not None and "openid" in grant.scopes else None
        if grant is None:
            resp = jsonify(error="invalid_token", error_description="Token verification failed")
            resp.status_code = 401
            resp.headers["WWW-Authenticate"] = (
                'Bearer realm="bexio", error="invalid_token", error_description="Token verification failed"'
            )
        elif info is None:
            resp = jsonify(error="insufficient_scope", error_description="Missing openid scope")
            resp.status_code = 403
        else:
            resp = jsonify(info)
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers.update(KEYCLOAK_HEADERS)
        return resp

    @bp.route(OIDC + "/logout", methods=["GET", "POST"])
    def logout():
        if request.method == "POST" and request.form.get("refresh_token"):
            # Back-channel logout by a confidential client with its refresh token → 204.
            client = client_credentials()
            with emulator.lock:
                emulator.logout_refresh(client.client_id, request.form["refresh_token"])
            return Response(status=204)
        target = request.values.get("post_logout_redirect_uri")
        with emulator.lock:
            client_id = emulator.logout_id_token(request.values.get("id_token_hint"))
        client_id = client_id or request.values.get("client_id")
        client = emulator.ctx.clients.get(emulator.name, client_id) if client_id else None
        if target:
            if client is None or not client.allows_redirect(target):
                return error_page("Ungültige Redirect URI")
            return redirect(add_query(target, {"state": request.values.get("state")}), code=302)
        resp = _html("Abgemeldet", '<h1 id="kc-page-title">Sie sind abgemeldet.</h1><p>Sie sind abgemeldet.</p>')
        resp.headers["content-language"] = "de-ch"
        return resp

    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown_auth_route(rest: str):
        # Keycloak (RESTEasy) answers unknown realm paths with this JSON 404.
        resp = jsonify(error="Unable to find matching target resource method")
        resp.status_code = 404
        return resp

    @bp.errorhandler(Exception)
    def auth_unexpected(exc: Exception):
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            resp = jsonify(error=exc.name)
            resp.status_code = exc.code or 500
            return resp
        import logging

        logging.getLogger(__name__).exception("bexio auth emulator error")
        resp = jsonify(error="unknown_error")
        resp.status_code = 500
        return resp

    return bp
