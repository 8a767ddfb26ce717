"""Deferred Airplane tasks in a real Airflow: api-server, scheduler, dag-processor and triggerer processes.

Each test triggers a DAG through the REST API, acts on it the way a user or an outage would, and checks
the Airplane side on the standalone emulator the components talk to.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from airflow_stack import AirflowStack, wait_until

from airflow_provider_airplane.testing import EmulatorClient
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = "run"


def airplane_run(emulator: EmulatorClient, run_id: str) -> dict[str, Any]:
    return next(run for run in emulator.runs() if run["id"] == run_id)


def wait_run_status(emulator: EmulatorClient, run_id: str, status: str, timeout: float) -> None:
    wait_until(
        lambda: True if airplane_run(emulator, run_id)["status"] == status else None,
        timeout=timeout,
        what=f"Airplane run {run_id} {status}",
    )


def polls(emulator: EmulatorClient, run_id: str) -> int:
    """How often the run's status was read (once by the worker before deferring, then by the trigger)."""
    return sum(
        1
        for entry in emulator.request_log()
        if entry["path"] == "/v0/runs/get" and entry["query"].get("id") == run_id
    )


def start_deferred(stack: AirflowStack, emulator: EmulatorClient, dag_id: str) -> tuple[str, str]:
    """Trigger ``dag_id``; return (dag_run_id, run id) once the triggerer is polling the active run.

    Acting earlier would race the triggerer picking the trigger up, which is not what these tests are about.
    """
    dag_run_id = stack.trigger_dag(dag_id)
    stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["deferred"], timeout=90)
    # Airflow's own race: a trigger that fires before the scheduler has taken the deferring process's
    # executor event gets its resumed task failed ("finished with state success, but the task instance's
    # state attribute is queued"); seen once on a loaded machine, with the scheduler 5.6 s behind.
    event = f"Received executor event with state success for task instance TaskInstanceKey(dag_id='{dag_id}'"
    wait_until(
        lambda: True if event in stack.components["scheduler"].log_text() else None,
        timeout=60,
        what="the scheduler taking the deferral's executor event",
    )
    run_id: str = wait_until(
        lambda: stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_id"), timeout=10, what="run id XCom"
    )
    wait_until(lambda: True if polls(emulator, run_id) >= 3 else None, timeout=30, what="trigger polling")
    assert airplane_run(emulator, run_id)["status"] == "Active"
    return dag_run_id, run_id


def cancel_requests(emulator: EmulatorClient) -> int:
    return emulator.request_counts().get("/v0/runs/cancel", 0)


def test_deferred_task_returns_the_outputs(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    dag_id = "it_deferred_success"
    dag_run_id, run_id = start_deferred(airflow_stack, emulator_client, dag_id)
    emulator_client.end_runs("held")
    airflow_stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["success"], timeout=60)

    assert airflow_stack.xcom(dag_id, dag_run_id, TASK) == {"rows": 3, "source": "emulator"}
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_id") == run_id
    url = airflow_stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_url")
    assert isinstance(url, str)
    assert url.endswith(f"/runs/{run_id}")
    assert airplane_run(emulator_client, run_id)["status"] == "Succeeded"


def test_marking_a_deferred_task_failed_cancels_the_run(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    # Airflow 3.3+ calls the trigger's on_kill(); 3.1/3.2 reach the cancel through the
    # "task instance no longer DEFERRED" check when the triggerer drops the trigger.
    dag_id = "it_deferred_mark_failed"
    dag_run_id, run_id = start_deferred(airflow_stack, emulator_client, dag_id)

    airflow_stack.set_ti_state(dag_id, dag_run_id, TASK, "failed")

    wait_run_status(emulator_client, run_id, "Cancelled", timeout=30)
    assert airflow_stack.ti_state(dag_id, dag_run_id, TASK) == "failed"


@pytest.mark.parametrize(
    "sig",
    [
        pytest.param(signal.SIGKILL, id="killed"),
        # A graceful stop cancels the trigger while its TI stays DEFERRED: below 3.3 this runs the
        # "is the TI still deferred?" check for real, and it must answer "leave the run alone".
        pytest.param(signal.SIGTERM, id="stopped"),
    ],
)
def test_triggerer_restart_does_not_cancel_the_run(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient, sig: signal.Signals
) -> None:
    dag_id = "it_deferred_triggerer_restart"
    dag_run_id, run_id = start_deferred(airflow_stack, emulator_client, dag_id)
    cancels_before = cancel_requests(emulator_client)

    airflow_stack.restart_triggerer(sig)  # the triggerer's whole session, then a new triggerer

    airflow_stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["success"], timeout=120)
    assert airplane_run(emulator_client, run_id)["status"] == "Succeeded"
    assert cancel_requests(emulator_client) == cancels_before
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK) == {"survived": "triggerer restart"}


def test_execution_timeout_while_deferred_cancels_the_run(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    dag_id = "it_deferred_execution_timeout"
    dag_run_id, run_id = start_deferred(airflow_stack, emulator_client, dag_id)

    airflow_stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["failed"], timeout=90)
    wait_run_status(emulator_client, run_id, "Cancelled", timeout=10)


def test_the_stack_runs_the_airflow_version_under_test(airflow_stack: AirflowStack) -> None:
    """Guards against the components coming from another venv than the test's (PATH mix-ups)."""
    version = airflow_stack.api("GET", "/version")["version"]
    assert version.startswith("3.3") == AIRFLOW_V_3_3_PLUS
