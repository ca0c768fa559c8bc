"""Forms of the mappings screens whose fields do not depend on the ledger.

The code pick-lists vary per provider (see ``catalog``) and are read from the request by the
views; every one is validated against the ledger's reference data by the services.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField


class ImportForm(FlaskForm):
    """A CSV of product mappings to import."""

    file = FileField("CSV file", validators=[FileRequired(message="Choose the CSV file to import.")])


class DivisionForm(FlaskForm):
    """The division to pin, and the confirmation a change needs once records were pushed or customers linked."""

    number = SelectField("Division", choices=[], validate_choice=False)
    confirm = BooleanField("I understand what happens to the records already pushed and the customers linked")
