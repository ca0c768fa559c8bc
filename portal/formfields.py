"""Form fields whose errors say what to type instead: the allowed range or the allowed choices."""

from __future__ import annotations

from wtforms import IntegerField, RadioField, SelectField
from wtforms.validators import ValidationError

#: How much of a refused value an error message repeats.
SHOWN_CHARS = 40


def shown(value: object) -> str:
    """Return a submitted value as an error message quotes it (cut short)."""
    text = str(value)
    return repr(text[:SHOWN_CHARS] + ("…" if len(text) > SHOWN_CHARS else ""))


class WholeNumberField(IntegerField):
    """A whole number from ``low`` to ``high``; anything else is refused naming the range and the value."""

    def __init__(self, label=None, validators=None, *, low: int, high: int, unit: str = "", **kwargs) -> None:
        super().__init__(label, validators, **kwargs)
        self.low, self.high, self.unit = low, high, unit

    def wanted(self) -> str:
        """Return what the field accepts, in words."""
        return f"a whole number from {self.low} to {self.high}{' ' + self.unit if self.unit else ''}"

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError(f"Give {self.wanted()}, not {shown(valuelist[0])}.") from exc

    def pre_validate(self, form):
        if not self.process_errors and self.data is not None and not self.low <= self.data <= self.high:
            raise ValidationError(f"Give {self.wanted()}, not {self.data}.")


class _NamedChoices:
    """Refuse an unknown value naming the allowed ones (``noun`` says what they are, with its article)."""

    noun: str

    def pre_validate(self, form):
        allowed = [str(value) for value, *_rest in self.choices or []]
        if self.data not in (None, "") and str(self.data) not in allowed:
            offered = " or ".join(value for value in allowed if value)
            raise ValidationError(
                f"{shown(self.data)} is not {self.noun}: choose one of the options shown ({offered})."
            )


class ChoiceRadioField(_NamedChoices, RadioField):
    """Radio buttons whose refusal of an unknown value names the allowed values."""

    def __init__(self, label=None, validators=None, *, noun: str, **kwargs) -> None:
        super().__init__(label, validators, **kwargs)
        self.noun = noun


class ChoiceSelectField(_NamedChoices, SelectField):
    """A drop-down whose refusal of an unknown value names the allowed values."""

    def __init__(self, label=None, validators=None, *, noun: str, **kwargs) -> None:
        super().__init__(label, validators, **kwargs)
        self.noun = noun
