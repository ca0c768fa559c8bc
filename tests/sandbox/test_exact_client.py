"""ossobv's ``exactonline`` client library (PyPI ``exactonline``) against the sandbox, unmodified.

The library only speaks HTTPS (its ``opt_secure`` refuses http), so this test serves the sandbox
over TLS with a throw-away certificate and trusts it through ``SSL_CERT_FILE``, exactly as a
deployment trusts a CA. The only client-side change is the three server URLs in its config.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from exactonline import api as exactonline_api
from exactonline.storage.ini import IniStorage
from werkzeug.serving import make_server

from tests.sandbox.test_exact_support import CLIENT_ID, CLIENT_SECRET, NL_MAIN, REDIRECT


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def tls_sandbox(tmp_path, monkeypatch):
    import sandbox

    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    server = make_server("127.0.0.1", 0, sandbox.create_app(), threaded=True, ssl_context=(cert, key))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}", cert
    server.shutdown()


def test_exactonline_library_exchanges_code_reads_and_creates(tls_sandbox, tmp_path):
    base, cert = tls_sandbox
    site = f"{base}/exact-online/nl"
    storage = IniStorage(str(tmp_path / "exact.ini"))
    storage.set("server", "auth_url", f"{site}/api/oauth2/auth")
    storage.set("server", "rest_url", f"{site}/api")
    storage.set("server", "token_url", f"{site}/api/oauth2/token")
    storage.set("application", "base_url", REDIRECT)
    storage.set("application", "client_id", CLIENT_ID)
    storage.set("application", "client_secret", CLIENT_SECRET)
    storage.set("application", "response_url", REDIRECT)
    api = exactonline_api.ExactApi(storage=storage)

    # The library builds the consent URL; the consent page itself answers it.
    page = requests.get(api.create_auth_request_url(), verify=cert, timeout=10)
    assert page.status_code == 200
    assert "Approve" in page.text
    consent = requests.post(
        f"{base}/_control/consent",
        json={"provider": "exact-online", "client_id": CLIENT_ID, "redirect_uri": storage.get_response_url()},
        verify=cert,
        timeout=10,
    ).json()
    api.request_token(parse_qs(urlsplit(consent["redirect_url"]).query)["code"][0])
    assert storage.get_access_token().startswith("AAEA")

    api.set_division(NL_MAIN)  # the library validates with crm/Accounts?$filter=Name eq 'DOES_NOT_EXIST'
    customer = api.relations.get(relation_code="1")
    assert customer["Name"] == "Bakkerij Jansen B.V."

    created = api.relations.create({"Name": "Library Klant B.V.", "Code": "4242", "Status": "C", "IsSales": True})
    assert created["Code"] == "4242".rjust(18)
    assert api.relations.get(relation_code="4242")["ID"] == created["ID"]
