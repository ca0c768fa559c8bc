"""Compare a sandbox response with a recorded real one by shape, not by value."""

from __future__ import annotations

from typing import Any


def type_name(value: Any) -> str:
    """Return the JSON type of ``value`` (int and float both count as number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r}")


def shape_differences(
    expected: Any, actual: Any, path: str = "$", *, nullable_ok: bool = True, extra_keys_ok: bool = False
) -> list[str]:
    """List where ``actual`` differs in shape from ``expected``.

    Objects must have the same keys (``extra_keys_ok`` allows more in ``actual``); values must
    have the same JSON type, where null on either side matches anything when ``nullable_ok``
    (a recorded null says nothing of the type). Arrays compare each actual element with the
    first expected element; an empty recorded array matches any array.
    """
    et, at = type_name(expected), type_name(actual)
    if et != at:
        if nullable_ok and "null" in (et, at):
            return []
        return [f"{path}: expected {et}, got {at}"]
    problems: list[str] = []
    if et == "object":
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        if missing:
            problems.append(f"{path}: missing keys {missing}")
        if extra and not extra_keys_ok:
            problems.append(f"{path}: unexpected keys {extra}")
        for key in sorted(set(expected) & set(actual)):
            problems += shape_differences(
                expected[key],
                actual[key],
                f"{path}.{key}",
                nullable_ok=nullable_ok,
                extra_keys_ok=extra_keys_ok,
            )
    elif et == "array" and expected:
        for i, item in enumerate(actual):
            problems += shape_differences(
                expected[0], item, f"{path}[{i}]", nullable_ok=nullable_ok, extra_keys_ok=extra_keys_ok
            )
    return problems


def assert_same_shape(expected: Any, actual: Any, **options: bool) -> None:
    """Fail with every difference listed when ``actual`` is not shaped like ``expected``."""
    problems = shape_differences(expected, actual, **options)
    assert not problems, "response shape differs from the recording:\n" + "\n".join(problems)
