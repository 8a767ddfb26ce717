"""Which failures an outage rides through, and which end the wait at once."""

from __future__ import annotations

import pytest

from airflow_provider_airplane._outage import is_transient
from airflow_provider_airplane.exceptions import AirplaneApiError


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (None, True),  # no answer: reset, read timeout, refused
        (429, True),
        (200, True),  # a 2xx that is not the API's JSON
        (500, True),
        (502, True),
        (503, True),
        (599, True),
        (501, False),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
    ],
)
def test_api_errors_are_transient_by_status(status: int | None, transient: bool) -> None:
    assert is_transient(AirplaneApiError(status, None, "boom")) is transient


def test_network_errors_are_transient_and_programming_errors_are_not() -> None:
    assert is_transient(TimeoutError())
    assert is_transient(ConnectionResetError())
    assert not is_transient(ValueError("bad run id"))
