"""Forms of the connection flow."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, IntegerField, RadioField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from ..formfields import ChoiceRadioField, ChoiceSelectField
from ..integrations import specs
from ..sync import payments
from ..sync.push import BEXIO_LINK_PLACEHOLDER
from . import providers

PROVIDER_CHOICES = [(key, specs.get_spec(key).name) for key in providers.PROVIDERS]
EXACT_REGIONS = [
    (key, f"{region.name} ({key.upper()})") for key, region in specs.get_spec(specs.EXACT_ONLINE).regions.items()
]


class ConnectForm(FlaskForm):
    """Which ledger (and Exact instance) to connect."""

    provider = ChoiceSelectField(
        "Ledger",
        choices=PROVIDER_CHOICES,
        validators=[InputRequired(message="Choose the ledger to connect.")],
        noun="a ledger Ledgerlink connects to",
    )
    region = ChoiceSelectField(
        "Exact Online instance",
        choices=[("", "— choose where the customer's data lives —"), *EXACT_REGIONS],
        validators=[Optional()],
        description="Exact keeps each customer's data in one country's instance; pick that one.",
        noun="an Exact Online instance",
    )
    confirm_replace = BooleanField("Replace the current connection of this business unit")


class PickCompanyForm(FlaskForm):
    """The company / division to pin."""

    company = RadioField("Company", validators=[InputRequired(message="Pick the company to connect.")], choices=[])
    confirm_replace = BooleanField("Replace the current connection of this business unit")
    confirm_shared = BooleanField("Connect it although another organization uses this company")


class SettingsForm(FlaskForm):
    """Sending method, auto-send, e-mail text, connection date, sync delay and payments."""

    #: Provider of the connection the form edits (the e-mail text rules depend on it).
    provider: str | None = None

    sending_method = ChoiceRadioField(
        "Sending method",
        choices=[
            ("saas", "Via the SaaS: the SaaS e-mails invoices; the ledger only books them"),
            ("ledger", "Via the ledger: the ledger e-mails the invoice to the customer"),
        ],
        validators=[InputRequired(message="Choose how invoices are sent: via the SaaS or via the ledger.")],
        noun="a sending method",
    )
    auto_send = BooleanField("Send automatically when pushed (ledger sending only)")
    sync_from = DateTimeLocalField(
        "Connection date (UTC)",
        format="%Y-%m-%dT%H:%M",
        validators=[DataRequired(message="Give the date from which records sync, as YYYY-MM-DD HH:MM.")],
        description="Records dated on or after this moment sync automatically; older ones need a historical push.",
    )
    email_message = TextAreaField(
        "E-mail text (ledger sending)",
        validators=[Optional(), Length(max=2000, message="Keep the e-mail text under 2000 characters.")],
        description="The text of the e-mail the ledger sends with the invoice (empty: the ledger's default "
        f"text). bexio needs the placeholder {BEXIO_LINK_PLACEHOLDER} where the link to the invoice goes.",
    )
    sync_delay_minutes = IntegerField(
        "Sync delay (minutes)",
        validators=[
            Optional(),
            NumberRange(min=0, max=60, message="Give a sync delay from 0 to 60 minutes."),
        ],
        description="How long a new record waits before it is pushed (0 to 60 minutes), so that quick "
        "corrections in the SaaS reach the ledger in one go.",
    )
    payments_mode = RadioField(
        "Payments",
        choices=[
            (payments.PULL, "Pull: payments are booked in the ledger; Ledgerlink marks SaaS invoices paid"),
            (payments.PUSH, "Push: payments recorded in the SaaS are booked in the ledger"),
            (payments.OFF, "Off: payments are not synced"),
        ],
        validate_choice=False,
        validators=[
            Optional(),
            AnyOf(payments.MODES, message="Choose how payments sync: pull, push or off."),
        ],
    )
    payments_pull_minutes = IntegerField(
        "Pull payments every (minutes)",
        validators=[
            Optional(),
            NumberRange(
                min=payments.MIN_PULL_MINUTES,
                max=payments.MAX_PULL_MINUTES,
                message=f"Give a pull interval from {payments.MIN_PULL_MINUTES} to "
                f"{payments.MAX_PULL_MINUTES} minutes.",
            ),
        ],
    )

    @classmethod
    def for_connection(cls, connection, **kwargs) -> SettingsForm:
        """Return the form for ``connection``, filled from its settings unless the request posts data."""
        form = cls(
            data={
                "sending_method": connection.setting("sending_method"),
                "auto_send": connection.setting("auto_send"),
                "sync_from": connection.sync_from.replace(tzinfo=None),
                "email_message": connection.setting("email_message") or "",
                "sync_delay_minutes": connection.setting("sync_delay_minutes"),
                "payments_mode": payments.mode(connection),
                "payments_pull_minutes": int(payments.pull_interval(connection).total_seconds() // 60),
            },
            **kwargs,
        )
        form.provider = connection.provider
        return form

    def validate_email_message(self, field) -> None:
        """bexio puts the invoice link where the text says [Network Link]; without it the mail has none."""
        if self.provider != specs.BEXIO:
            return
        text = (field.data or "").strip()
        if text and BEXIO_LINK_PLACEHOLDER not in text:
            raise ValidationError(
                f"bexio needs the placeholder {BEXIO_LINK_PLACEHOLDER} in the e-mail text (where the link to the "
                f"invoice goes): add {BEXIO_LINK_PLACEHOLDER} to the text."
            )

    def settings(self) -> dict:
        """Return the posted settings besides sending method, auto-send and connection date."""
        data: dict[str, Any] = {}
        if self.email_message.raw_data:  # posted (an empty text clears it)
            data["email_message"] = (self.email_message.data or "").strip() or None
        if self.sync_delay_minutes.data is not None:
            data["sync_delay_minutes"] = self.sync_delay_minutes.data
        if self.payments_mode.data:
            data["payments_mode"] = self.payments_mode.data
        if self.payments_pull_minutes.data is not None:
            data["payments_pull_minutes"] = self.payments_pull_minutes.data
        return data


class ConfirmForm(FlaskForm):
    """A destructive action's explicit confirmation."""

    confirm = BooleanField("I understand", validators=[DataRequired(message="Tick the box to confirm.")])


class GoLiveForm(FlaskForm):
    """Take a connection live from a connection date (fields prefixed: the settings form has a connection date too)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, prefix="golive", **kwargs)

    sync_from = DateTimeLocalField(
        "Live from (UTC): the connection date",
        format="%Y-%m-%dT%H:%M",
        validators=[DataRequired(message="Give the date from which records sync, as YYYY-MM-DD HH:MM.")],
        description="Records dated on or after this moment are pushed automatically once the connection is live; "
        "older ones go by the historical push.",
    )
    confirm_open_steps = BooleanField("Go live although steps of the checklist are not done")
