"""The one place that builds Airplane API requests, maps answers to results or typed errors, and decides
retries.

It does no I/O: the sync hook (requests) and the async hook (aiohttp) only move bytes and sleep, so the two
clients cannot drift apart. References are to ``reference/airplane-api.md``.
"""

from __future__ import annotations

import json
import math
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from airflow import __version__ as AIRFLOW_VERSION

from airflow_provider_airplane import __version__ as PROVIDER_VERSION
from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneApprovalRequiredError,
    AirplaneAuthError,
    AirplaneError,
    AirplaneNotFoundError,
    AirplaneRateLimitedError,
)
from airflow_provider_airplane.models import AirplaneRun

T = TypeVar("T")


class Log(Protocol):
    """What the core needs of a logger: ``logging.Logger`` and Airflow's structlog-backed ``self.log`` fit."""

    def info(self, msg: str, /, *args: Any) -> object: ...

    def warning(self, msg: str, /, *args: Any) -> object: ...


DEFAULT_API_URL = "https://api.airplane.dev"
DEFAULT_APP_URL = "https://app.airplane.dev"
DEFAULT_TIMEOUT = 30.0
MAX_PAGE_SIZE = 50  # the API accepts 0-50 (section 4.4); a bigger page would look short and end iteration
USER_AGENT = f"airflow-provider-airplane/{PROVIDER_VERSION} apache-airflow/{AIRFLOW_VERSION}"
APPROVAL_CODE = "task_must_be_requested"
_SNIPPET_CHARS = 200


def _text(value: Any) -> str | None:
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


def _base_url(conn_id: str, host: str | None, port: int | None) -> str:
    """Normalise the connection host: add https when there is no scheme, drop a trailing ``/`` or ``/v0``."""
    text = _text(host)
    if text is None:
        return DEFAULT_API_URL
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    try:
        has_port = parts.port is not None
    except ValueError:
        has_port = False
        parts = parts._replace(scheme="")  # an unparsable port: reported below
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AirplaneError(
            f"Airplane connection {conn_id!r}: host {host!r} is not an http(s) URL; "
            f"use the API base URL, e.g. {DEFAULT_API_URL}"
        )
    netloc = parts.netloc if has_port or not port else f"{parts.netloc}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/v0"):
        path = path[: -len("/v0")].rstrip("/")
    return f"{parts.scheme}://{netloc}{path}"


def _extra(extra: Mapping[str, Any], name: str) -> str | None:
    """Extras saved by the UI are plain names; older forms stored ``extra__airplane__<name>``."""
    return _text(extra.get(name)) or _text(extra.get(f"extra__airplane__{name}"))


