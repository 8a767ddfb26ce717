"""The Airplane API's operations for one connection: what each call sends and how its answer is read.

References are to ``reference/airplane-api.md``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from airflow_provider_airplane._validation import check_reference, json_value, rfc3339, text_or_none
from airflow_provider_airplane.exceptions import AirplaneApiError
from airflow_provider_airplane.hooks._config import AirplaneConfig
from airflow_provider_airplane.hooks._exchange import (
    Answer,
    Call,
    HttpRequest,
    Log,
    Operation,
    RetryPolicy,
    json_object,
    server_time,
    snippet,
)
from airflow_provider_airplane.hooks._logs import check_level, parse_log_page
from airflow_provider_airplane.models import AirplaneLogPage, AirplaneRun

T = TypeVar("T")

MAX_PAGE_SIZE = 50  # the API accepts 0-50 (section 4.4); a bigger page would look short and end iteration


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
        (text for data in (body, nested) for key in ("runID", "id") if (text := text_or_none(data.get(key)))),
        None,
    )
    if run_id is None:
        raise ValueError(f"the answer has no runID: {snippet(answer.body)!r}")
    return run_id


def _parse_run(answer: Answer) -> AirplaneRun:
    return AirplaneRun.from_api(json_object(answer))


def _parse_runs(answer: Answer) -> list[AirplaneRun]:
    runs = json_object(answer).get("runs")
    if runs is None:
        return []
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise ValueError(f"'runs' is not a list of run objects: {snippet(answer.body)!r}")
    return [AirplaneRun.from_api(run) for run in runs]


@dataclass(frozen=True)
class RunsSnapshot:
    """The newest runs of a task and the server's time (its ``Date`` header) when it listed them.

    Tells whether a run existed before some moment using only the server's own answers, never a
    comparison of Airplane's clock with this machine's.
    """

    runs: list[AirplaneRun]
    server_time: datetime | None  # None when the answer had no readable Date header

    def had(self, run: AirplaneRun) -> bool:
        """Whether ``run`` existed when this snapshot was taken: it is listed, or Airplane created it no
        later than a moment the snapshot vouches for (its ``Date``, else the newest listed run's
        ``createdAt``). A run created within the ``Date``'s second and missing from the listing counts
        as newer; a run without ``createdAt`` that is not listed counts as older."""
        if any(seen.id == run.id for seen in self.runs):
            return True
        if run.created_at is None:
            return True
        known = [seen.created_at for seen in self.runs if seen.created_at is not None]
        moment = self.server_time or max(known, default=None)
        return moment is not None and run.created_at <= moment


def _server_time(answer: Answer) -> datetime | None:
    """The answer's ``Date`` header (RFC 9110 HTTP-date, one-second resolution), if readable."""
    moment = server_time(answer)
    return None if moment is None else datetime.fromtimestamp(moment, UTC)


def _parse_snapshot(answer: Answer) -> RunsSnapshot:
    return RunsSnapshot(_parse_runs(answer), _server_time(answer))


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
        raise ValueError(f"the answer is not an Airplane runs list: {snippet(answer.body)!r}")


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
            body[key] = json_value(dict(value or {}), what)
        subject = f"task slug {slug!r}" if slug is not None else f"task ID {task_id!r}"
        return Operation("POST", "/tasks/execute", self._env_query(), body, _parse_run_id, subject)

    def get_run(self, run_id: str) -> Operation[AirplaneRun]:
        run_id = check_reference(run_id, "run_id")
        return Operation("GET", "/runs/get", {"id": run_id}, None, _parse_run, f"run {run_id!r}")

    def get_run_outputs(self, run_id: str) -> Operation[Any]:
        run_id = check_reference(run_id, "run_id")
        return Operation("GET", "/runs/getOutputs", {"id": run_id}, None, _parse_outputs, f"run {run_id!r}")

    def get_run_logs(
        self, run_id: str, *, prev_token: str | None, level: str | None
    ) -> Operation[AirplaneLogPage]:
        """``runID`` as the CLI sent it (section 4.6); ``prev_token`` left out on the first call."""
        run_id = check_reference(run_id, "run_id")
        params = {"runID": run_id}
        if prev_token is not None:
            if not isinstance(prev_token, str) or not prev_token:
                raise ValueError(f"prev_token must be a token from an earlier answer, not {prev_token!r}")
            params["prev_token"] = prev_token
        if check_level(level) is not None:
            params["level"] = str(level)
        return Operation("GET", "/runs/getLogs", params, None, parse_log_page, f"logs of run {run_id!r}")

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

    def runs_snapshot(self, *, task_id: str | None, task_slug: str | None) -> Operation[RunsSnapshot]:
        """The newest page of a task's runs, read with the answer's ``Date``."""
        op = self.list_runs(
            task_id=task_id, task_slug=task_slug, since=None, until=None, limit=MAX_PAGE_SIZE, page=0
        )
        return Operation(op.method, op.path, op.params, op.body, _parse_snapshot, op.subject)

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
            timeout=self.config.timeout if policy.budget is None else min(self.config.timeout, policy.budget),
        )
        return Call(op, request, config=self.config, policy=policy, log=log)

    def run_url(self, run_id: str) -> str:
        """The run's page; a task's own environment (``env_slug=``) is named in it (``?__env=``, the web
        app's environment parameter) so the page opens in that environment, not the connection's."""
        url = f"{self.config.app_url}/runs/{check_reference(run_id, 'run_id')}"
        if self.config.link_env:
            url += "?" + urlencode({"__env": self.config.link_env})
        return url


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
