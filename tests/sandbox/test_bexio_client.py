"""Well-known clients work against the bexio emulator unmodified, given only base URLs.

* OAuth: Authlib's ``OAuth2Session`` (a project dependency) runs the authorization-code flow
  with PKCE S256 through the consent page, then a refresh with rotation.
* API: the npm package ``bexio`` (mathewmeconry/bexio, the maintained JS client, bexio.md §6;
  no maintained Python client exists) reads and creates through its own resource classes. Its
  only change is its ``baseApiUrl`` property, i.e. the base URL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests.sandbox.test_bexio_oauth import FormParser
from tests.sandbox.test_bexio_support import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, SCOPE, query

#: The client is a devDependency in package.json, installed by `make` (npm ci) with the rest.
NPM_DIR = Path(__file__).resolve().parents[2]

NODE_SCRIPT = r"""
const { default: Bexio } = require("bexio");
const [base, token] = process.argv.slice(1);
const bexio = new Bexio(token);
for (const resource of Object.values(bexio)) {
  if (resource && typeof resource === "object" && "baseApiUrl" in resource) resource.baseApiUrl = base;
}
(async () => {
  const out = {};
  out.contacts = await bexio.contacts.list({ limit: 3 });
  out.found = await bexio.contacts.search([{ field: "mail", value: "meier-treuhand" }]);
  out.contact = await bexio.contacts.create({
    contact_type_id: 1, name_1: "npm client AG", user_id: 1, owner_id: 1,
  });
  out.taxes = await bexio.taxes.list({ scope: "active", types: "sales_tax" });
  out.invoice = await bexio.invoices.create({
    contact_id: out.contact.id, user_id: 1, title: "npm", mwst_type: 0, mwst_is_net: true,
    positions: [
      { type: "KbPositionCustom", amount: "2", unit_price: "50", tax_id: 14, account_id: 95, text: "x" },
    ],
  });
  out.shown = await bexio.invoices.show(out.invoice.id);
  out.cancelNotIssued = await bexio.invoices.cancel(out.invoice.id).catch((e) => e);
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(JSON.stringify(e)); process.exit(1); });
"""


@pytest.fixture(scope="session")
def npm_bexio() -> Path:
    """Return the folder whose node_modules holds the npm ``bexio`` client (from package.json)."""
    assert shutil.which("node"), "node is needed for the client test"
    installed = NPM_DIR / "node_modules" / "bexio" / "package.json"
    assert installed.exists(), "the npm bexio client is missing: run `make vendor` (npm ci)"
    return NPM_DIR


def authlib_login(base: str) -> tuple[OAuth2Session, dict]:
    """Run Authlib's code flow with PKCE through the consent page; return session and token."""
    meta = requests.get(f"{base}/bexio/auth/realms/bexio/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(
        CLIENT_ID, CLIENT_SECRET, scope=SCOPE, redirect_uri=REDIRECT_URI, code_challenge_method="S256"
    )
    verifier = generate_token(48)
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    page = requests.get(url, timeout=10)
    form = FormParser()
    form.feed(page.text)
    approved = requests.post(
        form.action,
        data={**form.fields, "username": "max.mustermann", "decision": "approve"},
        allow_redirects=False,
        timeout=10,
    )
    location = approved.headers["Location"]
    assert query(location)["state"] == state
    token = session.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    return session, token | {"token_endpoint": meta["token_endpoint"]}


def test_authlib_code_flow_with_pkce_and_rotation(sandbox_url):
    session, token = authlib_login(sandbox_url)
    assert token["token_type"] == "Bearer"
    me = session.get(f"{sandbox_url}/bexio/api/3.0/users/me", headers={"Accept": "application/json"}, timeout=10)
    assert me.json()["id"] == 1
    old_refresh = token["refresh_token"]
    new = session.refresh_token(token["token_endpoint"], refresh_token=old_refresh)
    assert new["refresh_token"] != old_refresh
    with pytest.raises(Exception, match="invalid_grant"):
        session.refresh_token(token["token_endpoint"], refresh_token=old_refresh)


def test_npm_bexio_client_reads_and_creates(sandbox_url, npm_bexio):
    _, token = authlib_login(sandbox_url)
    result = subprocess.run(
        ["node", "-e", NODE_SCRIPT, f"{sandbox_url}/bexio/api", token["access_token"]],
        cwd=npm_bexio,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["contacts"]) == 3
    assert {c["name_1"] for c in out["found"]} == {"Meier Treuhand AG", "Meier"}
    assert out["contact"]["nr"] == "000008"
    assert {t["code"] for t in out["taxes"]} >= {"UN81"}
    assert out["invoice"]["kb_item_status_id"] == 7
    assert out["shown"]["total"] == "108.100000"
    # The client surfaces bexio's error body: a draft cannot be cancelled.
    assert out["cancelNotIssued"]["code"] == 422
    assert out["cancelNotIssued"]["message"]["error_code"] == 422
