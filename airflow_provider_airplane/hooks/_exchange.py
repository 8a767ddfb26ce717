"""The HTTP exchange of one API call, without I/O: the request to send, the answers (or failures) fed
back, the retry decision, and the typed error when it gives up.

The sync hook (requests) and the async hook (aiohttp) only move bytes and sleep, so the two clients cannot
drift apart. References are to ``reference/airplane-api.md``.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Protocol, TypeVar

from airflow_provider_airplane import _metrics
from airflow_provider_airplane._outage import Outage
from airflow_provider_airplane._validation import text_or_none
from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneApprovalRequiredError,
    AirplaneAuthError,
    AirplaneNotFoundError,
    AirplaneRateLimitedError,
)
from airflow_provider_airplane.hooks._config import DEFAULT_API_URL, AirplaneConfig

T = TypeVar("T")

log = logging.getLogger(__name__)

APPROVAL_CODE = "task_must_be_requested"
_SNIPPET_CHARS = 200
# Answers that say the connection itself may be wrong: a rejected key, a key without permission, or a
# host or environment that does not know the run or task. A hook reads its connection again after one.
CONNECTION_SUSPECT_STATUSES = frozenset({401, 403, 404})


class Log(Protocol):
    """What the core needs of a logger: ``logging.Logger`` and Airflow's structlog-backed ``self.log`` fit."""

    def info(self, msg: str, /, *args: Any) -> object: ...

    def warning(self, msg: str, /, *args: Any) -> object: ...


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as either client received it; header names lower-cased."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def of(cls, status: int, headers: Mapping[str, str], body: bytes) -> Answer:
        return cls(status, {name.lower(): value for name, value in headers.items()}, body)


@dataclass(frozen=True)
class Failure:
    """No answer: the connection failed, was dropped, or timed out."""

    error: BaseException

    @property
    def kind(self) -> str:
        """``dns``, ``refused``, ``timeout`` or ``connection``, found anywhere in the exception chain."""
        seen: set[int] = set()
        stack: list[BaseException] = [self.error]
        timed_out = False
        while stack:
            exc = stack.pop()
            if id(exc) in seen:
                continue
            seen.add(id(exc))
            if isinstance(exc, socket.gaierror):
                return "dns"
            if isinstance(exc, ConnectionRefusedError):
                return "refused"
            timed_out = timed_out or isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__
            linked = (
                exc.__cause__,
                exc.__context__,
                getattr(exc, "reason", None),
                getattr(exc, "os_error", None),
            )
            stack.extend(e for e in (*linked, *exc.args) if isinstance(e, BaseException))
        return "timeout" if timed_out else "connection"

    @property
    def description(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


@dataclass(frozen=True)
class HttpRequest:
    """A request ready to send; the same object (same Idempotency-Key) is sent on every attempt."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes | None
    timeout: float

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.url}"


@dataclass(frozen=True)
class Operation(Generic[T]):
    """One API call: what to send, how to read a 2xx answer, and what a 404 is about."""

    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any] | None
    parse: Callable[[Answer], T]
    subject: str  # e.g. "run 'run123'", for 404 and approval messages


def retry_after_seconds(answer: Answer, *, now: float | None = None) -> float | None:
    """The answer's ``Retry-After`` in seconds (RFC 9110: delay-seconds or an HTTP-date in any of its three
    forms), None if absent or unreadable (logged at debug). A date in the past means now (0). The hook and
    the watcher share it.

    A date is read against the answer's own ``Date`` (the server's clock), not this machine's: the two
    clocks may be minutes apart. Without a ``Date``, against ``now`` (default: the local clock).
    """
    value = answer.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # RFC 9110's DIGIT is ASCII; str.isdigit() also takes "²"
        return float(value)
    moment = _http_date(value)
    if moment is None:
        log.debug("Ignoring Retry-After %r: neither seconds nor an HTTP-date", value)
        return None
    if now is None:
        now = server_time(answer)
    return max(0.0, moment - (time.time() if now is None else now))


def server_time(answer: Answer) -> float | None:
    """Epoch seconds of the answer's ``Date`` header: the server's clock, to whole seconds; None if absent or
    unreadable."""
    return _http_date(answer.headers.get("date", ""))


def _http_date(value: str) -> float | None:
    """Epoch seconds of an RFC 9110 HTTP-date in any of its three forms, None if it is not one."""
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # the asctime form carries no zone: every HTTP-date is GMT
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def backoff(failures: int, base: float, cap: float) -> float:
    """``min(cap, base * 2**(failures - 1))`` for any number of failures in a row: an outage without a bound
    counts them for hours (a watcher for days), and ``2.0 ** 1024`` raises OverflowError. Any base reaches
    any cap long before ``2**1000``."""
    return min(cap, base * 2.0 ** min(failures - 1, 1000))


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait: the reference's policy (section 6.3) with knobs tests can shrink."""

    max_attempts: int = 10
    backoff_base: float = 0.1
    backoff_cap: float = 30.0
    retry_after_max: float = 120.0
    jitter: Callable[[], float] = field(default=random.random, repr=False)
    # Seconds one logical call may take, waits included (None: no bound). A read that must not hold the
    # task up (a run's log lines) gives up instead of waiting past it; each attempt's timeout fits in what
    # is left of it.
    budget: float | None = None
    # A wait's outage (see ``_outage``): transient failures are retried until it passes ``max_outage``,
    # whatever ``max_attempts`` says, and logged once at its start and end instead of once per attempt.
    outage: Outage | None = field(default=None, compare=False)

    @staticmethod
    def should_retry(answer: Answer) -> bool:
        """``X-Airplane-Retryable`` decides when present; otherwise 429 and 5xx except 501."""
        flag = answer.headers.get("x-airplane-retryable", "").strip().lower()
        if flag in ("true", "false"):
            return flag == "true"
        return answer.status == 429 or (500 <= answer.status <= 599 and answer.status != 501)

    def delay(self, retry: int, answer: Answer | None) -> float:
        """``Retry-After`` (seconds or HTTP-date, capped) if given, else full-jitter exponential backoff."""
        retry_after = retry_after_seconds(answer) if answer is not None else None
        if retry_after is not None:
            return min(retry_after, float(self.retry_after_max))
        return self.jitter() * backoff(retry, self.backoff_base, self.backoff_cap)


def snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "..."


def _describe_body(answer: Answer) -> str:
    """Say what a body that is not the expected JSON is, with a short snippet."""
    if not answer.body.strip():
        return "an empty body"
    text = snippet(answer.body)
    if "html" in answer.headers.get("content-type", "").lower() or text.startswith("<"):
        return f"HTML, not JSON (a proxy or the wrong host?): {text!r}"
    if text[:1] in ("{", "["):
        return f"JSON that is cut short or corrupt: {text!r}"
    return f"text, not JSON: {text!r}"


def _server_message(answer: Answer) -> tuple[str, str | None]:
    """The server's own words and error code, from a JSON ``{"error", "code"}`` body or any other body."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        return f"the server answered with {_describe_body(answer)}", None
    if isinstance(body, dict):
        message = text_or_none(body.get("error")) or text_or_none(body.get("message"))
        code = text_or_none(body.get("code"))
        if message:
            return f"Airplane said: {message}", code
        return f"the server answered {snippet(answer.body)!r}", code
    return f"the server answered {snippet(answer.body)!r}", None


def json_object(answer: Answer) -> dict[str, Any]:
    """The body as a JSON object, or ValueError saying what came instead (the call adds the status)."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        raise ValueError(f"the body is {_describe_body(answer)}") from None
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {snippet(answer.body)!r}")
    return body


