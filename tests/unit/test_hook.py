"""AirplaneHook over real HTTP against the in-process emulator: calls, retries, errors, test_connection."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any
from unittest import mock

import pendulum
import pytest
import structlog.testing
from airflow_stack import wait_until

from airflow_provider_airplane import __version__ as provider_version
from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneApprovalRequiredError,
    AirplaneAuthError,
    AirplaneNotFoundError,
    AirplaneRateLimitedError,
    AirplaneRunTimeoutError,
)
from airflow_provider_airplane.get_provider_info import get_provider_info
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.models import RunStatus
from airflow_provider_airplane.testing import AirplaneEmulator

EXECUTE = "/v0/tasks/execute"
GET = "/v0/runs/get"
OUTPUTS = "/v0/runs/getOutputs"
LIST = "/v0/runs/list"
CANCEL = "/v0/runs/cancel"
OTHER_KEY = "tkn_unreachable_5ecret_value"


@pytest.fixture
def delays() -> list[float]:
    return []


@pytest.fixture
def hook(airplane_conn: AirplaneEmulator, delays: list[float]) -> Iterator[AirplaneHook]:
    """A hook on ``airplane_default`` that records its retry delays instead of sleeping."""
    with AirplaneHook() as h:
        h.sleep = delays.append
        yield h


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """What the hook logs (its ``self.log`` is structlog, which caplog does not see)."""
    with structlog.testing.capture_logs() as captured:
        yield captured


def log_text(logs: list[MutableMapping[str, Any]]) -> str:
    return "\n".join(str(entry) for entry in logs)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def requests_to(emu: AirplaneEmulator, path: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in emu.request_log() if entry["path"] == path]


def default_conn(monkeypatch: pytest.MonkeyPatch, emu: AirplaneEmulator, **extra: Any) -> None:
    """``airplane_default`` as conftest's ``airplane_conn`` sets it, with more extras."""
    extra = {"env_slug": "prod", "app_url": "https://app.example.test", **extra}
    set_conn(monkeypatch, "airplane_default", host=emu.url, password=emu.api_key, extra=extra)


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "airplane", **fields}))


# Calls ------------------------------------------------------------------------------------------------


