"""Fixtures shared by the whole suite, and its tiers.

The suite uses PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set (CI sets both),
else a SQLite file and a private redis-server. Tests flush the Redis database they are
given: point REDIS_URL at a scratch database.

Run in parallel (``pytest -n 2``, as ``make test`` does), each worker gets a database of its
own, ``<DATABASE_URL's database>_gw0`` and so on, created and dropped by the suite, and a
private redis-server: a Redis database per worker would need database numbers the suite was
not given.

Tiers (markers, see pyproject.toml): ``e2e`` (Chromium), ``workers`` (real ``rq worker`` and
other portal processes), ``faults`` (sandbox fault injection) and ``slow``. ``make test-fast``
runs everything else.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from unittest import mock

import pytest
from flask.globals import _cv_app
from flask.testing import FlaskClient
from hypothesis import settings
from sqlalchemy import event, inspect
from werkzeug.security import generate_password_hash

from tests.sandbox_server import ServedApp

#: Examples are judged by what they find, not by how fast a shared CI machine runs them: a
#: per-example deadline only turns a busy neighbour into a failure.
settings.register_profile("ledgerlink", deadline=None)
settings.load_profile("ledgerlink")

TEST_PASSWORD = "correct horse battery staple"
#: Staff accounts made by tests hash their password with scrypt at a low work factor: logging in
#: still runs werkzeug's real check (it reads the parameters from the hash), in a millisecond
#: instead of a quarter second. Production accounts keep werkzeug's default.
TEST_PASSWORD_HASH = "scrypt:1024:8:1"

TESTS = Path(__file__).resolve().parent
STARTED = pytest.StashKey[float]()
#: Folders whose every test is of a tier (the other tiers are marked test by test).
TIER_FOLDERS = {"e2e": ("e2e",), "faults": ("faults", "workers")}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test of a tier folder with its tiers."""
    for item in items:
        try:
            folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        for tier in TIER_FOLDERS.get(folder, ()):
            item.add_marker(tier)


def pytest_sessionstart(session) -> None:
    session.config.stash[STARTED] = time.time()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print the fault matrix when this run's cases wrote it (in this process or an xdist worker)."""
    from tests.faults import matrix

    rows = matrix.written_since(config.stash.get(STARTED, time.time()))
    if rows:
        terminalreporter.section("fault matrix (provider x fault)")
        for line in matrix.table(rows):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"written to {matrix.MATRIX_PATH.relative_to(TESTS.parent)}")


def xdist_worker() -> str | None:
    """The pytest-xdist worker this process is ("gw0", …), or None when the suite runs alone."""
    return os.environ.get("PYTEST_XDIST_WORKER")


