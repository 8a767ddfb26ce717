"""Hooks for Airplane's REST API: ``AirplaneHook`` (requests) for workers, ``AirplaneAsyncHook`` (aiohttp)
for triggers.

Both only move bytes: requests, error mapping and retry decisions come from ``_api`` and ``_exchange``.
The HTTP clients are imported when a hook first needs one, so DAG files that import the operators do not
pay for them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import datetime, timedelta
from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowNotFoundException,
    BaseHook,
    mask_secret,
)

from airflow_provider_airplane._outage import DEFAULT_MAX_OUTAGE, Outage, check_max_outage, is_transient
from airflow_provider_airplane._validation import check_positive, check_reference
from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneAuthError,
    AirplaneError,
    AirplaneOutageError,
    AirplaneRunTimeoutError,
)
from airflow_provider_airplane.hooks._api import (
    MAX_PAGE_SIZE,
    ApiCore,
    RunsSnapshot,
    after_cancel_error,
    outputs_unavailable,
)
from airflow_provider_airplane.hooks._config import AirplaneConfig
from airflow_provider_airplane.hooks._exchange import (
    Answer,
    Call,
    Failure,
    HttpRequest,
    Operation,
    RetryPolicy,
    explain_test_failure,
)
from airflow_provider_airplane.hooks._logs import LogCursor
from airflow_provider_airplane.models import AirplaneLogLine, AirplaneLogPage, AirplaneRun
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    import aiohttp
    import requests

T = TypeVar("T")

# test_connection answers a person waiting in the UI: no long backoff.
_TEST_CONNECTION_ATTEMPTS = 2
# Seconds a hook uses the connection as read before reading it again: a long-lived hook (the triggerer's
# watchers) picks up a fixed key or host without a restart. It is also read again after an answer that
# says it may be wrong (401, 403, 404).
CONFIG_MAX_AGE = 300.0


# Transport errors worth another attempt: the request may not have arrived, or its answer was lost.
# requests and aiohttp are imported on first use: the operators' module imports this one in DAG files.
@cache
def _requests_retryable() -> tuple[type[BaseException], ...]:
    import requests

    return (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    )


@cache
def _aiohttp_retryable() -> tuple[type[BaseException], ...]:
    import aiohttp

    # ClientResponseError here is an answer that is not HTTP (a bad status line from a middlebox or
    # another service on the port): as "no answer" from the API as a dropped connection (the sync hook
    # gets a ConnectionError for it). The hooks never raise_for_status, so no API status lands here.
    return (
        aiohttp.ClientConnectionError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientResponseError,
        asyncio.TimeoutError,
    )


class _AirplaneHookBase(BaseHook):
    """Connection parsing and retry settings shared by the sync and async hooks."""

    conn_name_attr = "airplane_conn_id"
    default_conn_name = "airplane_default"
    conn_type = "airplane"
    hook_name = "Airplane"

    # Full-jitter backoff random()*min(cap, base*2**(n-1)); class attributes so tests can shrink them.
    backoff_base: float = 0.1
    backoff_cap: float = 30.0
    # Honour Retry-After, but never park a worker or the triggerer longer than this on one answer.
    retry_after_max: float = 120.0
    config_max_age: float = CONFIG_MAX_AGE

    def __init__(
        self,
        airplane_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_attempts: int = 10,
        env_slug: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, not {max_attempts!r}")
        self.airplane_conn_id = airplane_conn_id
        self.timeout = None if timeout is None else check_positive(timeout, "timeout")
        self.max_attempts = max_attempts
        self.env_slug = env_slug
        # The jitter source; a test may pin it (e.g. ``lambda: 1.0``) to assert exact delays.
        self.jitter: Callable[[], float] = random.random
        self._rides_outages = False
        self._max_outage: float | None = None
        self._announce_outages = True
        # The connection as last read (see ``config_max_age``), when, and whether an answer cast doubt on it.
        self._api: ApiCore | None = None
        self._read_at = 0.0
        self._suspect = False

    def ride_outages(
        self, max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE, *, announce: bool = True
    ) -> Self:
        """Let reads (runs/get, runs/getOutputs, runs/getLogs, runs/list) wait through an API outage of up
        to ``max_outage`` seconds in a row (None: any length) instead of giving up after ``max_attempts``.

        Starting and cancelling a run keep ``max_attempts``: a start must not hang, and a cancel is
        asked while a task is being torn down. ``announce=False`` logs the outage at debug only, for a
        caller that reports it itself. Returns the hook.
        """
        self._max_outage = check_max_outage(max_outage)
        self._rides_outages = True
        self._announce_outages = announce
        return self

    def _outage_for(self, op: Operation[Any], budget: float | None) -> Outage | None:
        """A fresh outage for one read of a hook that rides them; None for writes and other hooks.

        A read with a budget (a run's log lines) is bounded by it and reported by its caller: quiet."""
        if not self._rides_outages or op.method != "GET":
            return None
        if budget is not None:
            return Outage(self.log, f"Airplane {op.subject}", None, announce=False)
        return Outage(self.log, f"Airplane {op.subject}", self._max_outage, announce=self._announce_outages)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(airplane_conn_id={self.airplane_conn_id!r})"

    def _build_config(
        self, host: str | None, port: int | None, password: str | None, extra: Any, schema: str | None
    ) -> AirplaneConfig:
        return AirplaneConfig.from_connection(
            self.airplane_conn_id,
            host=host,
            schema=schema,
            port=port,
            password=password,
            extra=extra if isinstance(extra, Mapping) else {},
            timeout=self.timeout,
            env_slug=self.env_slug,
        )

    def _current_api(self) -> ApiCore | None:
        """The API as read before, or None when the connection is due to be read (again)."""
        if self._api is None or self._suspect or time.monotonic() - self._read_at >= self.config_max_age:
            return None
        return self._api

    def _is_new_key(self, config: AirplaneConfig) -> bool:
        """Whether ``config`` brings a key the masker has not been told about by this hook."""
        return self._api is None or self._api.config.api_key != config.api_key

    def _adopt(self, config: AirplaneConfig) -> ApiCore:
        """Use the connection as just read; say so when it changed since the last read."""
        if self._api is None or self._api.config != config:
            if self._api is not None:
                self.log.info("Airplane connection %r changed; using it as it is now", self.airplane_conn_id)
            self._api = ApiCore(config)
        self._read_at = time.monotonic()
        self._suspect = False
        return self._api

    def _keep(self, error: Exception) -> ApiCore:
        """The connection could not be read again (a secrets backend down for a moment, an edit half
        done): carry on with it as read before; with nothing read before, the error is the answer."""
        if self._api is None:
            raise error
        self.log.warning(
            "Could not read Airplane connection %r again (%s); using it as read before",
            self.airplane_conn_id,
            error,
        )
        self._read_at = time.monotonic()
        self._suspect = False
        return self._api

    def _note_answer(self, call: Call[Any]) -> None:
        """After an answer that says the connection may be wrong, read it again before the next call, so
        fixing the connection is enough for a hook that lives on (a watcher that keeps retrying)."""
        if call.connection_suspect:
            self._suspect = True

    def _policy(
        self, max_attempts: int | None = None, budget: float | None = None, outage: Outage | None = None
    ) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=max_attempts or self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
            retry_after_max=self.retry_after_max,
            jitter=self.jitter,
            budget=None if budget is None else check_positive(budget, "max_wait"),
            outage=outage,
        )


