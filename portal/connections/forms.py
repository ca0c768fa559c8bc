"""Forms of the connection flow."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, RadioField, SelectField
from wtforms.validators import DataRequired, InputRequired, Optional

from ..integrations import specs
from . import providers

PROVIDER_CHOICES = [(key, specs.get_spec(key).name) for key in providers.PROVIDERS]
EXACT_REGIONS = [
    (key, f"{region.name} ({key.upper()})") for key, region in specs.get_spec(specs.EXACT_ONLINE).regions.items()
]


class ConnectForm(FlaskForm):
    """Which ledger (and Exact instance) to connect."""

    provider = SelectField("Ledger", choices=PROVIDER_CHOICES, validators=[InputRequired()])
    region = SelectField(
        "Exact Online instance",
        choices=[("", "— choose where the customer's data lives —"), *EXACT_REGIONS],
        validators=[Optional()],
        description="Exact keeps each customer's data in one country's instance; pick that one.",
    )
    confirm_replace = BooleanField("Replace the current connection of this business unit")


class PickCompanyForm(FlaskForm):
    """The company / division to pin."""

    company = RadioField("Company", validators=[InputRequired(message="Pick the company to connect.")], choices=[])
    confirm_replace = BooleanField("Replace the current connection of this business unit")


class SettingsForm(FlaskForm):
    """Sending method, auto-send and connection date."""

    sending_method = RadioField(
        "Sending method",
        choices=[
            ("saas", "Via the SaaS: the SaaS e-mails invoices; the ledger only books them"),
            ("ledger", "Via the ledger: the ledger e-mails the invoice to the customer"),
        ],
        validators=[InputRequired()],
    )
    auto_send = BooleanField("Send automatically when pushed (ledger sending only)")
    sync_from = DateTimeLocalField(
        "Connection date (UTC)",
        format="%Y-%m-%dT%H:%M",
        validators=[DataRequired(message="Give the date from which records sync, as YYYY-MM-DD HH:MM.")],
        description="Records dated on or after this moment sync automatically; older ones need a historical push.",
    )


class ConfirmForm(FlaskForm):
    """A destructive action's explicit confirmation."""

    confirm = BooleanField("I understand", validators=[DataRequired(message="Tick the box to confirm.")])
