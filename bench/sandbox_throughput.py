"""Measure invoice creations per second against the sandbox emulators over real HTTP.

Starts the sandbox (quotas off) on a waitress server in a separate process, connects to each
provider through its real OAuth flow (consent approved via ``POST /_control/consent``, then the
provider's token endpoint) and creates ``--n`` invoices per provider from ``--threads`` client
threads, one ``requests.Session`` each. Prints one line per provider; never asserts on timing.

Usage: ``.venv/bin/python bench/sandbox_throughput.py [--n 2000] [--threads 8] [--providers exact,qbo,bexio]``
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
TARGET = 300.0
REDIRECT = "http://127.0.0.1:8765/bench/callback"
TIMEOUT = 30

#: Run in the server process: the sandbox alone (no portal), quotas off, 16 waitress threads.
SERVER = (
    os.environ.get("BENCH_SERVER_CODE")
    or """
import sys
from waitress import serve
import sandbox
app = sandbox.create_app({"SANDBOX_QUOTAS": False})
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=16, ident="ledgerlink-sandbox")
"""
)


@dataclass
class Target:
    """What one provider's benchmark posts: a URL, headers and a body per invoice index."""

    url: str
    headers: dict[str, str]
    body: Callable[[int], dict]
    created: int  # the success status code


def free_port() -> int:
    """Return a TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log_path: str) -> subprocess.Popen:
    """Start the sandbox in its own process and wait until it answers."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the process ends
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sandbox exited with {process.returncode}; see {log_path}")
        try:
            if requests.get(f"{base}/", timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"sandbox did not answer within 30 s; see {log_path}")


def consent(base: str, **body) -> dict[str, str]:
    """Approve a consent through the control API; return the callback's query parameters."""
    response = requests.post(
        f"{base}/_control/consent", json={"redirect_uri": REDIRECT, "state": "bench", **body}, timeout=TIMEOUT
    )
    response.raise_for_status()
    return {k: v[0] for k, v in parse_qs(urlsplit(response.json()["redirect_url"]).query).items()}


def client_of(base: str, provider: str) -> tuple[str, str]:
    """Return the dev OAuth client (id, secret) the sandbox registers for a provider."""
    response = requests.get(f"{base}/_control/clients", timeout=TIMEOUT)
    response.raise_for_status()
    for row in response.json():
        if row["provider"] == provider:
            return row["client_id"], row["client_secret"]
    raise RuntimeError(f"no OAuth client for {provider}")


def exact_target(base: str) -> Target:
    """Connect jan.devries (nl) and prepare SalesInvoices posts in division 3010001."""
    client_id, secret = client_of(base, "exact-online")
    code = consent(base, provider="exact-online", client_id=client_id, region="nl")["code"]
    tokens = requests.post(
        f"{base}/exact-online/nl/api/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "client_secret": secret,
        },
        timeout=TIMEOUT,
    )
    tokens.raise_for_status()
    root = f"{base}/exact-online/nl/api/v1"
    headers = {
        "Authorization": f"Bearer {tokens.json()['access_token']}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    division = requests.get(f"{root}/current/Me", headers=headers, timeout=TIMEOUT).json()["d"]["results"][0][
        "CurrentDivision"
    ]

    def first(path: str, flt: str) -> str:
        response = requests.get(
            f"{root}/{division}/{path}",
            params={"$filter": flt, "$select": "ID"},
            headers=headers,
            timeout=TIMEOUT,
        )
        response.raise_for_status()
        return response.json()["d"]["results"][0]["ID"]

    account = first("crm/Accounts", "trim(Code) eq '1'")
    item = first("logistics/Items", "Code eq 'CONSULT'")
    return Target(
        url=f"{root}/{division}/salesinvoice/SalesInvoices",
        headers=headers,
        body=lambda i: {
            "OrderedBy": account,
            "YourRef": f"BENCH-{i:06d}",
            "Description": f"Bench invoice {i}",
            "SalesInvoiceLines": [{"Item": item, "Quantity": 1 + i % 5, "UnitPrice": 95}],
        },
        created=201,
    )


