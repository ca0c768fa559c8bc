"""Measure back-fills against the sandboxes over real HTTP: pacing under the quota, QBO batching, memory.

Three figures, printed side by side with what they are measured against (never asserted):

1. **Pacing** (Exact Online, quotas on), twice side by side: with the live sync idle the back-fill
   fills all but the reserve (95 %) of the per-minute window through the shared limiter; with the
   live sync at work (its demand kept alive) it keeps to its share (``HISTORY_QUOTA_SHARE``,
   50 %). The ratio of the two throughputs is printed. So that a run takes seconds, the
   sandbox's clock and the limiter's clock both run ``--speed`` times faster than real time
   (one emulated minute = 60/speed real seconds): the same as scaling the quota up by that
   factor. Throughput is compared with the floor ``calls ÷ allowed rate``; 429 answers and
   failed records are counted.
2. **Batching** (QuickBooks, quotas off): ledger calls per invoice with ``adapter.batch``.
3. **Memory** (QuickBooks, quotas off): the worker's RSS sampled after every chunk of a large
   back-fill; growth between the first chunks and the end, at several sizes.

Runs on a temporary SQLite database and a private ``redis-server``; the sandbox runs in its own
process (waitress), so the worker's memory is measured alone. Reuses the test suite's
connect-flow helper.

Usage: ``.venv/bin/python bench/backfill.py [--speed 30] [--pace-n 120] [--qbo-n 600] [--memory-n 2000,8000]``
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402

FROM, TO = date(2025, 1, 1), date(2025, 12, 31)

#: Run in the sandbox's process: its clock ``speed`` times faster than real time from ``t0``.
SERVER = """
import sys, time
from waitress import serve
import sandbox
from sandbox.core.clock import Clock

port, speed, t0 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])


class FastClock(Clock):
    def time(self):
        with self._lock:
            return t0 + (time.time() - t0) * speed + self._offset


app = sandbox.create_app()
if speed != 1:
    app.extensions["sandbox"].clock = FastClock()
