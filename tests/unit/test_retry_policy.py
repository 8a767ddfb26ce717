"""The ``retry_policy`` recipe of docs/retries.md (Airflow 3.3, AIP-105) decides right for each typed error.

A cancelled run and an auth error fail without a retry, a rate limit is retried after the policy's own
delay, and anything else falls through to the task's ``retries``. Checked on the policy itself and on
real task runs with ``dag.test()``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneAuthError,
    AirplaneNotFoundError,
    AirplaneRateLimitedError,
    AirplaneRunCancelledError,
    AirplaneRunFailedError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.models import AirplaneRun, RunStatus
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="retry_policy needs Airflow 3.3")

EXECUTE = "/v0/tasks/execute"

# The docs/retries.md recipe, with the rate-limit delay as a parameter so the test need not wait 5 minutes.
RECIPE = """
from datetime import timedelta

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

from airflow_provider_airplane.exceptions import (
    AirplaneApprovalRequiredError,
    AirplaneAuthError,
    AirplaneNotFoundError,
    AirplaneRateLimitedError,
    AirplaneRunCancelledError,
)


def airplane_retry_policy(rate_limit_delay: timedelta = timedelta(minutes=5)) -> ExceptionRetryPolicy:
    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=AirplaneRunCancelledError,
                action=RetryAction.FAIL,
                reason="somebody cancelled the Airplane run",
            ),
            RetryRule(
                exception=[AirplaneAuthError, AirplaneApprovalRequiredError, AirplaneNotFoundError],
                action=RetryAction.FAIL,
                reason="fix the connection or the task: another try would fail the same way",
            ),
            RetryRule(
                exception=AirplaneRateLimitedError,
                action=RetryAction.RETRY,
                retry_delay=rate_limit_delay,
                reason="Airplane is rate limiting this API key",
            ),
        ],
    )
"""

DAGS = (
    RECIPE
    + """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor

POLICY = airplane_retry_policy(rate_limit_delay=timedelta(seconds=1))
START = datetime(2026, 1, 1)
# A task's own retry_delay is long: a retry that comes quickly proves the policy's delay was used.
DEFAULTS = {"retries": 2, "retry_delay": timedelta(seconds=1), "retry_policy": POLICY}

with DAG("retry_policy_auth", schedule=None, start_date=START, catchup=False, default_args=DEFAULTS):
    AirplaneExecuteTaskOperator(task_id="run", slug="quick", airplane_conn_id="airplane_wrong_key")

with DAG("retry_policy_cancelled", schedule=None, start_date=START, catchup=False, default_args=DEFAULTS):
    AirplaneRunSensor(task_id="watch", run_id="{{ dag_run.conf['run_id'] }}", poke_interval=0.2, timeout=30)

with DAG("retry_policy_rate_limited", schedule=None, start_date=START, catchup=False, default_args=DEFAULTS):
    AirplaneExecuteTaskOperator(
        task_id="run", slug="quick", poll_interval=0.2, retries=1, retry_delay=timedelta(seconds=60)
    )

with DAG("retry_policy_run_failed", schedule=None, start_date=START, catchup=False, default_args=DEFAULTS):
    AirplaneExecuteTaskOperator(task_id="run", slug="broken", poll_interval=0.2, retries=1)