class AirplaneHook(_AirplaneHookBase):
    """Start, inspect, list and cancel Airplane runs from a worker (blocking, one keep-alive session).

    ``env_slug`` overrides the connection's environment (the operator's per-task ``env_slug``).
    ``sleep`` is the pause between retries; a test may replace it to record the delays instead of waiting.
    """

    def __init__(
        self,
        airplane_conn_id: str = _AirplaneHookBase.default_conn_name,
        *,
        timeout: float | None = None,
        max_attempts: int = 10,
        env_slug: str | None = None,
    ) -> None:
        super().__init__(airplane_conn_id, timeout=timeout, max_attempts=max_attempts, env_slug=env_slug)
        self.sleep: Callable[[float], object] = time.sleep
        self._session: requests.Session | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Airflow 3.1 reads the form from here; 3.2+ reads ``ui-field-behaviour`` in provider info."""
        return {
            "hidden_fields": ["port", "schema", "login"],
            "relabeling": {"host": "API URL", "password": "API key"},
            "placeholders": {"host": "https://api.airplane.dev", "password": "tkn_..."},
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Airflow 3.1's custom fields (the ``conn-fields`` of provider info); FAB is imported only here."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        fields = {
            "env_slug": "Environment slug",
            "env_id": "Environment ID",
            "team_id": "Team ID",
            "app_url": "Web app URL",
            "timeout": "Request timeout (seconds)",
        }
        return {
            name: StringField(lazy_gettext(label), widget=BS3TextFieldWidget())
            for name, label in fields.items()
        }

    @property
    def config(self) -> AirplaneConfig:
        """The connection as it is now (see ``api``)."""
        return self.api.config

    @property
    def api(self) -> ApiCore:
        """The API calls for the connection: read on first use, again after a 401, 403 or 404, and at
        least every ``config_max_age`` seconds."""
        api = self._current_api()
        if api is None:
            try:
                config = self._read_config()
            except Exception as err:
                return self._keep(err)
            if self._is_new_key(config):
                mask_secret(config.api_key)
            api = self._adopt(config)
        return api

    def _read_config(self) -> AirplaneConfig:
        try:
            conn = self.get_connection(self.airplane_conn_id)
        except AirflowNotFoundException as err:
            raise _missing_connection(self.airplane_conn_id) from err
        return self._build_config(conn.host, conn.port, conn.password, conn.extra_dejson, conn.schema)

    def get_conn(self) -> requests.Session:
        """The keep-alive session every call of this hook shares."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> AirplaneHook:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _exchange(self, request: HttpRequest) -> Answer | Failure:
        try:
            response = self.get_conn().request(
                request.method,
                request.url,
                params=request.params,
                data=request.body,
                headers=request.headers,
                timeout=request.timeout,
                allow_redirects=False,  # a redirect would carry the API key to another host
            )
        except _requests_retryable() as err:
            return Failure(err)
        return Answer.of(response.status_code, response.headers, response.content)

    def _drive(self, call: Call[T]) -> T:
        try:
            delay = call.feed(self._exchange(call.request))
            while delay is not None:
                self.sleep(delay)
                delay = call.feed(self._exchange(call.request))
        finally:
            self._note_answer(call)
        return call.result

    def _call(
        self,
        op: Operation[T],
        *,
        idempotency_key: str | None = None,
        budget: float | None = None,
        outage: Outage | None = None,
    ) -> T:
        policy = self._policy(budget=budget, outage=outage or self._outage_for(op, budget))
        return self._drive(self.api.start(op, policy=policy, log=self.log, idempotency_key=idempotency_key))

    def execute_task(
        self,
        slug: str | None = None,
        *,
        task_id: str | None = None,
        param_values: Mapping[str, Any] | None = None,
        resources: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run and return its id.

        Every retry reuses one ``Idempotency-Key`` (a new uuid4 unless given), so a lost answer does not
        start a second run; the API remembers keys for an hour. With a given key the API may answer with
        the run an earlier request started, in the same words as for a new run (reference section 6.2),
        so the log does not claim a start then; a caller that must know takes a :meth:`runs_snapshot` first
        (the operator does, on retries).
        """
        op = self.api.execute_task(slug=slug, task_id=task_id, param_values=param_values, resources=resources)
        run_id = self._call(op, idempotency_key=idempotency_key)
        if idempotency_key is None:
            self.log.info("Started Airplane run %s of %s in %s", run_id, op.subject, self.config.environment)
        else:
            self.log.info(
                "Airplane run %s of %s in %s for Idempotency-Key %s (new, or started earlier by a request "
                "with this key)",
                run_id,
                op.subject,
                self.config.environment,
                idempotency_key,
            )
        return run_id

    def get_run(self, run_id: str) -> AirplaneRun:
        """The run as it is now (``runs/get``): status, parameters, times, who cancelled it."""
        return self._call(self.api.get_run(run_id))

    def get_run_outputs(self, run_id: str | AirplaneRun) -> Any:
        """The run's output (any JSON value), None when it has none or keeps it in a storage zone.

        Pass the ``AirplaneRun`` when you have it, to save the ``runs/get`` that looks for a zone.
        """
        run = run_id if isinstance(run_id, AirplaneRun) else self.get_run(run_id)
        if outputs_unavailable(run, self.log):
            return None
        return self._call(self.api.get_run_outputs(run.id))

    def get_run_logs(
        self,
        run_id: str,
        *,
        prev_token: str | None = None,
        level: str | None = None,
        max_wait: float | None = None,
    ) -> AirplaneLogPage:
        """One ``runs/getLogs`` answer: its lines, sorted, and the token to continue from.

        ``level="debug"`` also returns debug lines. ``max_wait`` bounds the seconds this read may take,
        retries included (the operator passes its poll interval, so logs never hold a task up). The endpoint
        is undocumented: a server without it answers 404 (:class:`AirplaneNotFoundError`).
        """
        op = self.api.get_run_logs(run_id, prev_token=prev_token, level=level)
        return self._call(op, budget=max_wait)

    def iter_run_logs(
        self, run_id: str, *, prev_token: str | None = None, level: str | None = None
    ) -> Iterator[AirplaneLogLine]:
        """Every line written so far, in order and once each, following tokens until an answer holds no
        new line. The arguments are checked here, not at the first ``next()``."""
        self.api.get_run_logs(run_id, prev_token=prev_token, level=level)
        return self._walk_logs(run_id, LogCursor(prev_token), level)

    def _walk_logs(self, run_id: str, cursor: LogCursor, level: str | None) -> Iterator[AirplaneLogLine]:
        while fresh := cursor.take(self.get_run_logs(run_id, prev_token=cursor.prev_token, level=level)):
            yield from fresh

    def cancel_run(self, run_id: str) -> AirplaneRun:
        """Ask Airplane to cancel the run and return the run as it is now.

        Cancelling is asynchronous: the run may still be Active. A run that already finished is returned
        as it is, not treated as an error.
        """
        op = self.api.cancel_run(run_id)
        try:
            self._call(op)
        except AirplaneAuthError:
            raise
        except AirplaneApiError as err:
            if err.status_code is None:
                raise
            return after_cancel_error(err, self.get_run(run_id), self.log)
        self.log.info("Asked Airplane to cancel run %s", run_id)
        return self.get_run(run_id)

    def list_runs(
        self,
        *,
        task_id: str | None = None,
        task_slug: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int = MAX_PAGE_SIZE,
        page: int = 0,
    ) -> list[AirplaneRun]:
        """One page of runs (zero-based ``page``), most recent first; ``since``/``until`` must be aware."""
        op = self.api.list_runs(
            task_id=task_id, task_slug=task_slug, since=since, until=until, limit=limit, page=page
        )
        return self._call(op)

    def runs_snapshot(self, *, task_id: str | None = None, task_slug: str | None = None) -> RunsSnapshot:
        """The task's newest runs (one page) and the server's time of the answer.

        Taken before starting a run, it tells later whether the run the API answers with existed already
        (an ``Idempotency-Key`` replay) without comparing Airplane's clock with this machine's.
        """
        return self._call(self.api.runs_snapshot(task_id=task_id, task_slug=task_slug))

    def iter_runs(
        self,
        *,
        task_id: str | None = None,
        task_slug: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[AirplaneRun]:
        """Every run, page after page until a short page; a run that shifts onto the next page is not
        yielded twice. The arguments are checked here, not at the first ``next()``."""

        def page_op(page: int) -> Operation[list[AirplaneRun]]:
            return self.api.list_runs(
                task_id=task_id, task_slug=task_slug, since=since, until=until, limit=page_size, page=page
            )

        page_op(0)
        return self._walk_pages(page_op, page_size)

    def _walk_pages(
        self, page_op: Callable[[int], Operation[list[AirplaneRun]]], page_size: int
    ) -> Iterator[AirplaneRun]:
        seen: set[str] = set()
        page = 0
        while True:
            runs = self._call(page_op(page))
            for run in runs:
                if run.id not in seen:
                    seen.add(run.id)
                    yield run
            if len(runs) < page_size:
                return
            page += 1

    def wait_for_run(
        self,
        run_id: str,
        *,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        on_poll: Callable[[AirplaneRun], object] | None = None,
        max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
    ) -> AirplaneRun:
        """Poll until the run is terminal and return it; ``on_poll`` sees the run after each poll.

        When ``timeout`` seconds pass first, raise ``AirplaneRunTimeoutError`` without cancelling: the
        caller owns that decision (the operator cancels, a sensor must not). An API outage (no answer,
        429, 5xx, unreadable answers) is waited through for up to ``max_outage`` seconds in a row (None:
        any length), with one log line when it starts and one when it ends; past it,
        ``AirplaneOutageError`` is raised and the run left alone.
        """
        check_reference(run_id, "run_id")
        interval = check_positive(poll_interval, "poll_interval")
        limit = None if timeout is None else check_positive(timeout, "timeout")
        outage = Outage(self.log, f"Airplane run {run_id}", max_outage)
        started = time.monotonic()
        last_status: object = None
        run: AirplaneRun | None = None
        while True:
            # An outage is ridden up to the deadline too: timeout bounds the wait, answers or not.
            budget = None if limit is None else max(0.001, limit - (time.monotonic() - started))
            try:
                run = self._call(self.api.get_run(run_id), outage=outage, budget=budget)
            except AirplaneApiError as err:
                # Riding an outage, only the deadline (the call's budget) or max_outage ends a call on a
                # transient failure: the former is this wait's timeout.
                if limit is None or isinstance(err, AirplaneOutageError) or not is_transient(err):
                    raise
                seen = run or AirplaneRun(run_id, "Unknown")  # its status never read before the outage
                raise AirplaneRunTimeoutError(
                    seen,
                    f"Airplane run {run_id} did not finish within {limit:g}s; it was {seen.status} when the "
                    f"API stopped answering ({err}). See {self.get_run_url(run_id)}",
                ) from err
            elapsed = time.monotonic() - started
            if run.status != last_status:
                self.log.info("Airplane run %s is %s (%.1fs elapsed)", run_id, run.status, elapsed)
                last_status = run.status
            if on_poll is not None:
                on_poll(run)
            if run.is_terminal:
                return run
            if limit is not None and elapsed >= limit:
                raise AirplaneRunTimeoutError(
                    run,
                    f"Airplane run {run_id} did not finish within {limit:g}s; it is still {run.status}. "
                    f"See {self.get_run_url(run_id)}",
                )
            time.sleep(interval if limit is None else max(0.0, min(interval, limit - elapsed)))

    def get_run_url(self, run_id: str) -> str:
        """The run's page in the Airplane web app (connection extra ``app_url``)."""
        return self.api.run_url(run_id)

    def test_connection(self) -> tuple[bool, str]:
        """Prove the key with one cheap authenticated call; say which of key, permission or host is wrong."""
        try:
            api = self.api
        except (AirflowException, ValueError) as err:  # no such connection, no key, a bad host
            return False, str(err)
        call = api.start(api.probe(), policy=self._policy(_TEST_CONNECTION_ATTEMPTS), log=self.log)
        try:
            self._drive(call)
        except AirplaneApiError as err:
            return False, explain_test_failure(call, err)
        config = api.config
        return (
            True,
            f"Connected to the Airplane API at {config.base_url} ({config.environment}); the key works.",
        )


class AirplaneAsyncHook(_AirplaneHookBase):
    """The reads a trigger needs, as coroutines on aiohttp; nothing here blocks the event loop.

    One ``aiohttp.ClientSession`` serves every call of a hook instance; close it with ``await hook.close()``
    or ``async with AirplaneAsyncHook(...) as hook:``. ``sleep`` (an async callable) is the pause between
    retries.
    """

    def __init__(
        self,
        airplane_conn_id: str = _AirplaneHookBase.default_conn_name,
        *,
        timeout: float | None = None,
        max_attempts: int = 10,
        env_slug: str | None = None,
    ) -> None:
        super().__init__(airplane_conn_id, timeout=timeout, max_attempts=max_attempts, env_slug=env_slug)
        self.sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
        self._session: aiohttp.ClientSession | None = None

    async def get_config(self) -> AirplaneConfig:
        """The connection as it is now (see ``_get_api``)."""
        return (await self._get_api()).config

    async def _get_api(self) -> ApiCore:
        """As ``AirplaneHook.api``, without blocking the loop (a worker thread before 3.3.2)."""
        api = self._current_api()
        if api is None:
            try:
                config = await self._read_config()
            except Exception as err:
                return self._keep(err)
            if self._is_new_key(config):
                await _amask_secret(config.api_key)
            api = self._adopt(config)
        return api

    async def _read_config(self) -> AirplaneConfig:
        try:
            conn = await get_async_connection(self.airplane_conn_id, hook=self)
        except AirflowNotFoundException as err:
            raise _missing_connection(self.airplane_conn_id) from err
        extra = await get_async_extra_dejson(conn)
        return self._build_config(conn.host, conn.port, conn.password, extra, conn.schema)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AirplaneAsyncHook:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _exchange(self, request: HttpRequest) -> Answer | Failure:
        import aiohttp

        if self._session is None or self._session.closed:
            # trust_env: HTTP(S)_PROXY, NO_PROXY and .netrc count here as they do for requests in a worker.
            self._session = aiohttp.ClientSession(trust_env=True)
        try:
            async with self._session.request(
                request.method,
                request.url,
                params=request.params,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
                allow_redirects=False,  # a redirect would carry the API key to another host
            ) as response:
                return Answer.of(response.status, response.headers, await response.read())
        except _aiohttp_retryable() as err:
            return Failure(err)

    async def _call(
        self, op: Operation[T], *, budget: float | None = None, outage: Outage | None = None
    ) -> T:
        api = await self._get_api()
        policy = self._policy(budget=budget, outage=outage or self._outage_for(op, budget))
        call = api.start(op, policy=policy, log=self.log)
        try:
            delay = call.feed(await self._exchange(call.request))
            while delay is not None:
                await self.sleep(delay)
                delay = call.feed(await self._exchange(call.request))
        finally:
            self._note_answer(call)
        return call.result

    async def get_run(self, run_id: str) -> AirplaneRun:
        """As ``AirplaneHook.get_run``."""
        return await self._call((await self._get_api()).get_run(run_id))

    async def get_run_outputs(self, run_id: str | AirplaneRun) -> Any:
        """As ``AirplaneHook.get_run_outputs``."""
        run = run_id if isinstance(run_id, AirplaneRun) else await self.get_run(run_id)
        if outputs_unavailable(run, self.log):
            return None
        return await self._call((await self._get_api()).get_run_outputs(run.id))

    async def get_run_logs(
        self,
        run_id: str,
        *,
        prev_token: str | None = None,
        level: str | None = None,
        max_wait: float | None = None,
    ) -> AirplaneLogPage:
        """As ``AirplaneHook.get_run_logs``."""
        op = (await self._get_api()).get_run_logs(run_id, prev_token=prev_token, level=level)
        return await self._call(op, budget=max_wait)

    async def iter_run_logs(
        self, run_id: str, *, prev_token: str | None = None, level: str | None = None
    ) -> AsyncIterator[AirplaneLogLine]:
        """As ``AirplaneHook.iter_run_logs``."""
        cursor = LogCursor(prev_token)
        while fresh := cursor.take(
            await self.get_run_logs(run_id, prev_token=cursor.prev_token, level=level)
        ):
            for line in fresh:
                yield line

    async def cancel_run(self, run_id: str) -> AirplaneRun:
        """As ``AirplaneHook.cancel_run``."""
        op = (await self._get_api()).cancel_run(run_id)
        try:
            await self._call(op)
        except AirplaneAuthError:
            raise
        except AirplaneApiError as err:
            if err.status_code is None:
                raise
            return after_cancel_error(err, await self.get_run(run_id), self.log)
        self.log.info("Asked Airplane to cancel run %s", run_id)
        return await self.get_run(run_id)

    async def list_runs(
        self,
        *,
        task_id: str | None = None,
        task_slug: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int = MAX_PAGE_SIZE,
        page: int = 0,
        outage: Outage | None = None,
    ) -> list[AirplaneRun]:
        """As ``AirplaneHook.list_runs``; a watcher passes its ``outage`` to ride out an API outage."""
        api = await self._get_api()
        return await self._call(
            api.list_runs(
                task_id=task_id, task_slug=task_slug, since=since, until=until, limit=limit, page=page
            ),
            outage=outage,
        )


def _missing_connection(conn_id: str) -> AirplaneError:
    """The error for a connection id that no secrets backend knows, saying how to define it."""
    env_var = "AIRFLOW_CONN_" + conn_id.upper().replace("-", "_")
    return AirplaneError(
        f"Airplane connection {conn_id!r} is not defined: create it (Admin > Connections, type Airplane, "
        f"or the environment variable {env_var}), or pass airplane_conn_id= of a connection that exists"
    )


async def _amask_secret(secret: str) -> None:
    """Register the key with the masker without a blocking supervisor call on the loop."""
    if AIRFLOW_V_3_3_PLUS:
        from airflow.sdk.log import amask_secret  # type: ignore[attr-defined]  # 3.3+ only

        await amask_secret(secret)
    else:
        from asgiref.sync import sync_to_async

        await sync_to_async(mask_secret)(secret)
