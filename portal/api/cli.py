"""``flask api-clients``: create and revoke API clients."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from ..database import utcnow
from ..extensions import db

api_clients_cli = AppGroup("api-clients", help="Manage API clients and their keys.")


@api_clients_cli.command("create")
@click.option("--name", required=True, help="Client name, shown in audit trails as api:<name>.")
@click.option("--scopes", required=True, help="Comma-separated scopes, e.g. links.")
def create(name: str, scopes: str) -> None:
    """Create an API client and print its key once."""
    from .auth import ApiClientError, create_client

    try:
        client, key = create_client(name, [s.strip() for s in scopes.split(",") if s.strip()])
    except ApiClientError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Created API client {client.name} with scopes {', '.join(client.scopes)}.")
    click.echo("Its key (shown only now; store it in the SaaS's secrets):")
    click.echo(key)


@api_clients_cli.command("revoke")
@click.option("--name", required=True)
def revoke(name: str) -> None:
    """Revoke an API client's key at once."""
    from .. import audit
    from ..models import ApiClient

    client = db.session.scalar(db.select(ApiClient).filter_by(name=name))
    if client is None:
        raise click.ClickException(f"there is no API client named {name!r}")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        audit.record(
            "api_client.revoked",
            subject_type="ApiClient",
            subject_id=client.id,
            summary=f"API client {name} revoked",
            actor_label="cli",
        )
        db.session.commit()
    click.echo(f"API client {name} is revoked.")
