"""``flask`` commands: staff accounts, demo data, the provider sandbox."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from .extensions import db

users_cli = AppGroup("users", help="Manage staff accounts.")
seed_cli = AppGroup("seed", help="Create demo data.")


@users_cli.command("create")
@click.option("--email", required=True, help="Login e-mail address.")
@click.option("--role", required=True, type=click.Choice(["support", "ops", "admin"]))
@click.option("--name", default="", help="Display name.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="At least 12 characters and hard to guess.",
)
def create_user(email: str, role: str, name: str, password: str) -> None:
    """Create a staff account."""
    from .auth.services import StaffError, create_staff

    try:
        user = create_staff(email, role, password, name=name, actor="cli")
    except StaffError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Created {user.email} with role {user.role.value}.")


@users_cli.command("list")
def list_users() -> None:
    """List staff accounts: e-mail, role, active or not, last login."""
    from .models import StaffUser

    for user in db.session.scalars(db.select(StaffUser).order_by(StaffUser.email)):
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        click.echo(f"{user.email}\t{user.role.value}\t{'active' if user.active else 'deactivated'}\t{last}")


def _staff_change(email: str, change) -> None:
    from .auth.services import StaffError, find_staff

    try:
        user = find_staff(email)
        message = change(user)
    except StaffError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(message)


@users_cli.command("deactivate")
@click.option("--email", required=True)
def deactivate_user(email: str) -> None:
    """Deactivate a staff account and end its sessions (its history stays)."""
    from .auth.services import set_active

    _staff_change(email, lambda u: f"{u.email} deactivated." if set_active(u, False, actor="cli") else "No change.")


@users_cli.command("reactivate")
@click.option("--email", required=True)
def reactivate_user(email: str) -> None:
    """Let a deactivated staff account log in again."""
    from .auth.services import set_active

    _staff_change(email, lambda u: f"{u.email} reactivated." if set_active(u, True, actor="cli") else "No change.")


@users_cli.command("set-role")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["support", "ops", "admin"]))
def set_user_role(email: str, role: str) -> None:
    """Change a staff member's role (their sessions end)."""
    from .auth.services import change_role

    _staff_change(email, lambda u: f"{u.email} is {role}." if change_role(u, role, actor="cli") else "No change.")


@users_cli.command("reset-password")
@click.option("--email", required=True)
@click.option("--password", default=None, help="The new password; a random one is printed when not given.")
def reset_user_password(email: str, password: str | None) -> None:
    """Give a staff member a new password and end their sessions."""
    from .auth.services import reset_password

    _staff_change(email, lambda u: f"New password for {u.email}: {reset_password(u, password, actor='cli')}")


@users_cli.command("end-sessions")
@click.option("--email", required=True)
def end_user_sessions(email: str) -> None:
    """Log a staff member out on every browser."""
    from .auth.services import end_sessions

    def change(user) -> str:
        end_sessions(user, actor="cli")
        return f"Every session of {user.email} ended."

    _staff_change(email, change)


