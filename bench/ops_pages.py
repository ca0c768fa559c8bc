"""Measure the ops console's pages at scale against a bare endpoint, in the same load run.

The portal runs as in production: ``LEDGERLINK_ENV=production`` on PostgreSQL and Redis, served by
waitress (``--threads``, default 8) in its own process. A staff account with the ops role logs in
through the login form first; its session cookie goes with every request. Then a Python load
generator (``--concurrency`` threads, default 8, each with its own HTTP session) sends the requests
of every target in one interleaved, shuffled stream:

* ``bare``: ``GET /healthz``, the portal's liveness endpoint (one ``SELECT 1``, no template, no
  login): what any Flask request costs on this server, database round trip included;
* ``dashboard``: ``GET /ops/``;
* ``connections``: ``GET /ops/connections`` (first page, sorted by organization);
* ``search``: ``GET /ops/connections?q=…`` (``--q``, default a common surname in the demo names);
* ``failures``: ``GET /ops/failures`` (the failure groups).

Each page's p50 and p95 are printed with the ratio p95 / p95(bare) and PASS when at most ``--max-ratio``
(default 3). The data does not change during the run, so figures the console keeps in Redis (failure
groups while the held records stay the same; connection counts, late invoices and the quota table for
up to a minute) are read once and then served from Redis; a second section therefore times each page
``--cold`` times with the figures the console keeps in Redis (``ops:*``) dropped before every request.
Nothing is asserted: the figures are the result.

The database (``--database-url``, default the dedicated ``ledgerlink_bench`` database) is created
and migrated when needed and seeded once when empty: ``seed demo --orgs`` (10,000 take a few
minutes) and ``seed records`` (``--connections`` 20,000, ``--records`` 1,000,000 with COPY). Later
runs reuse it; ``--reseed`` is never implied, drop the database to start again.

Usage: ``.venv/bin/python bench/ops_pages.py [--requests 300] [--concurrency 8] [--orgs 10000]``
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
FLASK = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "app"]
WAITRESS = str(ROOT / ".venv" / "bin" / "waitress-serve")
EMAIL = "bench-ops@ledgerlink.local"
PASSWORD = "bench-ops-password-not-secret"  # noqa: S105 - a throwaway bench account


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` when it does not exist."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            print(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')


def scalar(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def flask(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*FLASK, *args], cwd=ROOT, env=env, capture_output=True, text=True)


def prepare(args, env: dict) -> dict[str, int]:
    """Migrate, seed when empty, make the bench ops account; return the table sizes."""
    ensure_database(args.database_url)
    done = flask(env, "db", "upgrade")
    if done.returncode:
        sys.exit(f"migrating failed:\n{done.stderr[-2000:]}")
    seeded = False
    if scalar(args.database_url, "SELECT count(*) FROM organization") == 0:
        seeded = True
        print(f"seeding {args.orgs:,} organizations (once; later runs reuse them) …", flush=True)
        started = time.perf_counter()
        subprocess.run([*FLASK, "seed", "demo", "--orgs", str(args.orgs), "--if-empty"], cwd=ROOT, env=env, check=True)
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    if scalar(args.database_url, "SELECT count(*) FROM connection") == 0:
        seeded = True
        print(f"seeding {args.connections:,} connections and {args.records:,} records (once) …", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [
                *FLASK,
                "seed",
                "records",
                "--connections",
                str(args.connections),
                "--records",
                str(args.records),
                "--if-empty",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    if seeded:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # fresh statistics and visibility map, as autovacuum leaves them
    if scalar(args.database_url, f"SELECT count(*) FROM staff_user WHERE email = '{EMAIL}'") == 0:  # noqa: S608
        done = flask(
            env, "users", "create", "--email", EMAIL, "--role", "ops", "--name", "Bench", "--password", PASSWORD
        )
        if done.returncode:
            sys.exit(f"creating the bench account failed:\n{done.stderr[-2000:]}")
    sizes = {}
    for table in ("organization", "business_unit", "connection", "external_record"):
        sizes[table] = scalar(args.database_url, f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
    sizes["held records"] = scalar(
        args.database_url,
        "SELECT count(*) FROM external_record WHERE state IN ('failed', 'needs_action', 'skipped')",
    )
    return sizes


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"nothing listens on port {port} after {timeout:.0f} s")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    if not match:
        sys.exit("no CSRF token on the login page")
    return match.group(1)


def log_in(base: str) -> str:
    """Log in through the form; return the Cookie header of the session.

    Production marks the session cookie Secure; this bench speaks plain HTTP to the local server,
    so the cookie is carried by hand.
    """
    s = requests.Session()

    def unsecure():
        for cookie in s.cookies:
            cookie.secure = False

    page = s.get(f"{base}/login")
    unsecure()
    answer = s.post(
        f"{base}/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(page.text)},
        allow_redirects=False,
    )
    unsecure()
    if answer.status_code != 302:
        sys.exit(f"logging in failed with {answer.status_code}: {answer.text[:500]}")
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def run_load(base: str, cookie: str, targets: dict[str, str], n: int, concurrency: int, warmup: int):
    """Send ``n`` requests per target, shuffled together, from ``concurrency`` threads; return latencies."""
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["Cookie"] = cookie
        return local.s

    errors: dict[str, list[str]] = defaultdict(list)

    def hit(name: str) -> tuple[str, float]:
        started = time.perf_counter()
        response = session().get(base + targets[name], allow_redirects=False)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            errors[name].append(f"{response.status_code} {response.headers.get('Location', '')}")
        return name, elapsed

    rng = random.Random(42)
    warm = [name for name in targets for _ in range(warmup)]
    rng.shuffle(warm)
    plan = [name for name in targets for _ in range(n)]
    rng.shuffle(plan)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(hit, warm))
        errors.clear()
        started = time.perf_counter()
        results = list(pool.map(hit, plan))
        wall = time.perf_counter() - started
    latencies: dict[str, list[float]] = defaultdict(list)
    for name, elapsed in results:
        latencies[name].append(elapsed)
    return latencies, errors, wall


def measure_cold(base: str, cookie: str, targets: dict[str, str], redis_url: str, n: int) -> dict[str, list[float]]:
    """Time each target ``n`` times, one request at a time, with the figures the console keeps dropped before each."""
    import redis

    client = redis.Redis.from_url(redis_url)
    session = requests.Session()
    session.headers["Cookie"] = cookie
    found: dict[str, list[float]] = defaultdict(list)
    for _ in range(n):
        for name, path in targets.items():
            for key in client.scan_iter("ops:*"):  # the kept figures, not the sessions and login throttles
                client.delete(key)
            started = time.perf_counter()
            response = session.get(base + path, allow_redirects=False)
            found[name].append(time.perf_counter() - started)
            if response.status_code != 200:
                sys.exit(f"{path} answered {response.status_code} without kept figures")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/ledgerlink_bench"),
    )
    parser.add_argument("--orgs", type=int, default=10_000, help="organizations to seed when empty")
    parser.add_argument("--connections", type=int, default=20_000, help="connections to seed when empty")
    parser.add_argument("--records", type=int, default=1_000_000, help="external records to seed when empty")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per target")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests per target first")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--q", default="jansen", help="search term for the connection search")
    parser.add_argument("--max-ratio", type=float, default=3.0)
    parser.add_argument("--cold", type=int, default=5, help="requests per target without kept figures")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    redis_proc, redis_url = start_redis(tmp)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": redis_url,
        "LEDGERLINK_ENV": "production",
        "LEDGERLINK_SECRET_KEY": secrets.token_urlsafe(48),
        "LEDGERLINK_TOKEN_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "LEDGERLINK_LOG_FORMAT": "json",
    }
    server = None
    try:
        sizes = prepare(args, env)
        port = free_port()
        log = open(tmp / "server.log", "w")  # noqa: SIM115 - open for the server's life
        server = subprocess.Popen(
            [WAITRESS, f"--threads={args.threads}", "--host=127.0.0.1", f"--port={port}", "--call", "app:create_app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        cookie = log_in(base)
        targets = {
            "bare": "/healthz",
            "dashboard": "/ops/",
            "connections": "/ops/connections",
            "search": f"/ops/connections?q={args.q}",
            "failures": "/ops/failures",
        }
        print(
            "scale: "
            + ", ".join(f"{n:,} {table.replace('_', ' ')}" for table, n in sizes.items())
            + f"\nserver: waitress, {args.threads} threads, LEDGERLINK_ENV=production, PostgreSQL + Redis"
            + f"\nload: {args.requests} requests per target, shuffled together, {args.concurrency} concurrent "
            f"(after {args.warmup} warm-up requests per target); bare = GET /healthz",
            flush=True,
        )
        latencies, errors, wall = run_load(base, cookie, targets, args.requests, args.concurrency, args.warmup)
        cold = measure_cold(base, cookie, targets, redis_url, args.cold)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
    bare95 = percentile(latencies["bare"], 95)
    total = sum(len(v) for v in latencies.values())
    print(f"{total} requests in {wall:.1f} s ({total / wall:.0f} req/s)\n")
    print(f"{'page':<12} {'path':<34} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'p95/bare':>9}  verdict")
    failed = False
    for name, path in targets.items():
        values = latencies[name]
        p50, p95 = percentile(values, 50), percentile(values, 95)
        ratio = p95 / bare95
        verdict = "-" if name == "bare" else ("PASS" if ratio <= args.max_ratio else "FAIL")
        if errors.get(name):
            verdict = f"ERROR ({len(errors[name])} non-200, e.g. {errors[name][0]})"
        failed |= verdict not in ("-", "PASS")
        print(
            f"{name:<12} {path[:34]:<34} {p50 * 1000:8.1f} {p95 * 1000:8.1f} "
            f"{statistics.fmean(values) * 1000:8.1f} {ratio:9.2f}  {verdict}"
        )
    print(f"\n{'FAIL' if failed else 'PASS'}: every ops page's p95 within {args.max_ratio:g}x the bare endpoint's")
    print(
        "\nThe load run reads unchanged data, so figures the console keeps (failure groups, held totals, failed "
        "per day and the oldest failure while the held records stay the same; connection counts, late invoices "
        "and the quota table for up to a minute; closed days' pushed counts) come from Redis after their first "
        f"request. Without them (dropped before each request, one request at a time, {args.cold} per page):"
    )
    for name, path in targets.items():
        values = cold[name]
        print(
            f"  {name:<12} {path[:34]:<34} median {statistics.median(values) * 1000:8.1f} ms, "
            f"max {max(values) * 1000:8.1f} ms"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