class Call(Generic[T]):
    """The attempts of one logical request: feed it each outcome; it returns the delay before the next
    attempt, None when done (``result`` holds the value), or raises the typed error."""

    def __init__(
        self,
        op: Operation[T],
        request: HttpRequest,
        *,
        config: AirplaneConfig,
        policy: RetryPolicy,
        log: Log,
    ) -> None:
        self.op = op
        self._request = request
        self._sent = request  # the last request handed out: its timeout is the one an error names
        self.config = config
        self.policy = policy
        self.log = log
        self.attempts = 0
        self.started = time.monotonic()
        self.last: Answer | Failure | None = None
        self._result: T | None = None

    @property
    def result(self) -> T:
        return self._result  # type: ignore[return-value]  # None is a valid T for some operations

    @property
    def connection_suspect(self) -> bool:
        """Whether the last answer says the connection may be wrong (401, 403, 404)."""
        return isinstance(self.last, Answer) and self.last.status in CONNECTION_SUSPECT_STATUSES

    @property
    def request(self) -> HttpRequest:
        """The request for the next attempt: with a budget, its timeout is what is left of the budget."""
        budget = self.policy.budget
        if budget is not None:
            left = budget - (time.monotonic() - self.started)
            self._sent = replace(self._request, timeout=max(0.001, min(self._request.timeout, left)))
        return self._sent

    def feed(self, outcome: Answer | Failure) -> float | None:
        self.attempts += 1
        self.last = outcome
        _metrics.api_outcome(self.op.path, outcome)
        outage = self.policy.outage
        if isinstance(outcome, Answer) and 200 <= outcome.status < 300:
            try:
                self._result = self.op.parse(outcome)
            except ValueError as err:
                # A proxy's page or a body cut short: the next answer may be the API's own.
                unreadable = self._error(
                    AirplaneApiError,
                    outcome.status,
                    None,
                    f"The Airplane API answered HTTP {outcome.status}, but {err}: "
                    + self._unreadable_hint(outcome),
                )
                what = f"HTTP {outcome.status} with {_describe_body(outcome)}"
                return self._retry(outcome, unreadable, what)
            if outage is not None:
                outage.recovered()
            return None
        if isinstance(outcome, Answer) and not self.policy.should_retry(outcome):
            if outage is not None:
                outage.recovered()  # an answer of the API's own, if not a welcome one
            raise self._give_up(outcome)
        what = outcome.description if isinstance(outcome, Failure) else f"HTTP {outcome.status}"
        return self._retry(outcome, self._give_up(outcome), what)

    def _retry(self, outcome: Answer | Failure, error: AirplaneApiError, what: str) -> float:
        """The delay before the next attempt after a transient failure, or raise ``error`` (or the outage's)
        once the attempts, the budget or the outage are spent."""
        what = self.config.scrub(what)
        answer = outcome if isinstance(outcome, Answer) else None
        outage = self.policy.outage
        if outage is not None:
            outage.failed(what)
            if outage.over:
                raise outage.error(status_code=error.status_code, endpoint=self.request.endpoint) from error
            delay = self.policy.delay(outage.failures, answer)
            remaining = outage.remaining
            if remaining is not None:
                delay = min(delay, remaining)  # one more attempt right at the bound, then give up
        else:
            if self.attempts >= self.policy.max_attempts:
                raise error
            delay = self.policy.delay(self.attempts, answer)
        budget = self.policy.budget
        if budget is not None:
            left = budget - (time.monotonic() - self.started)
            # Spent, or the server asks for more than is left: give up now. Else never sleep past the budget,
            # keeping half of what is left for one more attempt.
            asked = answer is not None and retry_after_seconds(answer) is not None
            if left <= 0.01 or (asked and delay > left):
                raise error
            delay = min(delay, left / 2)
        if outage is None:
            self.log.warning(
                "Airplane API %s failed (%s); retrying in %.2fs (attempt %d of %d)",
                self.request.endpoint,
                what,
                delay,
                self.attempts + 1,
                self.policy.max_attempts,
            )
        else:
            log.debug("Airplane API %s failed (%s); retrying in %.2fs", self.request.endpoint, what, delay)
        _metrics.api_retry(self.op.path)
        return delay

    def _unreadable_hint(self, answer: Answer) -> str:
        """What to do about a 2xx answer that is not the JSON the call expects."""
        if answer.body.strip()[:1] in (b"{", b"[") and not _is_json(answer.body):
            return "a proxy or the network cut the answer short; retrying the task usually helps"
        return (
            f"check that the host of connection {self.config.conn_id!r} is the Airplane API base URL, "
            f"e.g. {DEFAULT_API_URL}"
        )

    def _error(
        self, cls: type[AirplaneApiError], status: int | None, code: str | None, message: str
    ) -> AirplaneApiError:
        return cls(status, code, self.config.scrub(message), endpoint=self.request.endpoint)

    def _give_up(self, outcome: Answer | Failure) -> AirplaneApiError:
        tries = f"{self.attempts} attempt" + ("s" if self.attempts != 1 else "")
        if isinstance(outcome, Failure):
            kind = {
                "dns": "the host name does not resolve",
                "refused": "connection refused",
                "timeout": f"no answer within {self._sent.timeout:.3g}s",
                "connection": "the connection failed",
            }[outcome.kind]
            return self._error(
                AirplaneApiError,
                None,
                None,
                f"No answer from the Airplane API at {self.config.base_url} after {tries} ({kind}): "
                f"check the host of connection {self.config.conn_id!r} and that this machine can reach it; "
                f"last error: {outcome.description}",
            )
        status = outcome.status
        said, code = _server_message(outcome)
        subject = self.op.subject
        if code == APPROVAL_CODE:
            return self._error(
                AirplaneApprovalRequiredError,
                status,
                code,
                f"Airplane {subject} needs an approved request in Airplane before it can run: "
                f"request it in the Airplane app, or use a task that does not require requests ({said})",
            )
        if status == 401:
            return self._error(
                AirplaneAuthError,
                status,
                code,
                f"The Airplane API key was rejected ({said}): check the password of connection "
                f"{self.config.conn_id!r}",
            )
        if status == 403:
            return self._error(
                AirplaneAuthError,
                status,
                code,
                f"The Airplane API key lacks permission for this call on {subject} in "
                f"{self.config.environment} ({said}): grant its role access or use another key",
            )
        if status == 404:
            if not _is_json(outcome.body):
                return self._error(
                    AirplaneNotFoundError,
                    status,
                    code,
                    f"{self.config.base_url} answered HTTP 404 for {subject} with a page that is not the "
                    f"Airplane API's ({said}): set the host of connection {self.config.conn_id!r} to the "
                    f"API base URL, e.g. {DEFAULT_API_URL}",
                )
            return self._error(
                AirplaneNotFoundError,
                status,
                code,
                f"Airplane {subject} was not found in {self.config.environment} ({said}): "
                f"{_not_found_hint(subject)}",
            )
        if status == 429:
            return self._error(
                AirplaneRateLimitedError,
                status,
                code,
                f"The Airplane API is rate limiting this key: still HTTP 429 after {tries} ({said})",
            )
        if 300 <= status < 400:
            location = outcome.headers.get("location", "?")
            return self._error(
                AirplaneApiError,
                status,
                code,
                f"The Airplane API answered with a redirect to {location!r}, which is not followed "
                f"(it would carry the API key elsewhere): set connection {self.config.conn_id!r}'s host "
                "to the API base URL",
            )
        after = f" after {tries}" if self.attempts > 1 else ""
        return self._error(
            AirplaneApiError, status, code, f"The Airplane API call on {subject} failed{after} ({said})"
        )


