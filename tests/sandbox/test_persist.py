"""The sandbox keeps its state in a file across restarts (the demo's), and a reset starts it afresh."""

from __future__ import annotations

import time

import requests

import sandbox
from tests.sandbox.test_exact_support import NL_MAIN, Api, connect, create_invoice, token_request
from tests.sandbox_server import ServedApp


def _serve(path) -> ServedApp:
    app = sandbox.create_app({"SANDBOX_STATE_FILE": str(path)})
    served = ServedApp(app, threads=4)
    served.state_file = app.extensions["sandbox"].state_file
    return served


def _wait_saved(app_server: ServedApp, path, saves: int = 1) -> None:
    state_file = app_server.state_file
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (state_file.saves < saves or state_file.dirty.is_set()):
        time.sleep(0.05)
    assert path.exists() and state_file.saves >= saves


def test_tokens_consents_and_ledgers_survive_a_restart_and_a_reset_forgets_them(tmp_path):
    path = tmp_path / "sandbox-state.pickle"
    first = _serve(path)
    try:
        tokens = connect(first.url, "nl")
        api = Api(first.url, tokens["access_token"], "nl")
        invoice = create_invoice(api)
        _wait_saved(first, path)
    finally:
        first.close()

    # A new sandbox (the demo restarted) reads the file: the token issued before still works,
    # the invoice is still in the ledger, and the refresh token still refreshes.
    second = _serve(path)
    try:
        api = Api(second.url, tokens["access_token"], "nl")
        found = api.get(
            f"{NL_MAIN}/salesinvoice/SalesInvoices", **{"$filter": f"InvoiceID eq guid'{invoice['InvoiceID']}'"}
        )
        assert found.status_code == 200, found.text
        assert [row["InvoiceID"] for row in found.json()["d"]["results"]] == [invoice["InvoiceID"]]
        requests.post(
            f"{second.url}/_control/exact-online/set_settings", json={"refresh_min_age": 0}, timeout=10
        ).raise_for_status()
        refreshed = token_request(second.url, "nl", grant_type="refresh_token", refresh_token=tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text

        # A reset starts afresh and is kept at once: the next start knows nothing of the token.
        requests.post(f"{second.url}/_control/reset", timeout=10).raise_for_status()
    finally:
        second.close()
    third = _serve(path)
    try:
        refused = Api(third.url, refreshed.json()["access_token"], "nl").get("current/Me")
        assert refused.status_code == 401
    finally:
        third.close()


def test_an_unreadable_state_file_is_set_aside_and_the_sandbox_starts_with_its_demo_data(tmp_path):
    path = tmp_path / "sandbox-state.pickle"
    path.write_bytes(b"not a pickle")
    served = _serve(path)
    try:
        companies = requests.get(f"{served.url}/_control/companies", timeout=10).json()
        assert companies["exact-online"]
    finally:
        served.close()
    assert (tmp_path / "sandbox-state.pickle.unreadable").exists()