@dataclass(frozen=True)
class AirplaneConfig:
    """Everything a request needs from the connection, shared by the sync and async hooks.

    The API key is left out of ``repr()`` so that the config can be logged or shown in a traceback.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    env_slug: str | None = None
    env_id: str | None = None
    team_id: str | None = None
    app_url: str = DEFAULT_APP_URL
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_connection(
        cls,
        conn_id: str,
        *,
        host: str | None,
        port: int | None,
        password: str | None,
        extra: Mapping[str, Any],
        timeout: float | None = None,
        env_slug: str | None = None,
    ) -> AirplaneConfig:
        """Build the config; ``timeout`` and ``env_slug`` given to the hook win over the connection's."""
        api_key = _text(password)
        if api_key is None:
            raise AirplaneError(
                f"Airplane connection {conn_id!r} has no API key: put the key (tkn_...) in its password."
            )
        override = _text(env_slug)
        slug = override or _extra(extra, "env_slug")
        env_id = None if override else _extra(extra, "env_id")
        if slug and env_id:
            raise AirplaneError(
                f"Airplane connection {conn_id!r} sets both env_slug and env_id; keep only one of them."
            )
        if timeout is not None:
            seconds = check_positive(timeout, "timeout")
        elif (raw_timeout := _extra(extra, "timeout")) is not None:
            try:
                seconds = check_positive(raw_timeout, f"Airplane connection {conn_id!r} extra 'timeout'")
            except ValueError as err:
                raise AirplaneError(str(err)) from None
        else:
            seconds = DEFAULT_TIMEOUT
        app_url = (_extra(extra, "app_url") or DEFAULT_APP_URL).rstrip("/")
        return cls(
            conn_id=conn_id,
            base_url=_base_url(conn_id, host, port),
            api_key=api_key,
            env_slug=slug,
            env_id=env_id,
            team_id=_extra(extra, "team_id"),
            app_url=app_url,
            timeout=seconds,
        )

    @property
    def environment(self) -> str:
        """The environment in words, for error messages."""
        if self.env_slug:
            return f"environment {self.env_slug!r}"
        if self.env_id:
            return f"environment ID {self.env_id!r}"
        return "the default environment"

    def scrub(self, text: str) -> str:
        """Remove the API key from text that may echo it (a server message, an exception)."""
        return text.replace(self.api_key, "***")

    def headers(self, *, idempotency_key: str | None) -> dict[str, str]:
        headers = {
            "X-Airplane-API-Key": self.api_key,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if self.env_slug:
            headers["X-Airplane-Env-Slug"] = self.env_slug
        elif self.env_id:
            headers["X-Airplane-Env-ID"] = self.env_id
        if self.team_id:
            headers["X-Team-ID"] = self.team_id
        if idempotency_key is not None:
            headers["Content-Type"] = "application/json"
            headers["Idempotency-Key"] = idempotency_key
        return headers


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


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait: the reference's policy (section 6.3) with knobs tests can shrink."""

    max_attempts: int = 10
    backoff_base: float = 0.1
    backoff_cap: float = 30.0
    retry_after_max: float = 120.0
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    @staticmethod
    def should_retry(answer: Answer) -> bool:
        """``X-Airplane-Retryable`` decides when present; otherwise 429 and 5xx except 501."""
        flag = answer.headers.get("x-airplane-retryable", "").strip().lower()
        if flag in ("true", "false"):
            return flag == "true"
        return answer.status == 429 or (500 <= answer.status <= 599 and answer.status != 501)

    def delay(self, retry: int, answer: Answer | None) -> float:
        """``Retry-After`` (integer seconds) if given, else full-jitter exponential backoff."""
        retry_after = (answer.headers.get("retry-after", "") if answer else "").strip()
        if retry_after.isdigit():
            return min(float(retry_after), float(self.retry_after_max))
        return self.jitter() * min(self.backoff_cap, self.backoff_base * 2.0 ** (retry - 1))


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "..."


def _describe_body(answer: Answer) -> str:
    """Say what a body that is not the expected JSON is, with a short snippet."""
    if not answer.body.strip():
        return "an empty body"
    snippet = _snippet(answer.body)
    if "html" in answer.headers.get("content-type", "").lower() or snippet.startswith("<"):
        return f"HTML, not JSON (a proxy or the wrong host?): {snippet!r}"
    if snippet[:1] in ("{", "["):
        return f"JSON that is cut short or corrupt: {snippet!r}"
    return f"text, not JSON: {snippet!r}"


def _server_message(answer: Answer) -> tuple[str, str | None]:
    """The server's own words and error code, from a JSON ``{"error", "code"}`` body or any other body."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        return f"the server answered with {_describe_body(answer)}", None
    if isinstance(body, dict):
        message = _text(body.get("error")) or _text(body.get("message"))
        code = _text(body.get("code"))
        if message:
            return f"Airplane said: {message}", code
        return f"the server answered {_snippet(answer.body)!r}", code
    return f"the server answered {_snippet(answer.body)!r}", None


def json_object(answer: Answer) -> dict[str, Any]:
    """The body as a JSON object, or ValueError saying what came instead (the call adds the status)."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        raise ValueError(f"the body is {_describe_body(answer)}") from None
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {_snippet(answer.body)!r}")
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
        self.request = request
        self.config = config
        self.policy = policy
        self.log = log
        self.attempts = 0
        self.last: Answer | Failure | None = None
        self._result: T | None = None

    @property
    def result(self) -> T:
        return self._result  # type: ignore[return-value]  # None is a valid T for some operations

    def feed(self, outcome: Answer | Failure) -> float | None:
        self.attempts += 1
        self.last = outcome
        if isinstance(outcome, Answer) and 200 <= outcome.status < 300:
            try:
                self._result = self.op.parse(outcome)
            except ValueError as err:
                raise self._error(
                    AirplaneApiError,
                    outcome.status,
                    None,
                    f"The Airplane API answered HTTP {outcome.status}, but {err}: "
                    + self._unreadable_hint(outcome),
                ) from None
            return None
        retryable = isinstance(outcome, Failure) or self.policy.should_retry(outcome)
        if not retryable or self.attempts >= self.policy.max_attempts:
            raise self._give_up(outcome)
        delay = self.policy.delay(self.attempts, outcome if isinstance(outcome, Answer) else None)
        what = outcome.description if isinstance(outcome, Failure) else f"HTTP {outcome.status}"
        self.log.warning(
            "Airplane API %s failed (%s); retrying in %.2fs (attempt %d of %d)",
            self.request.endpoint,
            self.config.scrub(what),
            delay,
            self.attempts + 1,
            self.policy.max_attempts,
        )
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
                "timeout": f"no answer within {self.request.timeout:g}s",
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
    if subject.startswith("run "):
        return "check the run id, and that the connection's environment is the one the run was started in"
    return (
        "check the task's slug or ID, and that the task is deployed to that environment "
        "(connection extra env_slug, or the operator's env_slug)"
    )


def _json_value(value: Any, what: str) -> Any:
    """``value`` if it is strict JSON (NaN and Infinity are not: the API would reject the body)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{what} must be JSON-serialisable: {err}; pass only str, int, float, bool, None, lists and "
            "dicts (e.g. a datetime as .isoformat())"
        ) from None
    return value


def check_reference(value: Any, what: str) -> str:
    """A run id, task slug or task id: a non-empty string without whitespace, and rendered."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if "{{" in value or "{%" in value:
        raise ValueError(
            f"{what} {value!r} looks like an unrendered Jinja template: is the argument in template_fields, "
            "and does the template render?"
        )
    if not value or any(char.isspace() for char in value):
        raise ValueError(f"{what} must be a non-empty string without whitespace, not {value!r}")
    return value


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


def check_page_size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(
            f"{what} must be an integer from 1 to {MAX_PAGE_SIZE} (the API's limit), not {value!r}"
        )
    return value


def _parse_run_id(answer: Answer) -> str:
    body = json_object(answer)
    nested = body["run"] if isinstance(body.get("run"), dict) else {}
    run_id = next(
        (text for data in (body, nested) for key in ("runID", "id") if (text := _text(data.get(key)))), None
    )
    if run_id is None:
        raise ValueError(f"the answer has no runID: {_snippet(answer.body)!r}")
    return run_id


def _parse_run(answer: Answer) -> AirplaneRun:
    return AirplaneRun.from_api(json_object(answer))


def _parse_runs(answer: Answer) -> list[AirplaneRun]:
    runs = json_object(answer).get("runs")
    if runs is None:
        return []
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise ValueError(f"'runs' is not a list of run objects: {_snippet(answer.body)!r}")
    return [AirplaneRun.from_api(run) for run in runs]


def _parse_outputs(answer: Answer) -> Any:
    """``output`` (current API), else the legacy ``outputs`` as it is, else None (section 4.3)."""
    body = json_object(answer)
    if "output" in body:
        return body["output"]
    return body.get("outputs")


def _ignore_body(answer: Answer) -> None:
    """Cancel's body is unspecified (section 4.5): read nothing from it."""


def _parse_probe(answer: Answer) -> None:
    if not isinstance(json_object(answer).get("runs"), list):
        raise ValueError(f"the answer is not an Airplane runs list: {_snippet(answer.body)!r}")


class ApiCore:
    """Builds the operations of the Airplane API for one connection config."""

    def __init__(self, config: AirplaneConfig) -> None:
        self.config = config

    def _env_query(self) -> dict[str, str]:
        """The CLI also sends the environment as ``envSlug`` on execute and list (section 2); kept equal."""
        return {"envSlug": self.config.env_slug} if self.config.env_slug else {}

    def execute_task(
        self,
        *,
        slug: str | None,
        task_id: str | None,
        param_values: Mapping[str, Any] | None,
        resources: Mapping[str, str] | None,
    ) -> Operation[str]:
        if (slug is None) == (task_id is None):
            raise ValueError("Give exactly one of slug or task_id to say which Airplane task to run")
        body: dict[str, Any] = (
            {"slug": check_reference(slug, "slug")}
            if slug is not None
            else {"id": check_reference(task_id, "task_id")}
        )
        for key, value, what in (
            ("paramValues", param_values, "param_values"),
            ("resources", resources, "resources"),
        ):
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
            body[key] = _json_value(dict(value or {}), what)
        subject = f"task slug {slug!r}" if slug is not None else f"task ID {task_id!r}"
        return Operation("POST", "/tasks/execute", self._env_query(), body, _parse_run_id, subject)

    def get_run(self, run_id: str) -> Operation[AirplaneRun]:
        run_id = check_reference(run_id, "run_id")
        return Operation("GET", "/runs/get", {"id": run_id}, None, _parse_run, f"run {run_id!r}")

    def get_run_outputs(self, run_id: str) -> Operation[Any]:
        run_id = check_reference(run_id, "run_id")
        return Operation("GET", "/runs/getOutputs", {"id": run_id}, None, _parse_outputs, f"run {run_id!r}")

    def cancel_run(self, run_id: str) -> Operation[None]:
        run_id = check_reference(run_id, "run_id")
        return Operation("POST", "/runs/cancel", {}, {"runID": run_id}, _ignore_body, f"run {run_id!r}")

    def list_runs(
        self,
        *,
        task_id: str | None,
        task_slug: str | None,
        since: datetime | str | None,
        until: datetime | str | None,
        limit: int,
        page: int,
    ) -> Operation[list[AirplaneRun]]:
        params = self._env_query()
        params["limit"] = str(check_page_size(limit, "limit"))
        if isinstance(page, bool) or not isinstance(page, int) or page < 0:
            raise ValueError(f"page must be a zero-based integer, not {page!r}")
        params["page"] = str(page)
        subject = "runs"
        if task_id is not None:
            params["taskID"] = check_reference(task_id, "task_id")
            subject = f"runs of task ID {task_id!r}"
        if task_slug is not None:
            params["taskSlug"] = check_reference(task_slug, "task_slug")
            subject = f"runs of task slug {task_slug!r}"
        if since is not None:
            params["since"] = rfc3339(since, "since")
        if until is not None:
            params["until"] = rfc3339(until, "until")
        return Operation("GET", "/runs/list", params, None, _parse_runs, subject)

    def probe(self) -> Operation[None]:
        """The cheapest authenticated call, for ``test_connection``."""
        return Operation("GET", "/runs/list", {"limit": "1"}, None, _parse_probe, "runs")

    def start(
        self,
        op: Operation[T],
        *,
        policy: RetryPolicy,
        log: Log,
        idempotency_key: str | None = None,
    ) -> Call[T]:
        """Prepare the request once, so every retry of a POST carries the same Idempotency-Key."""
        if op.method == "POST":
            idempotency_key = (
                check_reference(idempotency_key, "idempotency_key")
                if idempotency_key is not None
                else str(uuid.uuid4())
            )
        elif idempotency_key is not None:
            raise ValueError("idempotency_key only applies to POST calls")
        request = HttpRequest(
            method=op.method,
            url=f"{self.config.base_url}/v0{op.path}",
            params=dict(op.params),
            headers=self.config.headers(idempotency_key=idempotency_key),
            body=None if op.body is None else json.dumps(op.body).encode(),
            timeout=self.config.timeout,
        )
        return Call(op, request, config=self.config, policy=policy, log=log)

    def run_url(self, run_id: str) -> str:
        return f"{self.config.app_url}/runs/{check_reference(run_id, 'run_id')}"


def after_cancel_error(error: AirplaneApiError, run: AirplaneRun, log: Log) -> AirplaneRun:
    """Cancel failed: a run that already finished is the answer (the API rejects cancelling it)."""
    if not run.is_terminal:
        raise error
    log.info(
        "Airplane run %s had already finished with status %s; nothing to cancel (%s)",
        run.id,
        run.status,
        error.message,
    )
    return run


def outputs_unavailable(run: AirplaneRun, log: Log) -> bool:
    """A run with a storage zone keeps its outputs where the API does not serve them (DESIGN.md)."""
    if run.zone_id is None:
        return False
    log.warning(
        "Airplane run %s keeps its outputs in the self-hosted storage zone %s, which the Airplane API "
        "does not serve; returning no outputs. Read them from the zone's agent storage instead.",
        run.id,
        run.zone_id,
    )
    return True


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