@seed_cli.command("demo")
@click.option("--orgs", default=24, show_default=True, type=click.IntRange(1, 100_000), help="Organizations.")
@click.option("--seed", "seed_value", default=1, show_default=True, type=int, help="Random seed.")
@click.option("--if-empty", is_flag=True, help="Do nothing when organizations already exist.")
def seed_demo(orgs: int, seed_value: int, if_empty: bool) -> None:
    """Create deterministic, realistic demo organizations with their billing records."""
    import time

    from .demo.seed import DemoSeedError, seed_demo_data

    started = time.perf_counter()
    try:
        summary = seed_demo_data(orgs=orgs, seed=seed_value, if_empty=if_empty)
    except DemoSeedError as exc:
        raise click.ClickException(str(exc)) from exc
    if summary is None:
        click.echo("Organizations already exist; demo data left as it is.")
        return
    elapsed = time.perf_counter() - started
    click.echo(", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in summary.items()) + f" in {elapsed:.1f} s.")


@seed_cli.command("connections")
@click.option("--if-empty", is_flag=True, help="Do nothing when connections already exist.")
def seed_connections(if_empty: bool) -> None:
    """Connect one demo unit per ledger (Exact NL, QuickBooks US, bexio) to the sandbox, push and back-fill.

    The sandbox runs on a free local port meanwhile and keeps its state in instance/, where the
    demo server (make run) finds it: the connections made here work there.
    """
    import time

    from .demo.connections import DemoConnectionError, seed_demo_connections

    started = time.perf_counter()
    try:
        summary = seed_demo_connections(click.echo, if_empty=if_empty)
    except DemoConnectionError as exc:
        raise click.ClickException(str(exc)) from exc
    if summary is None:
        click.echo("Connections already exist; left as they are.")
        return
    elapsed = time.perf_counter() - started
    click.echo(", ".join(f"{n:,} {k}" for k, n in summary.items()) + f" in {elapsed:.1f} s.")


@seed_cli.command("staff")
def seed_staff() -> None:
    """Create demo staff accounts (one per role) once, and print the login."""
    import secrets
    from pathlib import Path

    from flask import current_app

    from .auth.services import create_staff
    from .models import Role, StaffUser

    login_file = Path(current_app.instance_path) / "demo-login.txt"
    if db.session.scalar(db.select(StaffUser.id).limit(1)) is None:
        password = secrets.token_urlsafe(12)
        for role in Role:
            create_staff(
                f"{role.value}@ledgerlink.local",
                role.value,
                password,
                name=f"Demo {role.value}",
                actor="seed",
            )
        db.session.commit()
        login_file.write_text(
            "".join(f"{role.value}@ledgerlink.local  {password}\n" for role in Role), encoding="utf-8"
        )
        login_file.chmod(0o600)
    if login_file.exists():
        click.echo("Demo logins (role in the address):\n" + login_file.read_text(encoding="utf-8"))
    else:
        click.echo("Staff accounts exist already; log in with yours (flask --app app users create …).")


@seed_cli.command("records")
@click.option("--connections", default=20_000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--records", default=1_000_000, show_default=True, type=click.IntRange(0, 50_000_000))
@click.option("--days", default=45, show_default=True, type=click.IntRange(1, 3650), help="Days records span.")
@click.option("--seed", "seed_value", default=1, show_default=True, type=int, help="Random seed.")
@click.option("--if-empty", is_flag=True, help="Do nothing when connections or records already exist.")
def seed_records_command(connections: int, records: int, days: int, seed_value: int, if_empty: bool) -> None:
    """Create ledger connections for the demo business units and external records in bulk."""
    import time

    from .demo.bulk import BulkSeedError, seed_records

    started = time.perf_counter()
    try:
        summary = seed_records(connections, records, seed_value, days, if_empty=if_empty, progress=click.echo)
    except BulkSeedError as exc:
        raise click.ClickException(str(exc)) from exc
    if summary is None:
        click.echo("Connections or records already exist; left as they are.")
        return
    elapsed = time.perf_counter() - started
    click.echo(", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in summary.items()) + f" in {elapsed:.1f} s.")


health_cli = AppGroup("health", help="Check ledger connections.")
tokens_cli = AppGroup("tokens", help="Manage stored OAuth tokens.")


@health_cli.command("probe")
@click.option("--warn-days", default=14, show_default=True, type=click.IntRange(1, 365))
@click.option("--strict", is_flag=True, help="Exit with status 1 when any connection needs attention.")
def health_probe(warn_days: int, strict: bool) -> None:
    """Call every live connection's ledger once and flag tokens close to expiry."""
    from datetime import timedelta

    from .connections.health import probe_all

    results = probe_all(warn_within=timedelta(days=warn_days))
    for r in results:
        mark = "ok  " if r.ok and not r.expiring else "WARN" if r.ok else "FAIL"
        click.echo(f"{mark} #{r.connection_id:<6} {r.status.value:<22} {r.label} — {r.detail}")
    attention = sum(1 for r in results if not r.ok or r.expiring)
    click.echo(f"{len(results)} connection(s) probed, {attention} need attention.")
    if strict and attention:
        raise SystemExit(1)


@tokens_cli.command("rotate")
def rotate_tokens() -> None:
    """Re-encrypt every stored token with the newest key of LEDGERLINK_TOKEN_KEYS."""
    from .connections.health import rotate_token_keys

    count = rotate_token_keys()
    db.session.commit()
    click.echo(f"Re-encrypted {count} stored token set(s) (connections and waiting consents) with the newest key.")


schedule_cli = AppGroup("schedule", help="Periodic work, run by cron.")


@schedule_cli.command("tick")
def schedule_tick() -> None:
    """Enqueue pushes and payments pulls that are due, and purge old operation log entries (cron: every minute)."""
    from .extensions import queue
    from .sync.schedule import run_tick

    if queue.embedded and not queue.serves_jobs:
        click.echo(
            "The demo (make run) runs this tick itself every minute, in its own process: nothing was enqueued here. "
            "With Redis (REDIS_URL) and rq workers, run it from cron."
        )
        return
    click.echo(run_tick().describe())


documents_cli = AppGroup("documents", help="The SaaS's invoices and credit notes.")


@documents_cli.command("duplicates")
@click.option("--organization", "org_ref", default=None, help="Only this organization (the SaaS's id).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any number is shared.")
def documents_duplicates(org_ref: str | None, as_json: bool, strict: bool) -> None:
    """List document numbers shared by several invoices (or credit notes) of one business unit.

    A ledger keeps one document per number: the push holds all but one of each (the one in the
    ledger, else the oldest) as needs-action until they get numbers of their own or are dismissed.
    """
    import json
    from dataclasses import asdict

    from sqlalchemy import select

    from .models import Organization
    from .sync.numbers import duplicate_numbers

    org_id = None
    if org_ref is not None:
        org_id = db.session.scalar(select(Organization.id).where(Organization.external_id == org_ref))
        if org_id is None:
            raise click.ClickException(f"There is no organization {org_ref!r}.")
    found = duplicate_numbers(org_id)
    if as_json:
        click.echo(json.dumps([asdict(g) for g in found], indent=2))
    else:
        for group in found:
            click.echo(
                f"{group.organization} / unit {group.business_unit_id} {group.business_unit}: {group.kind} number "
                f"{group.number} is used {len(group.documents)} times:"
            )
            for external_id, issued, states in group.documents:
                pushed = ", ".join(f"connection {c}: {s.replace('_', ' ')}" for c, s in sorted(states.items()))
                click.echo(f"  {external_id} of {issued}" + (f" ({pushed})" if pushed else " (not pushed)"))
        click.echo(f"{len(found)} shared number(s).")
    if strict and found:
        raise SystemExit(1)


links_cli = AppGroup("links", help="Authorization links for approvers without an account.")


@links_cli.command("create")
@click.option("--org", "org_ref", required=True, help="The organization's SaaS id.")
@click.option("--unit", "unit_id", type=int, help="Business unit id (default: the organization's first).")
@click.option("--provider", required=True, type=click.Choice(["exact-online", "quickbooks", "bexio"]))
@click.option("--region", help="Exact Online instance: nl, be, de, uk, us, es or fr.")
@click.option("--company", "expected_company_id", help="Division / company the approver must grant.")
@click.option("--days", type=int, help="Validity in days (default 7, at most 30).")
@click.option("--note", default="", help="Why access is needed, shown to the approver.")
@click.option("--requested-for", default="", help="Who asked for the integration.")
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True, help="The portal's public address.")
def create_link_command(org_ref, unit_id, provider, region, expected_company_id, days, note, requested_for, base_url):
    """Create an authorization link and print its URL (shown only now)."""
    from flask import current_app

    from .links import services as links
    from .models import BusinessUnit, Organization

    org = db.session.scalar(db.select(Organization).filter_by(external_id=org_ref))
    if org is None:
        raise click.ClickException(f"There is no organization with SaaS id {org_ref!r}.")
    units = {u.id: u for u in org.business_units}
    unit = units.get(unit_id) if unit_id else next(iter(units.values()), None)
    if not isinstance(unit, BusinessUnit):
        raise click.ClickException(f"{org.name} has no business unit {unit_id}; it has {sorted(units)}.")
    with current_app.test_request_context(base_url=base_url):
        try:
            link, token = links.create_link(
                unit,
                provider=provider,
                region=region,
                expected_company_id=expected_company_id,
                expires_in_days=days,
                note=note,
                requested_for=requested_for,
                created_via="cli",
                actor="cli",
            )
        except links.LinkError as exc:
            raise click.ClickException(exc.message) from exc
        url = links.public_url(token)
    db.session.commit()
    click.echo(f"Link #{link.id} for {org.name} / {unit.name}, valid until {link.expires_at:%Y-%m-%d %H:%M} UTC:")
    click.echo(url)


def init_app(app: Flask) -> None:
    """Register the command groups."""
    from sandbox.cli import sandbox_cli

    from .history.cli import history_cli

    groups = (
        users_cli,
        seed_cli,
        health_cli,
        tokens_cli,
        schedule_cli,
        documents_cli,
        links_cli,
        sandbox_cli,
        history_cli,
    )
    for group in groups:
        app.cli.add_command(group)
