"""The deferral contract shared by the operator and the sensor: the trigger's event, and the framework's
timeout that must never fire before the trigger's own deadline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow_provider_airplane.exceptions import AirplaneError

# Added to the framework's deferral timeout past the trigger's own deadline: the trigger compares
# end_time (worker clock) with the triggerer's clock and the scheduler times out by its own, so a minute
# of skew between them must not let the framework fire first (it would skip the cancel).
CLOCK_SKEW_MARGIN = 120.0

EVENT_STATUSES = frozenset({"success", "failed", "cancelled", "timeout", "error"})


def validate_event(event: dict[str, Any] | None) -> tuple[str, str, str]:
    """``(status, run_id, message)`` of a trigger event, or an error naming what is wrong with it."""
    if not isinstance(event, dict):
        raise AirplaneError(f"Expected a trigger event dict, got {event!r}")
    status = event.get("status")
    run_id = event.get("run_id")
    if status not in EVENT_STATUSES:
        raise AirplaneError(f"Trigger event has unknown status {status!r}: {event!r}")
    if not isinstance(run_id, str) or not run_id:
        raise AirplaneError(f"Trigger event has no run_id: {event!r}")
    return str(status), run_id, str(event.get("message") or "")


def backstop(end_time: float | None, now: float, poll_interval: float) -> timedelta | None:
    """The framework's deferral timeout: none without a deadline, else well after the trigger's own.

    A framework timeout skips ``execute_complete`` (no cancel), so it must never fire first, not even
    with the clocks of worker, triggerer and scheduler a minute apart.
    """
    if end_time is None:
        return None
    return timedelta(seconds=max(0.0, end_time - now) + 2 * poll_interval + CLOCK_SKEW_MARGIN)