@pytest.fixture(scope="session")
def sandbox_server():
    """The provider sandbox served over real HTTP for the whole session; yields its base URL."""
    import sandbox

    served = ServedApp(sandbox.create_app())
    yield served.url
    served.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    """The database the suite runs on: DATABASE_URL, or a fresh SQLite file.

    Under pytest-xdist each worker creates (and at the end drops) a database of its own beside
    DATABASE_URL's, named after it with the worker's id.
    """
    base, worker = os.environ.get("DATABASE_URL"), xdist_worker()
    if not base:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
        return
    if not worker:
        yield base
        return
    from sqlalchemy import create_engine, make_url, text

    url = make_url(base)
    own = url.set(database=f"{url.database}_{worker}")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    quoted = f'"{own.database}"'
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {quoted}"))
    yield own.render_as_string(hide_password=False)
    with admin.connect() as conn:  # FORCE ends the connections the app's pool still holds
        conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A Redis server reachable over TCP: REDIS_URL, or a private redis-server on a free port.

    Under pytest-xdist every worker starts its own redis-server (REDIS_URL names one database,
    and the suite flushes the database it is given). Worker processes started by tests connect
    to it just as production workers do.
    """
    if os.environ.get("REDIS_URL") and not xdist_worker():
        yield os.environ["REDIS_URL"]
        return
    import shutil
    import subprocess
    import time

    import redis

    from tests.sandbox_server import free_port

    binary = shutil.which("redis-server")
    assert binary, "tests need REDIS_URL or a redis-server binary (apt-get install redis-server)"
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path_factory.mktemp("redis")),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


class IsolatedClient(FlaskClient):
    """A test client whose every request gets its own app context, as in production.

    Without this, a test holding an app context (the ``db`` fixture) would share ``g`` and the
    database session with the requests it makes.
    """

    def open(self, *args, **kwargs):
        token = _cv_app.set(None)
        try:
            return super().open(*args, **kwargs)
        finally:
            _cv_app.reset(token)


@pytest.fixture(scope="session")
def app(database_url, redis_url, sandbox_server, tmp_path_factory):
    """The portal app on the test database, migrated to head with `flask db upgrade`."""
    from flask_migrate import upgrade

    from portal import create_app

    instance = tmp_path_factory.mktemp("instance")
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "EMBEDDED_WORKER": False,
            "SECRET_KEY": "test-secret-key-that-is-long-enough-for-production",
            "TOKEN_KEYS": "nKxGk3sSgq3I5YcdwHcXjzD0Q4oC8bVtPvyZ6J1mQ2E=",
            "SERVER_NAME": None,
            # The ledgers are the sandboxes, over real HTTP: only base URLs differ from production.
            "SANDBOX_URL": sandbox_server,
        }
    )
    app.instance_path = str(instance)
    app.test_client_class = IsolatedClient
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(scope="session")
def _tables(app) -> list:
    """The tables to empty after each test, children first: the models' tables the migrations made.

    (A model without its migration yet is caught by test_migrations, not here.)
    """
    from portal.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        existing = set(inspect(conn).get_table_names())
    return [table for table in reversed(db.metadata.sorted_tables) if table.name in existing]


@pytest.fixture(autouse=True)
def _clean_state(request) -> Iterator[None]:
    """Leave every table empty and the Redis database flushed after each portal test.

    Tests commit on purpose, from several sessions, threads and worker processes, so the state is
    deleted rather than rolled back. On PostgreSQL the deletes go in one round trip.
    """
    if "app" not in request.fixturenames:
        yield
        return
    app, tables = request.getfixturevalue("app"), request.getfixturevalue("_tables")
    yield
    from portal.extensions import db, queue

    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("; ".join(f'DELETE FROM "{table.name}"' for table in tables))
            else:
                for table in tables:
                    conn.execute(table.delete())
        queue.connection.flushdb()


@pytest.fixture
def client(app):
    """A test client with no session."""
    return app.test_client()


@pytest.fixture
def db(app):
    """The SQLAlchemy handle, inside an app context."""
    from portal.extensions import db as _db

    with app.app_context():
        yield _db


@pytest.fixture
def make_staff(app) -> Callable:
    """Return a factory of committed staff accounts: make_staff("ops") -> StaffUser id/email.

    Their passwords are hashed with :data:`TEST_PASSWORD_HASH`.
    """
    from portal.auth.services import create_staff
    from portal.extensions import db

    cheap = partial(generate_password_hash, method=TEST_PASSWORD_HASH)

    def make(role: str = "support", email: str | None = None, password: str = TEST_PASSWORD):
        with app.app_context(), mock.patch("portal.models.staff.generate_password_hash", cheap):
            user = create_staff(email or f"{role}-{os.urandom(3).hex()}@example.test", role, password, actor="test")
            db.session.commit()
            return {"id": user.id, "email": user.email, "password": password, "role": role}

    return make


def csrf_token_of(html: str) -> str:
    """Return the CSRF token embedded in a page (hidden input or the body's hx-headers)."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def login(client) -> Callable:
    """Return a function that logs ``client`` in as a staff account and returns its CSRF token."""

    def do_login(user: dict, client=client) -> str:
        token = csrf_token_of(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login", data={"email": user["email"], "password": user["password"], "csrf_token": token}
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        return csrf_token_of(client.get("/").get_data(as_text=True))

    return do_login


@pytest.fixture
def demo_data(app) -> dict:
    """Seed a small deterministic demo set; return its counts."""
    from portal.demo.seed import seed_demo_data

    with app.app_context():
        return seed_demo_data(orgs=8, seed=7)


@pytest.fixture
def count_queries(app):
    """Return a context manager counting the SQL statements run inside it."""
    from contextlib import contextmanager

    from portal.extensions import db

    @contextmanager
    def counter():
        statements: list[str] = []

        def before(conn, cursor, statement, *args):
            statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", before)

    return counter