serve(app, host="127.0.0.1", port=port, threads=8, ident="ledgerlink-sandbox")
"""


def rss_mb() -> float:
    """Return this process's resident memory in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    """The app, the sandbox, a logged-in support client and helpers to connect and seed."""

    def __init__(self, tmp: Path, *, speed: float = 1.0) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        from flask_migrate import upgrade

        from portal import create_app
        from tests.conftest import IsolatedClient
        from tests.sandbox_server import free_port

        self.speed, self.t0 = speed, time.time()

        port = free_port()
        self.redis_proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL,
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                redis.Redis.from_url(self.redis_url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        sandbox_port = free_port()
        self.sandbox_proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(sandbox_port), str(speed), str(self.t0)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.sandbox = f"http://127.0.0.1:{sandbox_port}"
        for _ in range(300):
            try:
                requests.get(f"{self.sandbox}/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        self.app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'bench.sqlite'}",
                "REDIS_URL": self.redis_url,
                "EMBEDDED_WORKER": False,
                "SECRET_KEY": "bench-secret-key-that-is-long-enough-for-production",
                "TOKEN_KEYS": "nKxGk3sSgq3I5YcdwHcXjzD0Q4oC8bVtPvyZ6J1mQ2E=",
                "SERVER_NAME": None,
                "SANDBOX_URL": self.sandbox,
                "HISTORY_CHUNK_SIZE": 100,
            }
        )
        self.app.test_client_class = IsolatedClient
        with self.app.app_context():
            upgrade(revision="heads")

    def close(self) -> None:
        self.sandbox_proc.terminate()
        self.redis_proc.terminate()

    def quotas(self, enabled: bool) -> None:
        """Turn the sandbox's quotas on or off (and start fresh windows)."""
        requests.post(f"{self.sandbox}/_control/quotas", json={"enabled": enabled}, timeout=10).raise_for_status()

    def fast(self) -> float:
        """Return the time of the sandbox's (sped-up) clock."""
        return self.t0 + (time.time() - self.t0) * self.speed

    def connect(self, provider: str) -> tuple[int, dict]:
        """Create an organization with a customer and product, connect it, map it; return (connection id, ids)."""
        from portal.auth.services import create_staff
        from portal.extensions import db
        from portal.mappings import services
        from portal.models import BusinessUnit, Connection, Customer, Organization, Product
        from tests.conftest import csrf_token_of
        from tests.portal.connections.conftest import Flow
        from tests.portal.mappings.conftest import GOOD_DEFAULTS
        from tests.portal.sync.conftest import CONNECT, DEFAULT_RATE, NO_TAX_LINE

        tag = os.urandom(3).hex()
        with self.app.app_context():
            staff = create_staff(f"bench-{tag}@example.test", "support", "correct horse battery staple", actor="bench")
            org = Organization(external_id=f"org-{tag}", name=f"Bench {tag}", country="NL")
            unit = BusinessUnit(organization=org, name="Bench NL", country="NL", currency="EUR")
            customer = Customer(organization=org, external_id=f"cus-{tag}", name=f"Bench Customer {tag}", country="NL")
            db.session.add_all([org, unit, customer])
            db.session.flush()
            product = Product(
                organization_id=org.id,
                external_id="p1",
                code="CONSULT",
                name="Consulting",
                unit_price=Decimal("100"),
                tax_rate=DEFAULT_RATE[provider],
            )
            db.session.add(product)
            db.session.commit()
            # The invoices are at the rate of the mapped tax code, so the ledger books what they say.
            ids = {
                "org": org.id,
                "unit": unit.id,
                "customer": customer.id,
                "product": product.id,
                "rate": DEFAULT_RATE[provider],
            }
            email = staff.email
        client = self.app.test_client()
        token = csrf_token_of(client.get("/login").get_data(as_text=True))
        client.post("/login", data={"email": email, "password": "correct horse battery staple", "csrf_token": token})
        token = csrf_token_of(client.get("/").get_data(as_text=True))
        region, company, choices = CONNECT[provider]
        connection_id = Flow(client, token, self.sandbox).connect(
            ids["unit"], provider, region, company=company, **choices
        )
        with self.app.app_context():
            connection = db.session.get(Connection, connection_id)
            services.refresh_reference(connection)
            services.set_mappings(connection, {**GOOD_DEFAULTS[provider], **NO_TAX_LINE.get(provider, {})})
            db.session.commit()
        return connection_id, ids

    def company_of(self, connection_id: int) -> str:
        """Return the ledger company (division, realm) of a connection."""
        from portal.extensions import db
        from portal.models import Connection

        with self.app.app_context():
            return str(db.session.get_one(Connection, connection_id).external_company_id)

    def seed(self, ids: dict, n: int) -> None:
        """Add ``n`` one-line invoices dated in the range, in bulk."""
        from portal.extensions import db
        from portal.models import Invoice, InvoiceLine

        tag = os.urandom(2).hex().upper()
        days = (TO - FROM).days
        rate = ids["rate"]
        tax = (Decimal("100.00") * rate / 100).quantize(Decimal("0.01"))
        with self.app.app_context():
            for start in range(0, n, 2000):
                invoices = []
                for i in range(start, min(n, start + 2000)):
                    day = FROM + timedelta(days=i % days)
                    invoices.append(
                        Invoice(
                            organization_id=ids["org"],
                            business_unit_id=ids["unit"],
                            customer_id=ids["customer"],
                            external_id=f"inv-{tag}-{i}",
                            number=f"B{tag}-{i:06d}",
                            issue_date=day,
                            due_date=day + timedelta(days=30),
                            currency="EUR",
                            subtotal=Decimal("100.00"),
                            tax_total=tax,
                            total=Decimal("100.00") + tax,
                            lines=[
                                InvoiceLine(
                                    position=1,
                                    description="Consulting",
                                    quantity=Decimal("1"),
                                    unit_price=Decimal("100"),
                                    tax_rate=rate,
                                    net_amount=Decimal("100.00"),
                                    tax_amount=tax,
                                    product_id=ids["product"],
                                )
                            ],
                        )
                    )
                db.session.add_all(invoices)
                db.session.commit()
                db.session.expunge_all()

    def backfill(self, connection_id: int) -> tuple[dict, float]:
        """Preview, start and run a back-fill of the invoices of the range; return (state, seconds)."""
        from jobs.history import run_backfill
        from portal.extensions import db
        from portal.history import services
        from portal.models import Connection

        with self.app.app_context():
            connection = db.session.get(Connection, connection_id)
            scope = services.parse_scope(connection, FROM, TO, ["customer", "invoice"])
            backfill = services.start(connection, scope, started_by=None)
            backfill_id = backfill.id
        started = time.perf_counter()
        with self.app.app_context():
            state = run_backfill(backfill_id)
        return state, time.perf_counter() - started


def pacing(bench: Bench, n: int) -> None:
    """Exact Online back-fills with the live sync idle, then at work: each against its floor, and their ratio."""
    idle = pacing_one(bench, n, live=False)
    busy = pacing_one(bench, n, live=True)
    print(f"pacing  work-conserving: idle live sync / live sync at work throughput = {busy / idle:.2f}")