def quickbooks_target(base: str) -> Target:
    """Connect the US demo realm and prepare invoice posts."""
    client_id, secret = client_of(base, "quickbooks")
    params = consent(
        base,
        provider="quickbooks",
        client_id=client_id,
        scope="com.intuit.quickbooks.accounting",
        user="u-ada",
        realm_id="9341453908059321",
    )
    tokens = requests.post(
        f"{base}/quickbooks/oauth/oauth2/v1/tokens/bearer",
        data={"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT},
        auth=(client_id, secret),
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    )
    tokens.raise_for_status()
    realm = params["realmId"]
    return Target(
        url=f"{base}/quickbooks/api/v3/company/{realm}/invoice?minorversion=75",
        headers={
            "Authorization": f"Bearer {tokens.json()['access_token']}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
        body=lambda i: {
            "CustomerRef": {"value": "1"},
            "PrivateNote": f"BENCH-{i:06d}",
            "Line": [
                {
                    "Amount": 75 * (1 + i % 5),
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 1 + i % 5, "UnitPrice": 75},
                }
            ],
        },
        created=200,
    )


def bexio_target(base: str) -> Target:
    """Connect max.mustermann to Mustermann AG and prepare kb_invoice posts."""
    client_id, secret = client_of(base, "bexio")
    params = consent(
        base,
        provider="bexio",
        client_id=client_id,
        scope="openid offline_access contact_show kb_invoice_edit",
        username="max.mustermann",
        company_id="q69vysq7fkzl",
    )
    tokens = requests.post(
        f"{base}/bexio/auth/realms/bexio/protocol/openid-connect/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "client_secret": secret,
        },
        timeout=TIMEOUT,
    )
    tokens.raise_for_status()
    return Target(
        url=f"{base}/bexio/api/2.0/kb_invoice",
        headers={
            "Authorization": f"Bearer {tokens.json()['access_token']}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
        body=lambda i: {
            "title": f"Bench {i}",
            "contact_id": 1,
            "user_id": 1,
            "api_reference": f"bench-{i:06d}",
            "mwst_type": 0,
            "mwst_is_net": True,
            "positions": [
                {
                    "type": "KbPositionCustom",
                    "amount": str(1 + i % 5),
                    "unit_price": "100",
                    "tax_id": 14,
                    "account_id": 95,
                    "unit_id": 1,
                    "text": "Beratung",
                }
            ],
        },
        created=201,
    )


PROVIDERS: dict[str, tuple[str, Callable[[str], Target]]] = {
    "exact": ("exact-online", exact_target),
    "qbo": ("quickbooks", quickbooks_target),
    "bexio": ("bexio", bexio_target),
}


def run(target: Target, n: int, threads: int, offset: int) -> tuple[int, float, Counter]:
    """POST ``n`` invoices from ``threads`` threads; return (created, seconds, failures by status)."""
    counter = itertools.count(offset)
    lock = threading.Lock()
    failures: Counter = Counter()
    created = [0]
    end = offset + n

    def worker() -> None:
        session = requests.Session()
        # No proxy/netrc look-ups per request: the sandbox is on loopback (halves requests' CPU).
        session.trust_env = False
        session.headers.update(target.headers)
        done = 0
        while True:
            with lock:
                i = next(counter)
            if i >= end:
                break
            try:
                response = session.post(target.url, json=target.body(i), timeout=TIMEOUT)
                status = response.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            if status == target.created:
                done += 1
            else:
                with lock:
                    failures[status] += 1
        with lock:
            created[0] += done

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    return created[0], time.perf_counter() - started, failures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; always exit 0 once the sandbox started."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="invoices per provider (default 2000)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed invoices first (default 50)")
    parser.add_argument("--providers", default="exact,qbo,bexio", help="comma list of exact, qbo, bexio")
    parser.add_argument("--port", type=int, default=0, help="sandbox port (default: a free one)")
    args = parser.parse_args(argv)

    port = args.port or free_port()
    log_path = os.path.join(tempfile.gettempdir(), f"sandbox-throughput-{port}.log")
    try:
        server = start_server(port, log_path)
    except RuntimeError as exc:
        print(f"cannot start the sandbox: {exc}", file=sys.stderr)
        return 1
    base = f"http://127.0.0.1:{port}"
    print(f"sandbox pid {server.pid} on {base} (quotas off, waitress threads=16); client threads={args.threads}")
    try:
        for key in [k.strip() for k in args.providers.split(",") if k.strip()]:
            name, connect = PROVIDERS[key]
            try:
                target = connect(base)
            except (requests.RequestException, KeyError, IndexError, RuntimeError, ValueError) as exc:
                print(f"{name:13} skipped: could not connect through OAuth ({exc})")
                continue
            run(target, args.warmup, args.threads, offset=10**6)
            created, seconds, failures = run(target, args.n, args.threads, offset=0)
            rate = created / seconds if seconds else 0.0
            failed = f", failures {dict(failures)}" if failures else ""
            print(
                f"{name:13} {created:6d} invoices in {seconds:7.2f} s = {rate:7.1f} invoices/s "
                f"({rate / TARGET:.2f}x the {TARGET:.0f}/s target){failed}"
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
