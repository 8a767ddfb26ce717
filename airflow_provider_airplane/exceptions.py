"""Typed errors, so DAG authors (and Airflow 3.3 ``retry_policy``) can tell failures apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow_provider_airplane.models import AirplaneRun


class AirplaneError(AirflowException):
    """Base of everything the provider raises."""


class AirplaneApiError(AirplaneError):
    """The API answered with an error, or did not answer at all (``status_code`` is None)."""

    def __init__(
        self, status_code: int | None, code: str | None, message: str, *, endpoint: str | None = None
    ) -> None:
        self.status_code = status_code  # type: ignore[assignment]  # AirflowException types it as HTTPStatus
        self.code = code
        self.message = message
        self.endpoint = endpoint
        where = f" from {endpoint}" if endpoint else ""
        answer = f"HTTP {status_code}" if status_code is not None else "no answer"
        detail = f", code {code}" if code else ""
        super().__init__(f"{message} [{answer}{where}{detail}]")


class AirplaneAuthError(AirplaneApiError):
    """401 or 403: the API key is wrong, or lacks permission."""


class AirplaneNotFoundError(AirplaneApiError):
    """404: the run or task does not exist (in this environment)."""


class AirplaneRateLimitedError(AirplaneApiError):
    """429 after every retry was spent."""


class AirplaneOutageError(AirplaneApiError):
    """The API stayed unreachable (no answer, 429, 5xx, unreadable answers) for longer than ``max_outage``.

    The run was not cancelled: its state is unknown, and a retry of the task re-attaches to it.
    ``status_code`` is the last answer's, None when the last request got no answer.
    """

    def __init__(
        self,
        status_code: int | None,
        code: str | None,
        message: str,
        *,
        endpoint: str | None = None,
        seconds: float = 0.0,
        failures: int = 0,
    ) -> None:
        super().__init__(status_code, code, message, endpoint=endpoint)
        self.seconds = seconds
        self.failures = failures


class AirplaneApprovalRequiredError(AirplaneApiError):
    """The task may only run through an approved request in Airplane (``task_must_be_requested``)."""


class AirplaneRunError(AirplaneError):
    """A run ended without success; ``run`` is the run as last seen."""

    def __init__(self, run: AirplaneRun, message: str) -> None:
        super().__init__(message)
        self.run = run


class AirplaneRunFailedError(AirplaneRunError):
    """The run ended Failed."""


class AirplaneRunCancelledError(AirplaneRunError, AirflowFailException):
    """The run ended Cancelled. Not retried by Airflow: somebody chose to stop it."""


class AirplaneRunTimeoutError(AirplaneRunError):
    """The wait's timeout passed. ``hook.wait_for_run`` leaves the run alone; the operator cancels it."""


class AirplaneOutputTooLargeError(AirplaneError, AirflowFailException):
    """The run succeeded but its outputs exceed ``output_max_bytes``. Not retried: a new run would too."""
