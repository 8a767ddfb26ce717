"""The terminal-state function: every finished run maps to success or the right typed error."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_airplane._outcome import MAX_ERROR_CHARS, raise_for_run
from airflow_provider_airplane.exceptions import (
    AirplaneError,
    AirplaneRunCancelledError,
    AirplaneRunFailedError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.models import AirplaneRun, RunStatus
from airflow_provider_airplane.testing import AirplaneEmulator

URL = "https://app.example.test/runs/x"


def finished_run(hook: AirplaneHook, slug: str) -> AirplaneRun:
    return hook.wait_for_run(hook.execute_task(slug), poll_interval=0.05, timeout=10)


@pytest.fixture
def hook(airplane_conn: AirplaneEmulator) -> AirplaneHook:
    return AirplaneHook()


def test_succeeded_run_is_success(airplane_conn: AirplaneEmulator, hook: AirplaneHook) -> None:
    airplane_conn.add_task("ok", output={"rows": 1})
    raise_for_run(hook, finished_run(hook, "ok"), run_url=URL)


def test_failed_run_carries_error_output_and_url(airplane_conn: AirplaneEmulator, hook: AirplaneHook) -> None:
    airplane_conn.add_task("bad", fail=True, error="quota exceeded")
    run = finished_run(hook, "bad")
    with pytest.raises(AirplaneRunFailedError, match="quota exceeded") as err:
        raise_for_run(hook, run, run_url=URL)
    assert URL in str(err.value)
    assert err.value.run.status == RunStatus.FAILED
    assert not isinstance(err.value, AirflowFailException)  # a failed run may be retried


def test_long_error_is_truncated(airplane_conn: AirplaneEmulator, hook: AirplaneHook) -> None:
    airplane_conn.add_task("bad", fail=True, error="x" * (MAX_ERROR_CHARS + 500))
    with pytest.raises(AirplaneRunFailedError, match=r"\(500 more characters\)") as err:
        raise_for_run(hook, finished_run(hook, "bad"), run_url=URL)
    assert len(str(err.value)) < MAX_ERROR_CHARS + 300


def test_failed_run_with_unreadable_outputs_still_fails(
    airplane_conn: AirplaneEmulator, hook: AirplaneHook
) -> None:
    airplane_conn.add_task("bad", fail=True, error="quota exceeded")
    run = finished_run(hook, "bad")
    airplane_conn.inject_fault("/v0/runs/getOutputs", status=404)
    with pytest.raises(AirplaneRunFailedError, match="could not be read"):
        raise_for_run(hook, run, run_url=URL)


def test_failed_run_in_storage_zone_says_why_there_is_no_error(hook: AirplaneHook) -> None:
    run = AirplaneRun(id="run1", status=RunStatus.FAILED, zone_id="zon1")
    with pytest.raises(AirplaneRunFailedError, match="storage zone zon1"):
        raise_for_run(hook, run, run_url=URL)


def test_cancelled_run_is_not_retried(airplane_conn: AirplaneEmulator, hook: AirplaneHook) -> None:
    airplane_conn.add_task("long", duration=60)
    run = hook.cancel_run(hook.execute_task("long"))
    assert run.status == RunStatus.CANCELLED
    with pytest.raises(AirplaneRunCancelledError, match="was cancelled by") as err:
        raise_for_run(hook, run, run_url=URL)
    assert isinstance(err.value, AirflowFailException)
    assert URL in str(err.value)


@pytest.mark.parametrize("status", [RunStatus.ACTIVE, RunStatus.QUEUED, "Paused"])
def test_unfinished_run_is_an_error(hook: AirplaneHook, status: RunStatus | str) -> None:
    run = AirplaneRun(id="run1", status=status)
    with pytest.raises(AirplaneError, match="has not finished") as err:
        raise_for_run(hook, run, run_url=URL)
    assert not isinstance(err.value, AirplaneRunFailedError | AirplaneRunCancelledError)
