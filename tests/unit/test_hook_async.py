"""AirplaneAsyncHook over real HTTP: the sync hook's rules, and nothing blocking on the event loop."""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from typing import Any

import pytest
import requests
import structlog.testing
from airflow.providers.common.compat.sdk import BaseHook, Connection, mask_secret

from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneApprovalRequiredError,
    AirplaneAuthError,
    AirplaneNotFoundError,
    AirplaneRateLimitedError,
)
from airflow_provider_airplane.hooks import airplane as airplane_hooks
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.models import RunStatus
from airflow_provider_airplane.testing import AirplaneEmulator

EXECUTE = "/v0/tasks/execute"
GET = "/v0/runs/get"
OUTPUTS = "/v0/runs/getOutputs"
LIST = "/v0/runs/list"
CANCEL = "/v0/runs/cancel"


@pytest.fixture
def no_blocking_on_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the blocking calls a trigger must avoid raise when made on the event loop's thread."""
    loop_threads: set[int] = set()

    def guard(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() in loop_threads:
                raise AssertionError(f"blocking {name} on the event loop's thread")
            return call(*args, **kwargs)

        return guarded

    monkeypatch.setattr(requests.Session, "request", guard("requests", requests.Session.request))
    get_connection = BaseHook.get_connection.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        BaseHook,
        "get_connection",
        classmethod(guard("BaseHook.get_connection", get_connection)),
    )
    extra_dejson = inspect.getattr_static(Connection, "extra_dejson")
    monkeypatch.setattr(
        Connection, "extra_dejson", property(guard("Connection.extra_dejson", extra_dejson.fget))
    )
    monkeypatch.setattr(airplane_hooks, "mask_secret", guard("mask_secret", mask_secret))
    loop_threads.add(threading.get_ident())  # async tests run their loop on this thread
    yield
    loop_threads.clear()


@pytest.fixture
def delays() -> list[float]:
    return []


@pytest.fixture
async def hook(
    airplane_conn: AirplaneEmulator, delays: list[float], no_blocking_on_loop: None
) -> AsyncIterator[AirplaneAsyncHook]:
    async def record(seconds: float) -> None:
        delays.append(seconds)

    async with AirplaneAsyncHook() as h:
        h.sleep = record
        yield h


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "airplane", **fields}))


def finished_run(emu: AirplaneEmulator, slug: str = "quick", **task: Any) -> str:
    """A run started with the sync hook (outside the loop guard) that has already finished."""
    emu.add_task(slug, **task)
    sync = AirplaneHook()
    run_id = sync.execute_task(slug)
    sync.wait_for_run(run_id, poll_interval=0.02)
    return run_id


async def test_the_guard_catches_blocking_calls(
    airplane_conn: AirplaneEmulator, no_blocking_on_loop: None
) -> None:
    with pytest.raises(AssertionError, match=r"blocking BaseHook\.get_connection"):
        AirplaneHook().get_run("run1")


