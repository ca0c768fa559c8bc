"""The back-fill form: a date range by document date and the kinds to push."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, SelectMultipleField, widgets
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # new in WTForms 3.3, not in its stubs
from wtforms.validators import DataRequired, ValidationError

from ..models.history import BACKFILL_KINDS

KIND_CHOICES = [SelectChoice(k, {"credit_note": "Credit notes"}.get(k, k.capitalize() + "s")) for k in BACKFILL_KINDS]


def _some_kind(form, field) -> None:
    if not field.data:
        raise ValidationError("Choose at least one kind.")


class BackfillForm(FlaskForm):
    """What to back-fill."""

    date_from = DateField("From (invoice date)", validators=[DataRequired("Give the first date of the range.")])
    date_to = DateField("To (invoice date)", validators=[DataRequired("Give the last date of the range.")])
    kinds = SelectMultipleField(
        "Kinds",
        choices=KIND_CHOICES,
        default=list(BACKFILL_KINDS),
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
        # Not DataRequired: that marks every checkbox required, and browsers then demand all of them.
        validators=[_some_kind],
    )
