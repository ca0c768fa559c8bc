"""Login and staff management forms."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

ROLE_CHOICES = [("support", "Support"), ("ops", "Ops"), ("admin", "Admin")]
STAFF_ACTIONS = [
    ("deactivate", "Deactivate"),
    ("reactivate", "Reactivate"),
    ("role", "Change role"),
    ("reset_password", "Reset password"),
    ("end_sessions", "Log out everywhere"),
]


class LoginForm(FlaskForm):
    """E-mail and password of a staff member."""

    email = EmailField("E-mail address", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me logged in on this computer")


class NewStaffForm(FlaskForm):
    """A new staff account, added by an admin."""

    email = EmailField("E-mail address", validators=[DataRequired(), Length(max=254)])
    name = StringField("Name", validators=[Optional(), Length(max=120)])
    role = SelectField("Role", choices=ROLE_CHOICES, default="support")
    password = PasswordField(
        "Password (leave empty to generate one, shown once)", validators=[Optional(), Length(max=200)]
    )


class StaffActionForm(FlaskForm):
    """One change to a staff account (and the CSRF token of the person's own actions)."""

    action = SelectField("Action", choices=STAFF_ACTIONS, validators=[Optional()])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[Optional()])
