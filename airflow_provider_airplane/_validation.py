"""Argument checks shared by the hooks, the operators and the sensor: each rule lives here once.

The checks raise ``TypeError``/``ValueError``; a hook lets them propagate, and an operator runs them
through :func:`for_task`, which fails the task without retries (every retry renders the same value).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException

T = TypeVar("T")

_XCOM_HINT = "When it is templated from XCom, check that the upstream task pushed 'airplane_run_id'."


def text_or_none(value: Any) -> str | None:
    """Empty strings and None both mean "unset" (connection extras, API fields)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def check_positive(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
    return seconds


def check_reference(value: Any, what: str) -> str:
    """A run id, task slug, task id or idempotency key: a rendered, non-empty string without whitespace."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}: {value!r}")
    if "{{" in value or "{%" in value:
        raise ValueError(
            f"{what} was not rendered as a template: {value!r} looks like an unrendered Jinja template. "
            f"Pass the template as this operator's {what}= (a templated field); templates elsewhere are "
            "not rendered."
        )
    if not value:
        raise ValueError(f"{what} is empty; it must be a non-empty string without whitespace.")
    if any(char.isspace() for char in value):
        raise ValueError(
            f"{what} {value!r} contains whitespace; it must be a non-empty string without whitespace."
        )
    return value


def check_run_id(value: Any, what: str = "run_id") -> str:
    """A run id given to an operator or sensor, where it is usually templated from an upstream XCom.

    The hook accepts ``'None'`` (and explains the 404); a task refuses it before any request.
    """
    if value == "":
        raise ValueError(f"{what} is empty. {_XCOM_HINT}")
    if value in ("None", "null"):
        raise ValueError(f"{what} rendered as {value!r}: the XCom it pulls does not exist. {_XCOM_HINT}")
    return check_reference(value, what)


def json_value(value: Any, what: str) -> Any:
    """``value`` if it is strict JSON (NaN and Infinity are not: the API would reject the body).

    The error names the first key of a mapping whose value is not JSON.
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{_culprit(value, what)} is not JSON-serialisable ({err}): {what} must be JSON-serialisable, "
            "so pass only str, int, float, bool, None, lists and dicts (e.g. a datetime as .isoformat())"
        ) from None
    return value


def _culprit(value: Any, what: str) -> str:
    if isinstance(value, Mapping):
        for key, item in value.items():
            try:
                json.dumps(item, allow_nan=False)
            except (TypeError, ValueError):
                return f"{what}[{key!r}]"
    return what


def rfc3339(value: Any, what: str) -> str:
    """An aware datetime (pendulum or stdlib) or an RFC 3339 string, as UTC with a ``Z``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an RFC 3339 timestamp") from None
        value = parsed
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be an aware datetime or an RFC 3339 string, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} {value!r} has no time zone; pass an aware datetime (e.g. pendulum) or UTC")
    return datetime.fromtimestamp(value.timestamp(), UTC).isoformat().replace("+00:00", "Z")


def for_task(check: Callable[[Any, str], T], value: Any, what: str) -> T:
    """``check`` on a rendered operator argument, surrounding whitespace dropped; a bad value fails the
    task without retries."""
    try:
        return check(value.strip() if isinstance(value, str) else value, what)
    except (TypeError, ValueError) as err:
        raise AirflowFailException(str(err)) from None


def validate_run_id(value: Any) -> str:
    """A rendered ``run_id`` argument of an operator or the sensor, or an error that fails the task."""
    return for_task(check_run_id, value, "run_id")
