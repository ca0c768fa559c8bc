"""Forms of authorization links (support side)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, StringField, TextAreaField
from wtforms.validators import Email, InputRequired, Length, NumberRange, Optional

from ..connections.forms import EXACT_REGIONS, PROVIDER_CHOICES
from ..formfields import ChoiceSelectField


class CreateLinkForm(FlaskForm):
    """Which ledger the approver should grant, for how long, and why."""

    provider = ChoiceSelectField(
        "Ledger",
        choices=PROVIDER_CHOICES,
        validators=[InputRequired(message="Choose the ledger the approver grants access to.")],
        noun="a ledger Ledgerlink connects to",
    )
    region = ChoiceSelectField(
        "Exact Online instance",
        choices=[("", "— choose where the customer's data lives —"), *EXACT_REGIONS],
        validators=[Optional()],
        noun="an Exact Online instance",
    )
    expected_company_id = StringField(
        "Expected division or company (optional)",
        validators=[Optional(), Length(max=64)],
        description="Exact division code, QuickBooks realm id or bexio company id. The approver must grant "
        "exactly this one; any other is refused. Left empty on a link that replaces a connection to the same "
        "ledger, it is that connection's pinned company.",
    )
    expires_in_days = IntegerField(
        "Valid for (days)", default=7, validators=[InputRequired(message="Give the validity in days.")]
    )
    note = TextAreaField(
        "Note to the approver (why access is needed)",
        validators=[Optional(), Length(max=1000)],
        description="Shown on the approval page as you write it.",
    )
    requested_for = StringField(
        "Requested for (optional)",
        validators=[Optional(), Length(max=254)],
        description="The SaaS user who asked for the integration.",
    )
    email_to = EmailField(
        "E-mail the link to (optional)",
        validators=[Optional(), Email(message="Give an e-mail address, or leave it empty to copy the link.")],
    )
    replace_existing = BooleanField("The approval may replace this business unit's current connection")

    def set_max_days(self, maximum: int) -> None:
        """Bound the validity by LINK_MAX_DAYS."""
        self.expires_in_days.validators = [
            InputRequired(message="Give the validity in days."),
            NumberRange(1, maximum, message=f"Between 1 and {maximum} days."),
        ]


class ResendForm(FlaskForm):
    """Issue a new token for a link (the old one is revoked), optionally e-mailing it."""

    email_to = EmailField("E-mail the new link to (optional)", validators=[Optional(), Email()])