def _not_found_hint(subject: str) -> str:
    """What to check after a 404 from the API itself."""
    if subject in ("run 'None'", "run 'null'"):
        return (
            "a templated run_id rendered an XCom that does not exist; check that the upstream task pushed "
            "'airplane_run_id'"
        )
    if subject.startswith("logs of run "):
        return (
            "the server may not serve the undocumented runs/getLogs endpoint, or the run id is unknown in "
            "this environment"
        )
    if subject.startswith("run "):
        return "check the run id, and that the connection's environment is the one the run was started in"
    return (
        "check the task's slug or ID, and that the task is deployed to that environment "
        "(connection extra env_slug, or the operator's env_slug)"
    )


def explain_test_failure(call: Call[None], error: AirplaneApiError) -> str:
    """``test_connection``'s message: wrong key, key without permission, wrong host, or unreachable host."""
    base = call.config.base_url
    last = call.last
    if isinstance(last, Failure):
        reason = {
            "dns": f"the host name in {base} does not resolve",
            "refused": f"nothing listens at {base} (connection refused)",
            "timeout": f"{base} did not answer within {call.request.timeout:g}s",
            "connection": f"the connection to {base} failed",
        }[last.kind]
        return f"Cannot reach the Airplane API: {reason}. Check the connection's host and port."
    status = error.status_code
    if status == 401:
        return f"The Airplane API at {base} rejected the API key (HTTP 401): check the connection's password."
    if status == 403:
        return (
            f"The API key is valid but lacks permission to list runs in {call.config.environment} "
            "(HTTP 403): grant its role access or use another key."
        )
    looks_like_json = isinstance(last, Answer) and _is_json(last.body)
    if status == 404 or not looks_like_json or (status is not None and 200 <= status < 300):
        return (
            f"{base} does not look like the Airplane API ({error.message}). Set the connection's host to "
            f"the API base URL, e.g. {DEFAULT_API_URL}."
        )
    return f"The Airplane API at {base} answered with an error: {error}"


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