def pacing_one(bench: Bench, n: int, *, live: bool) -> float:
    """Exact Online with quotas on and time running ``bench.speed`` times faster: throughput vs the floor.

    With ``live`` a thread keeps the company's live demand present, as a live sync at work does.
    Returns the emulated seconds the back-fill took.
    """
    import threading

    from portal.extensions import queue
    from portal.history import services
    from portal.integrations import specs
    from portal.sync import limiter

    speed = bench.speed
    connection_id, ids = bench.connect("exact-online")
    bench.seed(ids, n)
    stop = threading.Event()
    statuses: dict[int, int] = {}
    real_from_config = limiter.from_config

    class CountingLimiter(limiter.RateLimiter):
        def on_response(self, info) -> None:
            statuses[info.status] = statuses.get(info.status, 0) + 1
            super().on_response(info)

    def paced(config, connection):
        return CountingLimiter(connection, max_wait=90.0, clock=bench.fast, sleep=lambda s: time.sleep(s / speed))

    limiter.from_config = paced
    try:
        bench.quotas(True)  # fresh windows
        with bench.app.app_context():
            for key in queue.connection.scan_iter(f"{limiter.KEY_PREFIX}:*"):
                queue.connection.delete(key)
            demand = (queue.connection, limiter.live_key("exact-online", bench.company_of(connection_id)))
        if live:

            def keep_live() -> None:
                while not stop.wait(1.0):
                    demand[0].set(demand[1], 1, px=limiter.LIVE_SECONDS * 1000)

            demand[0].set(demand[1], 1, px=limiter.LIVE_SECONDS * 1000)
            threading.Thread(target=keep_live, daemon=True).start()
        state, seconds = bench.backfill(connection_id)
    finally:
        stop.set()
        limiter.from_config = real_from_config
    spec = specs.get_spec("exact-online")
    share = services.DEFAULT_SHARE if live else 1 - limiter.LIVE_RESERVE
    allowed_per_second = spec.quotas.per_minute * share / 60  # emulated seconds
    calls = state["calls"]
    floor = calls / allowed_per_second
    emulated = seconds * speed
    failed = sum(per.get("failed", 0) for per in state["counts"].values())
    print(
        f"pacing  exact-online  live sync {'at work' if live else 'idle'}  {n} invoices  "
        f"{calls} calls in {seconds:.1f} s real = {emulated:.0f} s emulated "
        f"(x{speed:g}); floor at {share:.0%} of {spec.quotas.per_minute}/min = {floor:.0f} s; "
        f"throughput/floor = {floor / emulated:.3f}; status {state['status']}; "
        f"429 answers {statuses.get(429, 0)}; failed records {failed}; answers {dict(sorted(statuses.items()))}; "
        f"outcomes {state['counts']} {state['message']}"
    )
    return emulated


def batching(bench: Bench, n: int) -> None:
    """QuickBooks with quotas off: ledger calls per invoice with batch calls."""
    connection_id, ids = bench.connect("quickbooks")
    bench.seed(ids, n)
    bench.quotas(False)
    try:
        state, seconds = bench.backfill(connection_id)
    finally:
        bench.quotas(True)
    created = state["counts"]["invoice"].get("created", 0)
    print(
        f"batch   quickbooks    {n} invoices  {created} created with {state['calls']} calls "
        f"({n / max(1, state['calls']):.1f}x fewer than one call per invoice) in {seconds:.1f} s; "
        f"status {state['status']}; outcomes {state['counts']} {state['message']}"
    )


def memory(bench: Bench, sizes: list[int]) -> None:
    """QuickBooks with quotas off: RSS after every chunk of back-fills of growing size."""
    from portal.history import services

    bench.quotas(False)
    real_hook = services._after_chunk
    try:
        for n in sizes:
            connection_id, ids = bench.connect("quickbooks")
            bench.seed(ids, n)
            samples: list[float] = []
            services._after_chunk = lambda backfill, samples=samples: samples.append(rss_mb())
            state, seconds = bench.backfill(connection_id)
            base = samples[min(2, len(samples) - 1)]
            print(
                f"memory  quickbooks    {n} invoices  {len(samples)} chunks in {seconds:.0f} s "
                f"({n / seconds:.0f} invoices/s); RSS after chunk 3 {base:.1f} MB, peak {max(samples):.1f} MB, "
                f"end {samples[-1]:.1f} MB: growth {samples[-1] - base:+.1f} MB; status {state['status']}"
            )
    finally:
        services._after_chunk = real_hook
        bench.quotas(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=30.0, help="How much faster than real time the clocks run.")
    parser.add_argument("--pace-n", type=int, default=120, help="Invoices of the pacing run (Exact).")
    parser.add_argument("--qbo-n", type=int, default=600, help="Invoices of the batching run (QuickBooks).")
    parser.add_argument("--memory-n", default="2000,8000", help="Comma-separated sizes of the memory runs.")
    parser.add_argument("--only", default="pacing,batch,memory", help="Which parts to run.")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    # A terminated bench still stops its sandbox and redis-server (the finally blocks below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        if "pacing" in only:
            bench = Bench(Path(tmp) / "pacing", speed=args.speed)
            try:
                pacing(bench, args.pace_n)
            finally:
                bench.close()
        if only & {"batch", "memory"}:
            bench = Bench(Path(tmp) / "batch")
            try:
                if "batch" in only:
                    batching(bench, args.qbo_n)
                if "memory" in only:
                    memory(bench, [int(n) for n in args.memory_n.split(",") if n])
            finally:
                bench.close()


if __name__ == "__main__":
    main()