async def test_reads(airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = finished_run(airplane_conn, output={"rows": 3})
    airplane_conn.add_task("forever", duration=600)
    active_id = AirplaneHook().execute_task("forever")
    with monkeypatch.context() as patch:
        patch.setattr(requests.Session, "request", None)  # the async hook must not touch requests
        async with AirplaneAsyncHook() as hook:
            run = await hook.get_run(run_id)
            assert run.status is RunStatus.SUCCEEDED
            assert await hook.get_run_outputs(run_id) == {"rows": 3}
            assert await hook.get_run_outputs(run) == {"rows": 3}
            assert {r.id for r in await hook.list_runs(limit=10)} == {run_id, active_id}
            assert [r.id for r in await hook.list_runs(task_slug="forever")] == [active_id]
            cancelled = await hook.cancel_run(active_id)
            assert cancelled.id == active_id
            config = await hook.get_config()
    assert config.env_slug == "prod"
    headers = airplane_conn.request_log()[-1]["headers"]
    assert headers["X-Airplane-Env-Slug"] == "prod"
    assert headers["User-Agent"].startswith("airflow-provider-airplane/")
    cancel = next(entry for entry in airplane_conn.request_log() if entry["path"] == CANCEL)
    assert cancel["headers"]["Idempotency-Key"]
    assert AirplaneHook().get_run(active_id).status is RunStatus.CANCELLED


async def test_no_blocking_call_on_the_loop(
    airplane_conn: AirplaneEmulator, no_blocking_on_loop: None, delays: list[float]
) -> None:
    """Connection lookup, extras, masking and HTTP all stay off the loop's thread (or are async)."""
    hook = AirplaneAsyncHook(env_slug="staging")
    try:
        assert await hook.list_runs() == []
        assert (await hook.get_config()).env_slug == "staging"
    finally:
        await hook.close()


async def test_one_session_per_hook(hook: AirplaneAsyncHook) -> None:
    await hook.list_runs()
    session = hook._session
    await hook.list_runs()
    assert hook._session is session
    assert session is not None
    await hook.close()
    assert session.closed
    await hook.list_runs()  # a new session after close
    assert hook._session is not session


async def test_async_with_closes_the_session(
    airplane_conn: AirplaneEmulator, no_blocking_on_loop: None
) -> None:
    async with AirplaneAsyncHook() as hook:
        await hook.list_runs()
        session = hook._session
    assert session is not None
    assert session.closed


async def test_5xx_retried(
    hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.inject_fault(LIST, status=503, count=3)
    assert await hook.list_runs() == []
    assert airplane_conn.request_counts()[LIST] == 4
    assert len(delays) == 3
    assert all(0 <= d <= 0.1 * 2**n for n, d in enumerate(delays))


async def test_max_attempts_and_backoff(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_base", 0.001)
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_cap", 0.004)
    airplane_conn.inject_fault(GET, status=500, count=10)
    async with AirplaneAsyncHook(max_attempts=5) as hook:
        hook.jitter = lambda: 1.0
        slept: list[float] = []
        real_sleep = hook.sleep

        async def record(seconds: float) -> None:
            slept.append(seconds)
            await real_sleep(seconds)

        hook.sleep = record
        with pytest.raises(AirplaneApiError, match="after 5 attempts") as info:
            await hook.get_run("run1")
    assert info.value.status_code == 500
    assert airplane_conn.request_counts()[GET] == 5
    assert slept == pytest.approx([0.001, 0.002, 0.004, 0.004])


async def test_retry_after(
    hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    airplane_conn.inject_fault(LIST, status=429, headers={"Retry-After": "3"})
    airplane_conn.inject_fault(LIST, status=429, headers={"Retry-After": "-1"})
    await hook.list_runs()
    assert delays[0] == 3.0
    assert 0 <= delays[1] <= 0.2


async def test_429_exhausted(
    hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator, delays: list[float]
) -> None:
    hook.max_attempts = 3
    airplane_conn.inject_fault(LIST, status=429, count=5)
    with pytest.raises(AirplaneRateLimitedError):
        await hook.list_runs()
    assert airplane_conn.request_counts()[LIST] == 3


async def test_501_not_retried(hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.inject_fault(GET, status=501, headers={"X-Airplane-Retryable": ""})
    with pytest.raises(AirplaneApiError) as info:
        await hook.get_run("run1")
    assert info.value.status_code == 501
    assert airplane_conn.request_counts()[GET] == 1


async def test_retryable_header_both_ways(hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.inject_fault(LIST, status=409, count=2, headers={"X-Airplane-Retryable": "true"})
    assert await hook.list_runs() == []
    assert airplane_conn.request_counts()[LIST] == 3
    airplane_conn.inject_fault(LIST, status=503, headers={"X-Airplane-Retryable": "false"})
    with pytest.raises(AirplaneApiError):
        await hook.list_runs()
    assert airplane_conn.request_counts()[LIST] == 4


async def test_dropped_and_slow_answers_retried(
    airplane_conn: AirplaneEmulator, no_blocking_on_loop: None
) -> None:
    airplane_conn.inject_fault(LIST, drop=True)
    airplane_conn.inject_fault(LIST, delay=5.0)
    async with AirplaneAsyncHook(timeout=1.0) as hook:
        hook.backoff_base = 0.001
        assert await hook.list_runs() == []
    assert airplane_conn.request_counts()[LIST] == 3


async def test_unreachable(
    monkeypatch: pytest.MonkeyPatch, delays: list[float], no_blocking_on_loop: None
) -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    set_conn(monkeypatch, "nowhere", host=host, password="tkn_nowhere_value")
    async with AirplaneAsyncHook("nowhere", max_attempts=3) as hook:

        async def record(seconds: float) -> None:
            delays.append(seconds)

        hook.sleep = record
        with pytest.raises(AirplaneApiError) as info:
            await hook.get_run("run1")
    assert info.value.status_code is None
    assert host in str(info.value)
    assert "connection refused" in str(info.value)
    assert len(delays) == 2


async def test_html_page_and_truncated_json(hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator) -> None:
    hook.max_attempts = 2
    airplane_conn.inject_fault(GET, status=502, count=2, body="<html><h1>502 Bad Gateway</h1></html>")
    with pytest.raises(AirplaneApiError, match=r"HTML, not JSON.*502 Bad Gateway") as info:
        await hook.get_run("run1")
    assert info.value.status_code == 502
    airplane_conn.inject_fault(LIST, status=200, body='{"runs": [{"id": ', count=2)
    with pytest.raises(AirplaneApiError, match="cut short or corrupt"):
        await hook.list_runs()
    airplane_conn.inject_fault(LIST, status=200, body='{"runs": [{"id": ')
    assert await hook.list_runs() == []  # one body cut short is retried


async def test_typed_errors(
    hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AirplaneNotFoundError, match="run 'run_missing'"):
        await hook.get_run("run_missing")
    airplane_conn.inject_fault(
        GET, status=400, body='{"error": "needs approval", "code": "task_must_be_requested"}'
    )
    with pytest.raises(AirplaneApprovalRequiredError):
        await hook.get_run("run1")
    set_conn(monkeypatch, "wrong", host=airplane_conn.url, password="tkn_wrong_key_123")
    async with AirplaneAsyncHook("wrong") as wrong:
        with pytest.raises(AirplaneAuthError, match="API key was rejected") as info:
            await wrong.list_runs()
    assert "tkn_wrong_key_123" not in str(info.value)


async def test_cancel_finished_run(
    airplane_conn: AirplaneEmulator, no_blocking_on_loop: None, logs: list[MutableMapping[str, Any]]
) -> None:
    run_id = await asyncio.to_thread(finished_run, airplane_conn)
    async with AirplaneAsyncHook() as hook:
        run = await hook.cancel_run(run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert airplane_conn.request_counts()[CANCEL] == 1
    assert any("had already finished" in entry["event"] for entry in logs)


async def test_zone_outputs(
    hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator, logs: list[MutableMapping[str, Any]]
) -> None:
    airplane_conn.inject_fault(
        GET, status=200, body='{"id": "run_z", "status": "Succeeded", "zoneID": "zon1"}'
    )
    assert await hook.get_run_outputs("run_z") is None
    assert OUTPUTS not in airplane_conn.request_counts()
    assert any("storage zone zon1" in entry["event"] for entry in logs if entry["log_level"] == "warning")


async def test_validation_before_any_request(
    hook: AirplaneAsyncHook, airplane_conn: AirplaneEmulator
) -> None:
    with pytest.raises(ValueError, match="unrendered Jinja"):
        await hook.get_run("{{ ti.xcom_pull() }}")
    with pytest.raises(ValueError, match="no time zone"):
        await hook.list_runs(since="2024-01-01T00:00:00")
    assert airplane_conn.request_counts() == {}
