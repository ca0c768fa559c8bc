"""bexio's Keycloak realm documents (what OpenID and Keycloak client libraries fetch) and the
wording of its consent page.
"""

from __future__ import annotations

import base64
import re

import requests
from cryptography.hazmat.primitives.serialization import load_der_public_key
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.sandbox.test_bexio_support import CLIENT_ID, REDIRECT_URI, login, oidc


def realm_url(base: str) -> str:
    return f"{base}/bexio/auth/realms/bexio"


def test_the_public_realm_document_names_the_realm_its_key_and_services(sandbox_url):
    response = requests.get(realm_url(sandbox_url), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    doc = response.json()
    assert list(doc) == ["realm", "public_key", "token-service", "account-service", "tokens-not-before"]
    assert doc["realm"] == "bexio"
    assert doc["token-service"] == f"{realm_url(sandbox_url)}/protocol/openid-connect"
    assert doc["account-service"] == f"{realm_url(sandbox_url)}/account"
    assert doc["tokens-not-before"] == 0
    # The key is the one the realm signs with: the same as its JWKS entry.
    public = load_der_public_key(base64.b64decode(doc["public_key"])).public_numbers()
    (jwk,) = requests.get(f"{oidc(sandbox_url)}/certs", timeout=10).json()["keys"]
    modulus = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big")
    assert (public.n, public.e) == (modulus, 65537)


def test_a_token_verifies_with_the_realm_documents_key_as_keycloak_clients_do(sandbox_url):
    tokens = login(sandbox_url)
    doc = requests.get(realm_url(sandbox_url), timeout=10).json()
    # python-keycloak and Keycloak adapters wrap public_key into a PEM and verify RS256 with it.
    pem = "-----BEGIN PUBLIC KEY-----\n" + doc["public_key"] + "\n-----END PUBLIC KEY-----"
    claims = jwt.decode(tokens["access_token"], RSAKey.import_key(pem), algorithms=["RS256"]).claims
    assert claims["iss"] == realm_url(sandbox_url)
    assert claims["azp"] == CLIENT_ID


def test_oauth_authorization_server_metadata_is_the_openid_configuration(sandbox_url):
    openid = requests.get(f"{realm_url(sandbox_url)}/.well-known/openid-configuration", timeout=10)
    oauth = requests.get(f"{realm_url(sandbox_url)}/.well-known/oauth-authorization-server", timeout=10)
    assert oauth.status_code == 200
    assert oauth.json() == openid.json()
    assert oauth.json()["issuer"] == realm_url(sandbox_url)
    assert oauth.json()["token_endpoint"] == f"{oidc(sandbox_url)}/token"


def test_the_consent_page_speaks_german_throughout(sandbox_url):
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid offline_access",
        "state": "s",
    }
    page = requests.get(f"{oidc(sandbox_url)}/auth", params=params, timeout=10)
    assert page.status_code == 200
    assert '<html lang="de-CH">' in page.text
    buttons = re.findall(r'<button[^>]*value="(\w+)"[^>]*>([^<]+)</button>', page.text)
    assert buttons == [("approve", "Ja"), ("deny", "Nein")]
    assert "Wollen Sie diese Zugriffsrechte gewähren?" in page.text
    visible = re.sub(r"<[^>]+>", " ", page.text)
    for english in ("Approve", "Deny", "Sign in", "Company", "User"):
        assert english not in visible
