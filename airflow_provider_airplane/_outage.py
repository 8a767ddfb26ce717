"""API outages: how long a wait rides one out, and one log line when it starts and one when it ends.

A wait on a run (a worker's polls, the triggerer's watcher, a sensor) must not fail, nor cancel the run,
because the API is briefly unreachable or a proxy answers for it. Each wait keeps one :class:`Outage`:
every failed request of the wait is counted in it, and the wait only gives up once the API has been
unreachable for ``max_outage`` seconds in a row, with an error naming the outage and its last failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow_provider_airplane import _metrics
from airflow_provider_airplane.exceptions import AirplaneApiError, AirplaneOutageError

# Long enough for an API deploy, a load balancer swap or a proxy restart; short enough that a task whose
# API is really gone fails within the hour (and a retry re-attaches to its run). None: no bound.
DEFAULT_MAX_OUTAGE = 1800.0


def check_max_outage(value: Any, what: str = "max_outage") -> float | None:
    """Seconds (a number > 0 or a ``timedelta``), or None to wait through any outage."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"{what} must be a number of seconds > 0, a timedelta, or None, not {value!r}")
    return float(seconds)


def is_transient(error: BaseException) -> bool:
    """An error that a later request may not get: no answer, 429, a 5xx but 501, or a 2xx whose body is
    not the API's JSON (a proxy's page, a body cut short). A 4xx will not get better by waiting."""
    if isinstance(error, AirplaneApiError):
        status = error.status_code
        if status is None:
            return True
        return status == 429 or 200 <= status < 300 or (500 <= status <= 599 and status != 501)
    return isinstance(error, TimeoutError | OSError)


def describe_seconds(seconds: float) -> str:
    """``45s``, ``2m05s``, ``1h02m``: outage lengths in log lines and errors."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Outage:
    """Failed requests in a row during one wait, from the first failure to the next useful answer.

    ``subject`` names what is waited for in the log lines (``Airplane run run123``); ``promise`` says in the
    first line what the outage will not cost (a task's wait fails neither the task nor the run, a watcher
    keeps its cursor). ``announce=False`` logs start and end at debug, for a caller that reports the
    outage itself. ``clock`` is monotonic; a test may replace it.
    """

    def __init__(
        self,
        log: Any,
        subject: str,
        max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
        *,
        announce: bool = True,
        promise: str = "without failing the task or cancelling the run",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.announce = announce
        self.subject = subject
        self.promise = promise
        self.max_outage = check_max_outage(max_outage)
        self.clock = clock
        self.started: float | None = None
        self.failures = 0
        self.last_error = ""

    @property
    def ongoing(self) -> bool:
        return self.started is not None

    @property
    def seconds(self) -> float:
        """How long the API has been unreachable (0 when it answers)."""
        return 0.0 if self.started is None else self.clock() - self.started

    @property
    def remaining(self) -> float | None:
        """Seconds left before ``max_outage`` ends the wait; None without a bound."""
        if self.max_outage is None:
            return None
        return max(0.0, self.max_outage - self.seconds)

    @property
    def over(self) -> bool:
        return self.max_outage is not None and self.ongoing and self.seconds >= self.max_outage

    def failed(self, error: str) -> None:
        """Count one failed request (``error`` already scrubbed of the key); log the outage's start once."""
        self.failures += 1
        self.last_error = error
        if self.started is None:
            self.started = self.clock()
            _metrics.outage_started()
            bound = "any time" if self.max_outage is None else f"up to {describe_seconds(self.max_outage)}"
            (self.log.warning if self.announce else self.log.debug)(
                "The Airplane API stopped answering while waiting for %s (%s); retrying for %s "
                "(max_outage) %s",
                self.subject,
                error,
                bound,
                self.promise,
            )

    def recovered(self) -> None:
        """The API answered: log the outage's end with its length and cost, once."""
        if self.started is None:
            return
        (self.log.info if self.announce else self.log.debug)(
            "The Airplane API answers again after an outage of %s (%d failed requests) while waiting for %s",
            describe_seconds(self.seconds),
            self.failures,
            self.subject,
        )
        self.started = None
        self.failures = 0
        self.last_error = ""

    def error(self, *, status_code: int | None = None, endpoint: str | None = None) -> AirplaneOutageError:
        """The error that ends the wait once ``over``: the run's state is unknown, so it is left alone."""
        assert self.max_outage is not None
        return AirplaneOutageError(
            status_code,
            None,
            f"The Airplane API has not answered for {describe_seconds(self.seconds)} "
            f"({self.failures} failed requests), longer than max_outage={describe_seconds(self.max_outage)}, "
            f"while waiting for {self.subject}; last error: {self.last_error}. The run was left as it is "
            "(its state is unknown); a retry of the task re-attaches to it",
            endpoint=endpoint,
            seconds=self.seconds,
            failures=self.failures,
        )
