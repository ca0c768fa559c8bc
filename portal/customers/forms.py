"""Forms of the customer linking page."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import StringField
from wtforms.validators import DataRequired, InputRequired, Optional

from ..formfields import ChoiceRadioField, WholeNumberField
from .services import CUSTOMER_MODES

#: The range of a suggestion's score.
SCORE_RANGE = (0, 100)


class SuggestForm(FlaskForm):
    """Fetch the ledger customers and suggest links (a job)."""


class ConfirmForm(FlaskForm):
    """Confirm suggestions: all clear ones at or above a score, or the selected ones."""

    min_score = WholeNumberField(
        "Confirm every clear suggestion scoring at least",
        validators=[Optional()],
        low=SCORE_RANGE[0],
        high=SCORE_RANGE[1],
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

    customer_mode = ChoiceRadioField(
        "When an invoice's customer is not linked",
        choices=list(CUSTOMER_MODES.items()),
        validators=[InputRequired(message="Choose what happens when an invoice's customer is not linked.")],
        noun="a customer mode",
    )


class CreateAnywayForm(FlaskForm):
    """Create a held customer although the ledger has customers that might be it (CSRF only)."""
