"""Forms of the customer linking page."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, RadioField, StringField
from wtforms.validators import DataRequired, InputRequired, NumberRange, Optional

from .services import CUSTOMER_MODES


class SuggestForm(FlaskForm):
    """Fetch the ledger customers and suggest links (a job)."""


class ConfirmForm(FlaskForm):
    """Confirm suggestions: all clear ones at or above a score, or the selected ones."""

    min_score = IntegerField(
        "Confirm every clear suggestion scoring at least",
        validators=[Optional(), NumberRange(min=0, max=100, message="A score is between 0 and 100.")],
        default=90,
    )


class LinkForm(FlaskForm):
    """Link one customer by hand."""

    customer = StringField("Customer (the SaaS's customer id)", validators=[DataRequired(message="Give the customer.")])
    external_id = StringField("Ledger customer id", validators=[DataRequired(message="Give the ledger customer.")])


class UnlinkForm(FlaskForm):
    """Remove a link (the button is the confirmation; the page asks first)."""


class ImportForm(FlaskForm):
    """A CSV of links."""

    file = FileField("CSV file (customer,ledger_id)", validators=[FileRequired(message="Choose a CSV file.")])


class ModeForm(FlaskForm):
    """The connection's customer mode."""

    customer_mode = RadioField(
        "When an invoice's customer is not linked", choices=list(CUSTOMER_MODES.items()), validators=[InputRequired()]
    )