def test_execute_wait_outputs_round_trip(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("refresh", output=lambda params: {"rows": params["n"] * 2}, duration=0.2)
    run_id = hook.execute_task("refresh", param_values={"n": 21})
    run = hook.wait_for_run(run_id, poll_interval=0.05)
    assert run.id == run_id
    assert run.status is RunStatus.SUCCEEDED
    assert run.param_values == {"n": 21}
    assert hook.get_run_outputs(run_id) == {"rows": 42}
    assert hook.get_run_outputs(run) == {"rows": 42}  # the run given: no second runs/get
    assert airplane_conn.request_counts()[OUTPUTS] == 2


def test_execute_by_task_id_with_resources(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    task_id = airplane_conn.add_task("by_id", output="ok")
    run_id = hook.execute_task(task_id=task_id, resources={"db": "demo_db"})
    assert hook.get_run(run_id).task_id == task_id


def test_request_headers(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch, delays: list[float]
) -> None:
    import airflow

    airplane_conn.add_task("hello")
    default_conn(monkeypatch, airplane_conn, team_id="tea123")
    hook = AirplaneHook()
    run_id = hook.execute_task("hello")
    hook.get_run(run_id)
    post, get = airplane_conn.request_log()
    assert post["headers"]["X-Airplane-API-Key"] == "***"  # sent, and redacted by the emulator's log
    assert post["headers"]["X-Airplane-Env-Slug"] == "prod"
    assert post["query"] == {"envSlug": "prod"}
    assert post["headers"]["X-Team-ID"] == "tea123"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["Accept"] == "application/json"
    assert (
        post["headers"]["User-Agent"]
        == f"airflow-provider-airplane/{provider_version} apache-airflow/{airflow.__version__}"
    )
    assert uuid.UUID(post["headers"]["Idempotency-Key"]).version == 4
    assert "Idempotency-Key" not in get["headers"]
    assert get["query"] == {"id": run_id}


def test_env_slug_argument_overrides_connection_env(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    airplane_conn.add_task("hello")
    default_conn(monkeypatch, airplane_conn, env_slug="", env_id="env1")
    AirplaneHook().execute_task("hello")
    AirplaneHook(env_slug="staging").execute_task("hello")
    by_id, by_slug = requests_to(airplane_conn, EXECUTE)
    assert by_id["headers"]["X-Airplane-Env-ID"] == "env1"
    assert "X-Airplane-Env-Slug" not in by_id["headers"]
    assert by_slug["headers"]["X-Airplane-Env-Slug"] == "staging"
    assert "X-Airplane-Env-ID" not in by_slug["headers"]


def test_uri_connection_with_prefixed_extras(
    emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.add_task("hello")
    host = emulator.url.removeprefix("http://")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRPLANE_URI",
        f"airplane://http://:{emulator.api_key}@{host}?extra__airplane__env_slug=dev&app_url=https%3A%2F%2Fapp.test%2F",
    )
    hook = AirplaneHook("airplane_uri")
    hook.execute_task("hello")
    assert hook.config.base_url == emulator.url
    assert requests_to(emulator, EXECUTE)[0]["headers"]["X-Airplane-Env-Slug"] == "dev"
    assert hook.get_run_url("run1") == "https://app.test/runs/run1"


def test_get_run_url_uses_app_url(hook: AirplaneHook) -> None:
    assert (
        hook.get_run_url("run20220215zv10o6s52qj") == "https://app.example.test/runs/run20220215zv10o6s52qj"
    )


def test_list_and_iter_runs_across_pages(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("many")
    airplane_conn.add_task("other")
    created = {hook.execute_task("many") for _ in range(120)}
    hook.execute_task("other")
    page = hook.list_runs(task_slug="many", limit=50, page=2)
    assert len(page) == 20
    seen = [run.id for run in hook.iter_runs(task_slug="many")]
    assert len(seen) == 120
    assert set(seen) == created
    lists = requests_to(airplane_conn, LIST)[1:]
    assert [entry["query"]["page"] for entry in lists] == ["0", "1", "2"]
    assert all(entry["query"]["limit"] == "50" for entry in lists)
    # An exact multiple of the page size ends on an empty page.
    assert len(list(hook.iter_runs(task_slug="many", page_size=40))) == 120
    assert airplane_conn.request_counts()[LIST] == 1 + 3 + 4


def test_since_and_until(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("timed")
    early = {hook.execute_task("timed") for _ in range(3)}
    middle = pendulum.now("UTC").add(minutes=30)
    airplane_conn.clock_offset = 3600.0
    late = {hook.execute_task("timed") for _ in range(2)}
    assert {run.id for run in hook.list_runs(since=middle)} == late
    assert {run.id for run in hook.list_runs(until=middle.isoformat())} == early
    stdlib = datetime.fromtimestamp(middle.timestamp(), UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=-5))
    )
    assert {run.id for run in hook.iter_runs(task_slug="timed", since=stdlib)} == late
    since_sent = requests_to(airplane_conn, LIST)[0]["query"]["since"]
    assert since_sent.endswith("Z")
    assert datetime.fromisoformat(since_sent) == middle


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"since": datetime(2024, 1, 1)}, "no time zone"),
        ({"until": "2024-01-01T00:00:00"}, "no time zone"),
        ({"since": "yesterday"}, "not an RFC 3339"),
        ({"limit": 100}, "from 1 to 50"),
        ({"limit": 0}, "from 1 to 50"),
        ({"page": -1}, "zero-based"),
    ],
)
def test_list_runs_rejects_bad_arguments_before_calling(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, kwargs: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        hook.list_runs(**kwargs)
    with pytest.raises(ValueError, match="from 1 to 50"):
        hook.iter_runs(page_size=51)
    with pytest.raises(ValueError, match="no time zone"):
        hook.iter_runs(since=datetime(2024, 1, 1))  # raised by the call, not by the first next()
    assert airplane_conn.request_counts() == {}


@pytest.mark.parametrize(
    ("run_id", "error"),
    [
        ("", "non-empty"),
        ("run 1", "without whitespace"),
        ("{{ ti.xcom_pull('start') }}", "unrendered Jinja template"),
    ],
)
def test_run_id_validated_early(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, run_id: str, error: str
) -> None:
    for call in (hook.get_run, hook.get_run_outputs, hook.cancel_run, hook.get_run_url, hook.wait_for_run):
        with pytest.raises(ValueError, match=error):
            call(run_id)
    with pytest.raises(TypeError):
        hook.get_run(None)  # type: ignore[arg-type]
    assert airplane_conn.request_counts() == {}


def test_execute_validates_inputs_before_calling(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    with pytest.raises(ValueError, match="exactly one of slug or task_id"):
        hook.execute_task()
    with pytest.raises(ValueError, match="exactly one of slug or task_id"):
        hook.execute_task("a", task_id="tsk1")
    with pytest.raises(ValueError, match="JSON-serialisable"):
        hook.execute_task("a", param_values={"when": object()})
    with pytest.raises(ValueError, match="unrendered Jinja"):
        hook.execute_task("{{ params.slug }}")
    with pytest.raises(ValueError, match="poll_interval"):
        hook.wait_for_run("run1", poll_interval=0)
    assert airplane_conn.request_counts() == {}


# Waiting ----------------------------------------------------------------------------------------------


def test_wait_for_run_logs_each_status_change(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, logs: list[MutableMapping[str, Any]]
) -> None:
    airplane_conn.add_task("slowish", duration=0.3)
    run = hook.wait_for_run(hook.execute_task("slowish"), poll_interval=0.02)
    assert run.is_terminal
    changes = [entry["event"] for entry in logs if " is " in entry["event"]]
    assert len(changes) == len({c.split(" is ")[1].split(" ")[0] for c in changes}) >= 2
    assert changes[-1].startswith(f"Airplane run {run.id} is Succeeded (")
    assert "s elapsed)" in changes[-1]
    assert airplane_conn.request_counts()[GET] > len(changes)  # unchanged polls are not logged


def test_wait_for_run_timeout_does_not_cancel(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("forever", duration=600)
    run_id = hook.execute_task("forever")
    started = time.monotonic()
    with pytest.raises(AirplaneRunTimeoutError, match=r"did not finish within 0\.3s") as info:
        hook.wait_for_run(run_id, poll_interval=0.1, timeout=0.3)
    assert time.monotonic() - started < 2
    assert info.value.run.id == run_id
    assert not info.value.run.is_terminal
    assert CANCEL not in airplane_conn.request_counts()
    assert not hook.get_run(run_id).is_terminal


def test_wait_for_failed_run_returns_it(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("broken", fail=True, error="quota exceeded")
    run = hook.wait_for_run(hook.execute_task("broken"), poll_interval=0.02)
    assert run.status is RunStatus.FAILED


# Cancel -----------------------------------------------------------------------------------------------


def test_cancel_active_run(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("forever", duration=600)
    run_id = hook.execute_task("forever")
    hook.cancel_run(run_id)
    assert hook.wait_for_run(run_id, poll_interval=0.02, timeout=5).status is RunStatus.CANCELLED
    assert requests_to(airplane_conn, CANCEL)[0]["headers"]["Idempotency-Key"]


def test_cancel_finished_run_returns_it(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, logs: list[MutableMapping[str, Any]]
) -> None:
    airplane_conn.add_task("quick")
    run_id = hook.execute_task("quick")
    hook.wait_for_run(run_id, poll_interval=0.02)
    run = hook.cancel_run(run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert airplane_conn.request_counts()[CANCEL] == 1
    assert any("had already finished with status Succeeded" in entry["event"] for entry in logs)


def test_cancel_error_on_unfinished_run_raises(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("forever", duration=600)
    run_id = hook.execute_task("forever")
    airplane_conn.inject_fault(CANCEL, status=409, body='{"error": "busy"}')
    with pytest.raises(AirplaneApiError, match="busy") as info:
        hook.cancel_run(run_id)
    assert info.value.status_code == 409


def test_cancel_unknown_run_is_not_found(hook: AirplaneHook) -> None:
    with pytest.raises(AirplaneNotFoundError, match="run 'run_nope'"):
        hook.cancel_run("run_nope")


# Retries ----------------------------------------------------------------------------------------------


def test_5xx_retried_with_full_jitter_backoff(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.add_task("hello")
    run_id = hook.execute_task("hello")
    airplane_conn.inject_fault(GET, status=503, count=4)
    assert hook.get_run(run_id).id == run_id
    assert [entry["status"] for entry in requests_to(airplane_conn, GET)] == [503] * 4 + [200]
    assert len(delays) == 4
    assert all(0 <= d <= 0.1 * 2**n for n, d in enumerate(delays))


def test_backoff_base_and_cap(airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AirplaneHook, "backoff_base", 0.01)
    monkeypatch.setattr(AirplaneHook, "backoff_cap", 0.05)
    hook = AirplaneHook(max_attempts=6)
    slept: list[float] = []
    hook.jitter = lambda: 1.0

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    hook.sleep = sleep
    airplane_conn.inject_fault(LIST, status=500, count=10)
    with pytest.raises(AirplaneApiError, match="after 6 attempts") as info:
        hook.list_runs()
    assert info.value.status_code == 500
    assert slept == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])
    assert airplane_conn.request_counts()[LIST] == 6


def test_max_attempts_respected(airplane_conn: AirplaneEmulator, delays: list[float]) -> None:
    hook = AirplaneHook(max_attempts=3)
    hook.sleep = delays.append
    airplane_conn.inject_fault(LIST, status=502, count=10)
    with pytest.raises(AirplaneApiError):
        hook.list_runs()
    assert airplane_conn.request_counts()[LIST] == 3
    assert len(delays) == 2


def test_retry_after_honoured_and_garbage_ignored(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.inject_fault(LIST, status=429, headers={"Retry-After": "7"})
    airplane_conn.inject_fault(LIST, status=429, headers={"Retry-After": "soon"})
    airplane_conn.inject_fault(LIST, status=503, headers={"Retry-After": "2"})
    assert hook.list_runs() == []
    assert airplane_conn.request_counts()[LIST] == 4
    assert delays[0] == 7.0
    assert 0 <= delays[1] <= 0.2  # "soon" ignored: backoff of the second retry
    assert delays[2] == 2.0


def test_retry_after_http_date_is_honoured(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    """Issue 13.1: a rate-limited hook waits until the date instead of burning its attempts in a second."""
    airplane_conn.inject_fault(
        LIST, status=429, headers={"Retry-After": formatdate(time.time() + 20, usegmt=True)}
    )
    airplane_conn.inject_fault(LIST, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert hook.list_runs() == []
    assert 17.0 <= delays[0] <= 20.0
    assert delays[1] == 0.0  # a date in the past: retry now


def test_uri_connection_keeps_a_path_airflow_puts_in_schema(
    emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13.6: in URI form the proxy path lands in ``schema``; it must not be cut off."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRPLANE_PROXY", f"airplane://:{emulator.api_key}@proxy.example.com/airplane"
    )
    assert AirplaneHook("airplane_proxy").config.base_url == "https://proxy.example.com/airplane"


def test_replayed_run_is_not_logged_as_started(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, logs: list[MutableMapping[str, Any]]
) -> None:
    """Issue 13.6: with a given Idempotency-Key the API may answer with an earlier run, in the same words
    as for a new one (reference 6.2): the log does not claim a start, and costs no extra request."""
    airplane_conn.add_task("hello")
    first = hook.execute_task("hello", idempotency_key="key-1")
    assert hook.execute_task("hello", idempotency_key="key-1") == first
    hook.execute_task("hello")

    entries = [str(entry) for entry in logs]
    assert len([e for e in entries if "Started Airplane run" in e]) == 1  # the uuid4-keyed one only
    keyed = [e for e in entries if "started earlier by a request with this key" in e]
    assert len(keyed) == 2
    assert all(first in e and "key-1" in e for e in keyed)
    assert airplane_conn.request_counts() == {EXECUTE: 3}


def test_429_after_all_retries_is_rate_limited(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.inject_fault(LIST, status=429, count=20, headers={"Retry-After": "1"})
    with pytest.raises(AirplaneRateLimitedError, match="after 10 attempts") as info:
        hook.list_runs()
    assert info.value.status_code == 429
    assert airplane_conn.request_counts()[LIST] == 10
    assert delays == [1.0] * 9


def test_501_not_retried(hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]) -> None:
    # An empty X-Airplane-Retryable counts as absent, as from a server that does not send it.
    airplane_conn.inject_fault(LIST, status=501, headers={"X-Airplane-Retryable": ""})
    with pytest.raises(AirplaneApiError) as info:
        hook.list_runs()
    assert info.value.status_code == 501
    assert airplane_conn.request_counts()[LIST] == 1
    assert delays == []


def test_retryable_header_true_retries_a_409(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.add_task("hello")
    airplane_conn.inject_fault(EXECUTE, status=409, count=2, headers={"X-Airplane-Retryable": "true"})
    run_id = hook.execute_task("hello")
    executes = requests_to(airplane_conn, EXECUTE)
    assert [entry["status"] for entry in executes] == [409, 409, 200]
    assert len({entry["headers"]["Idempotency-Key"] for entry in executes}) == 1
    assert [run["id"] for run in airplane_conn.runs()] == [run_id]
    assert len(delays) == 2


def test_409_without_header_not_retried(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("hello")
    airplane_conn.inject_fault(EXECUTE, status=409, body='{"error": "conflict"}')
    with pytest.raises(AirplaneApiError, match="Airplane said: conflict"):
        hook.execute_task("hello")
    assert airplane_conn.request_counts()[EXECUTE] == 1


def test_retryable_header_false_stops_a_500(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.inject_fault(GET, status=500, headers={"X-Airplane-Retryable": "false"})
    with pytest.raises(AirplaneApiError) as info:
        hook.get_run("run1")
    assert info.value.status_code == 500
    assert airplane_conn.request_counts()[GET] == 1
    assert delays == []


def test_retried_execute_keeps_its_idempotency_key(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    airplane_conn.add_task("hello")
    airplane_conn.inject_fault(EXECUTE, status=500, count=2)
    run_id = hook.execute_task("hello", idempotency_key="dag.task.run.1")
    keys = [entry["headers"]["Idempotency-Key"] for entry in requests_to(airplane_conn, EXECUTE)]
    assert keys == ["dag.task.run.1"] * 3
    # The same key later (an Airflow retry) gets the same run back, not a second run.
    assert hook.execute_task("hello", idempotency_key="dag.task.run.1") == run_id
    assert len(airplane_conn.runs()) == 1


def test_dropped_answer_starts_exactly_one_run(airplane_conn: AirplaneEmulator) -> None:
    """The run is created but its answer never arrives (client timeout); the retry replays it."""
    airplane_conn.add_task("hello")
    airplane_conn.inject_fault(EXECUTE, delay=3.0)
    hook = AirplaneHook(timeout=1.0)
    hook.sleep = lambda seconds: wait_until(  # until the first request has created the run on the server
        lambda: airplane_conn.runs() or None, timeout=30, interval=0.05, what="the first request's run"
    )
    run_id = hook.execute_task("hello")
    executes = requests_to(airplane_conn, EXECUTE)
    assert [entry["status"] for entry in executes] == [200, 200]  # the first one started the run
    assert executes[0]["headers"]["Idempotency-Key"] == executes[1]["headers"]["Idempotency-Key"]
    assert [run["id"] for run in airplane_conn.runs()] == [run_id]


def test_dropped_connection_is_retried(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.add_task("hello")
    airplane_conn.inject_fault(EXECUTE, drop=True)
    run_id = hook.execute_task("hello")
    executes = requests_to(airplane_conn, EXECUTE)
    assert len(executes) == 2
    assert executes[0]["status"] is None
    assert len({entry["headers"]["Idempotency-Key"] for entry in executes}) == 1
    assert [run["id"] for run in airplane_conn.runs()] == [run_id]
    assert len(delays) == 1


def test_timeouts_retried_then_no_answer(airplane_conn: AirplaneEmulator, delays: list[float]) -> None:
    airplane_conn.inject_fault(LIST, delay=0.5, count=2)
    hook = AirplaneHook(timeout=0.1, max_attempts=2)
    hook.sleep = delays.append
    with pytest.raises(AirplaneApiError, match=r"no answer within 0.1s") as info:
        hook.list_runs()
    assert info.value.status_code is None
    assert airplane_conn.request_counts()[LIST] == 2


def test_unreachable_host_after_retries(monkeypatch: pytest.MonkeyPatch, delays: list[float]) -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    set_conn(monkeypatch, "nowhere", host=host, password=OTHER_KEY)
    hook = AirplaneHook("nowhere", max_attempts=4)
    hook.sleep = delays.append
    with pytest.raises(AirplaneApiError) as info:
        hook.get_run("run1")
    error = info.value
    assert error.status_code is None
    assert host in str(error)
    assert "after 4 attempts (connection refused)" in str(error)
    assert len(delays) == 3


# Errors -----------------------------------------------------------------------------------------------


def test_html_error_page_from_a_proxy(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>" + "x" * 500
    airplane_conn.inject_fault(GET, status=502, body=page, count=20)
    hook.max_attempts = 2
    with pytest.raises(AirplaneApiError) as info:
        hook.get_run("run1")
    text = str(info.value)
    assert info.value.status_code == 502
    assert "HTML, not JSON" in text
    assert "502 Bad Gateway" in text
    assert "x" * 300 not in text  # a snippet, not the page
    assert f"GET {airplane_conn.url}/v0/runs/get" in text
    assert "after 2 attempts" in text


def test_truncated_json_on_200_is_retried(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    """A body cut short by a proxy is transient: the next answer is the API's own."""
    airplane_conn.add_task("hello")
    run_id = hook.execute_task("hello")
    airplane_conn.inject_fault(GET, status=200, body='{"id": "run1", "stat')
    assert hook.get_run(run_id).id == run_id
    assert airplane_conn.request_counts()[GET] == 2
    assert len(delays) == 1


def test_truncated_json_on_every_200_gives_up_with_the_reason(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    airplane_conn.inject_fault(GET, status=200, body='{"id": "run1", "stat', count=50)
    with pytest.raises(AirplaneApiError, match="cut short or corrupt") as info:
        hook.get_run("run1")
    assert info.value.status_code == 200
    assert airplane_conn.request_counts()[GET] == hook.max_attempts


def test_401_wrong_key(emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "wrong", host=emulator.url, password="tkn_wrong_key_123")
    with pytest.raises(AirplaneAuthError, match=r"API key was rejected.*check the password") as info:
        AirplaneHook("wrong").list_runs()
    assert info.value.status_code == 401
    assert "Invalid API key" in str(info.value)
    assert emulator.request_counts()[LIST] == 1


def test_403_key_without_permission(emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.add_key("tkn_read_nothing", allowed=False)
    set_conn(monkeypatch, "weak", host=emulator.url, password="tkn_read_nothing")
    with pytest.raises(AirplaneAuthError, match="lacks permission") as info:
        AirplaneHook("weak").get_run("run1")
    assert info.value.status_code == 403


def test_404_on_execute_names_task_and_environment(hook: AirplaneHook) -> None:
    with pytest.raises(AirplaneNotFoundError) as info:
        hook.execute_task("no_such_task")
    text = str(info.value)
    assert "task slug 'no_such_task'" in text
    assert "environment 'prod'" in text
    with pytest.raises(AirplaneNotFoundError, match="task ID 'tsk_nope'"):
        hook.execute_task(task_id="tsk_nope")


def test_404_on_run_names_the_run(hook: AirplaneHook) -> None:
    with pytest.raises(AirplaneNotFoundError, match="run 'run_missing'"):
        hook.get_run("run_missing")
    with pytest.raises(AirplaneNotFoundError, match="run 'run_missing'"):
        hook.get_run_outputs("run_missing")


def test_task_that_must_be_requested(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("guarded", requires_request=True)
    with pytest.raises(AirplaneApprovalRequiredError, match="needs an approved request in Airplane") as info:
        hook.execute_task("guarded")
    assert info.value.code == "task_must_be_requested"
    assert airplane_conn.request_counts()[EXECUTE] == 1


def test_redirect_not_followed(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.inject_fault(LIST, status=301, body="moved", headers={"Location": "https://evil.test/v0"})
    with pytest.raises(AirplaneApiError, match=r"redirect to 'https://evil\.test/v0'"):
        hook.list_runs()


# Tolerant parsing -------------------------------------------------------------------------------------


def test_wrapped_run_with_run_id_key(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    body = {"run": {"runID": "run_legacy", "status": "Active", "createdAt": "", "zoneID": ""}}
    airplane_conn.inject_fault(GET, status=200, body=json.dumps(body))
    run = hook.get_run("run_legacy")
    assert run.id == "run_legacy"
    assert run.status is RunStatus.ACTIVE
    assert run.created_at is None
    assert run.zone_id is None


def test_execute_answer_with_id_instead_of_run_id(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    airplane_conn.inject_fault(EXECUTE, status=200, body='{"id": "run_from_id"}')
    assert hook.execute_task("anything") == "run_from_id"
    airplane_conn.inject_fault(EXECUTE, status=200, body='{"isCached": false}', count=20)
    with pytest.raises(AirplaneApiError, match="no runID"):
        hook.execute_task("anything")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"output": [1, 2]}', [1, 2]),
        ('{"output": null}', None),
        ("{}", None),
        ('{"outputs": {"output": ["legacy"]}}', {"output": ["legacy"]}),
        ('{"output": "new", "outputs": "old"}', "new"),
    ],
)
def test_outputs_current_and_legacy_forms(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, body: str, expected: Any
) -> None:
    airplane_conn.add_task("quick")
    run_id = hook.execute_task("quick")
    airplane_conn.inject_fault(OUTPUTS, status=200, body=body)
    assert hook.get_run_outputs(run_id) == expected


def test_run_in_storage_zone_has_no_outputs(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator, logs: list[MutableMapping[str, Any]]
) -> None:
    body = {"id": "run_zoned", "status": "Succeeded", "zoneID": "zon20230224zu6zo7yyn65"}
    airplane_conn.inject_fault(GET, status=200, body=json.dumps(body))
    assert hook.get_run_outputs("run_zoned") is None
    assert OUTPUTS not in airplane_conn.request_counts()
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert any("self-hosted storage zone zon20230224zu6zo7yyn65" in w for w in warnings)


# test_connection --------------------------------------------------------------------------------------


def test_test_connection_ok(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert airplane_conn.url in message
    assert requests_to(airplane_conn, LIST)[0]["query"] == {"limit": "1"}


def test_test_connection_wrong_key(emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "wrong", host=emulator.url, password="tkn_wrong_key_123")
    ok, message = AirplaneHook("wrong").test_connection()
    assert not ok
    assert "rejected the API key (HTTP 401)" in message
    assert "password" in message


def test_test_connection_key_without_permission(
    emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.add_key("tkn_read_nothing", allowed=False)
    set_conn(monkeypatch, "weak", host=emulator.url, password="tkn_read_nothing")
    ok, message = AirplaneHook("weak").test_connection()
    assert not ok
    assert "valid but lacks permission" in message


@pytest.mark.parametrize(
    "fault",
    [
        None,  # a path that serves nothing: 404
        # A wrong host answers so every time (a 2xx that is not the API's JSON is retried once).
        {"status": 200, "body": "<html><body>Welcome to nginx!</body></html>", "count": 5},
        {"status": 200, "body": '{"hello": "world"}', "count": 5},
        {"status": 500, "body": "<html>oops</html>", "count": 5},
    ],
)
def test_test_connection_wrong_host(
    emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch, fault: dict[str, Any] | None
) -> None:
    if fault is None:
        set_conn(monkeypatch, "elsewhere", host=f"{emulator.url}/not-airplane", password=emulator.api_key)
    else:
        set_conn(monkeypatch, "elsewhere", host=emulator.url, password=emulator.api_key)
        emulator.inject_fault(LIST, **fault)
    hook = AirplaneHook("elsewhere")
    hook.sleep = lambda seconds: None
    ok, message = hook.test_connection()
    assert not ok
    assert "does not look like the Airplane API" in message
    assert "https://api.airplane.dev" in message
    assert sum(emulator.request_counts().values()) <= 2


def test_test_connection_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "nowhere", host=f"http://127.0.0.1:{closed_port()}", password=OTHER_KEY)
    started = time.monotonic()
    ok, message = AirplaneHook("nowhere").test_connection()
    assert not ok
    assert "Cannot reach the Airplane API" in message
    assert "connection refused" in message
    assert time.monotonic() - started < 2  # two attempts, short backoff


def test_test_connection_unknown_host(monkeypatch: pytest.MonkeyPatch) -> None:
    host = "airplane-provider-test.invalid"  # reserved: never resolves (RFC 2606)
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror:
        pass
    else:
        pytest.skip("this resolver answers for .invalid names")
    set_conn(monkeypatch, "unknown", host=host, password=OTHER_KEY)
    ok, message = AirplaneHook("unknown").test_connection()
    assert not ok
    assert f"the host name in https://{host} does not resolve" in message


def test_test_connection_few_attempts(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.inject_fault(LIST, status=503, count=20)
    ok, message = hook.test_connection()
    assert not ok
    assert "HTTP 503" in message
    assert airplane_conn.request_counts()[LIST] == 2


def test_test_connection_undefined_connection() -> None:
    ok, message = AirplaneHook("airplane_not_defined_anywhere").test_connection()
    assert not ok
    assert "airplane_not_defined_anywhere" in message


def test_test_connection_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "nokey", host="api.airplane.dev")
    ok, message = AirplaneHook("nokey").test_connection()
    assert not ok
    assert "has no API key" in message


# Secrets ----------------------------------------------------------------------------------------------


def test_key_never_in_errors_logs_or_repr(
    hook: AirplaneHook,
    airplane_conn: AirplaneEmulator,
    monkeypatch: pytest.MonkeyPatch,
    logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    key = airplane_conn.api_key
    errors: list[BaseException] = []
    airplane_conn.inject_fault(LIST, status=400, body=json.dumps({"error": f"bad key {key}"}))
    airplane_conn.inject_fault(GET, status=500, count=3, body=f"<html>{key}</html>")
    hook.max_attempts = 3
    for call in (hook.list_runs, lambda: hook.get_run("run1"), lambda: hook.get_run("run_missing")):
        with pytest.raises(AirplaneApiError) as info:
            call()
        errors.append(info.value)
    set_conn(monkeypatch, "nowhere", host=f"http://127.0.0.1:{closed_port()}", password=key)
    unreachable = AirplaneHook("nowhere", max_attempts=2)
    unreachable.sleep = lambda seconds: None
    with pytest.raises(AirplaneApiError) as info:
        unreachable.get_run("run1")
    errors.append(info.value)
    assert hook.test_connection()[0]
    assert "***" in str(errors[0])
    texts = (
        [str(e) for e in errors]
        + [repr(e) for e in errors]
        + [repr(hook), repr(hook.config), str(hook.config)]
    )
    texts += [log_text(logs), caplog.text, *capfd.readouterr()]
    for text in texts:
        assert key not in text


def test_key_is_masked(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    from airflow.providers.common.compat.sdk import redact

    hook.get_run_url("run1")  # reads the connection
    assert airplane_conn.api_key not in str(redact(f"key={airplane_conn.api_key}"))


def test_connection_problems_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "ftp", host="ftp://api.airplane.dev", password=OTHER_KEY)
    with pytest.raises(Exception, match="not an http"):
        AirplaneHook("ftp").get_run_url("run1")
    set_conn(monkeypatch, "both", password=OTHER_KEY, extra={"env_slug": "prod", "env_id": "env1"})
    with pytest.raises(Exception, match="both env_slug and env_id"):
        AirplaneHook("both").get_run_url("run1")
    set_conn(monkeypatch, "badtimeout", password=OTHER_KEY, extra={"timeout": "soon"})
    with pytest.raises(Exception, match="extra 'timeout'"):
        AirplaneHook("badtimeout").get_run_url("run1")


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        AirplaneHook(max_attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        AirplaneHook(timeout=-1)


def test_session_is_reused(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    session = hook.get_conn()
    hook.list_runs()
    hook.list_runs()
    assert hook.get_conn() is session
    hook.close()
    assert hook.get_conn() is not session


# UI (Airflow 3.1 reads these; 3.2+ reads provider info) -----------------------------------------------


def test_legacy_ui_methods_mirror_provider_info(monkeypatch: pytest.MonkeyPatch) -> None:
    info = get_provider_info()["connection-types"][0]
    behaviour = AirplaneHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == info["ui-field-behaviour"]["hidden-fields"]
    assert behaviour["relabeling"] == info["ui-field-behaviour"]["relabeling"]
    assert behaviour["placeholders"] == info["ui-field-behaviour"]["placeholders"]
    # Airflow 3.1 imports hooks with FAB/wtforms mocked; do the same.
    for name in ("flask_appbuilder", "flask_appbuilder.fieldwidgets", "flask_babel", "wtforms"):
        monkeypatch.setitem(sys.modules, name, mock.MagicMock())
    assert set(AirplaneHook.get_connection_form_widgets()) == set(info["conn-fields"])


def test_hook_class_attributes() -> None:
    assert AirplaneHook.conn_type == "airplane"
    assert AirplaneHook.conn_name_attr == "airplane_conn_id"
    assert AirplaneHook.default_conn_name == "airplane_default"
    assert AirplaneHook.hook_name == "Airplane"
    assert AirplaneHook().airplane_conn_id == "airplane_default"