"""
)


def policy_module() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(RECIPE, "recipe", "exec"), namespace)
    return namespace


def run_of(status: RunStatus) -> AirplaneRun:
    return AirplaneRun(id="run_1", status=status)


@pytest.mark.parametrize(
    ("error", "action", "delay"),
    [
        (AirplaneRunCancelledError(run_of(RunStatus.CANCELLED), "cancelled"), "fail", None),
        (AirplaneAuthError(401, None, "key rejected"), "fail", None),
        (AirplaneNotFoundError(404, None, "no such task"), "fail", None),
        (AirplaneRateLimitedError(429, None, "slow down"), "retry", timedelta(minutes=5)),
        (AirplaneRunFailedError(run_of(RunStatus.FAILED), "failed"), "default", None),
        (AirplaneApiError(None, None, "no answer"), "default", None),
    ],
    ids=["cancelled", "auth", "not_found", "rate_limited", "run_failed", "no_answer"],
)
def test_the_recipe_decides(error: Exception, action: str, delay: timedelta | None) -> None:
    decision = policy_module()["airplane_retry_policy"]().evaluate(error, try_number=1, max_tries=3)
    assert (decision.action.value, decision.retry_delay) == (action, delay)


@pytest.fixture
def policy_dags(example_emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The DAGs using the recipe, in the DAG folder for this test only; fast HTTP retries in the task."""
    example_emulator.add_task("quick", output={"rows": 1}, duration=0.2)
    example_emulator.add_task("broken", fail=True, error="quota exceeded", duration=0.2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRPLANE_WRONG_KEY",
        f'{{"conn_type": "airplane", "host": "{example_emulator.url}", "password": "tkn_wrong"}}',
    )
    monkeypatch.setattr(AirplaneHook, "backoff_base", 0.001)
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "retry_policy_recipe.py"
    dag_file.write_text(DAGS)
    try:
        yield
    finally:
        dag_file.unlink()


def attempts(dag_id: str, task_id: str) -> tuple[int, str]:
    """How many tries the task had in its latest run, and the state it ended in."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id)
            .order_by(TaskInstance.start_date.desc())
        ).first()
        assert ti is not None
        earlier = session.scalar(
            select(func.count())
            .select_from(TaskInstanceHistory)
            .where(TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == ti.run_id)
        )
        return int(earlier or 0) + 1, str(ti.state)


def decisions(capfd: pytest.CaptureFixture[str]) -> str:
    """What the task runner logged (the policy's decision and reason are logged there)."""
    out, err = capfd.readouterr()
    return out + err


@pytest.mark.slow
def test_auth_error_fails_without_retry(
    policy_dags: None, run_dag: Callable[..., Any], capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag("retry_policy_auth")
    assert result.state_of("run") == "failed"
    assert attempts("retry_policy_auth", "run") == (1, "failed")  # retries=2, none used
    logged = decisions(capfd)
    assert "Retry policy decision" in logged
    assert "another try would fail the same way" in logged
    assert "action=fail" in logged


@pytest.mark.slow
def test_cancelled_run_fails_without_retry(
    policy_dags: None, example_emulator: AirplaneEmulator, run_dag: Callable[..., Any]
) -> None:
    hook = AirplaneHook()
    run_id = hook.execute_task("export_warehouse")
    hook.cancel_run(run_id)
    result = run_dag("retry_policy_cancelled", conf={"run_id": run_id})
    assert result.state_of("watch") == "failed"
    # AirplaneRunCancelledError is an AirflowFailException: Airflow fails it before asking the policy.
    assert attempts("retry_policy_cancelled", "watch") == (1, "failed")


@pytest.mark.slow
def test_rate_limit_is_retried_after_the_policy_delay(
    policy_dags: None,
    example_emulator: AirplaneEmulator,
    run_dag: Callable[..., Any],
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Every HTTP attempt of the first try gets 429 (the hook makes 10); the second try gets through.
    example_emulator.inject_fault(EXECUTE, status=429, count=10)
    started = time.monotonic()
    result = run_dag("retry_policy_rate_limited")
    elapsed = time.monotonic() - started
    assert attempts("retry_policy_rate_limited", "run") == (2, "success")
    logged = decisions(capfd)
    assert "Retry policy decision" in logged
    assert "Airplane is rate limiting this API key" in logged
    assert "action=retry" in logged
    assert result.xcom("run") == {"rows": 1}
    assert elapsed < 45, "the retry waited for the task's retry_delay (60 s), not the policy's (1 s)"
    assert len(example_emulator.runs()) == 1


@pytest.mark.slow
def test_other_errors_use_the_task_retries(
    policy_dags: None, example_emulator: AirplaneEmulator, run_dag: Callable[..., Any]
) -> None:
    result = run_dag("retry_policy_run_failed")
    assert result.state_of("run") == "failed"
    assert attempts("retry_policy_run_failed", "run") == (2, "failed")  # retries=1: the default applies
    assert len(example_emulator.runs()) == 2
