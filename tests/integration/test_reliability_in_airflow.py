"""Retries under a real scheduler (LocalExecutor): re-attach after a killed worker, adopt a run that
succeeded before the worker was killed, a new run after a failure.

The Airflow stack and its standalone emulator come from conftest.py (shared by the module's tests);
each test registers its own Airplane task, so the runs it counts are its own.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import AirflowStack, wait_until

from airflow_provider_airplane.testing import EmulatorClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = "run"


def runs_of(emulator: EmulatorClient, slug: str) -> list[dict[str, Any]]:
    return [run for run in emulator.runs() if run["taskSlug"] == slug]


def task_runner_pid(ti_id: str) -> int | None:
    """The process running the task instance try ``ti_id``: the supervisor's child titles itself
    ``airflow worker -- <ti id>`` (the LocalExecutor worker above it says ``LocalExecutor: <ti id>``)."""
    title = f"airflow worker -- {ti_id}"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmdline == title:
            return int(entry.name)
    return None


def ti_details(stack: AirflowStack, dag_id: str, dag_run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = stack.api("GET", stack._ti_path(dag_id, dag_run_id, TASK))
    return body


def kill_task_once_run_is(
    stack: AirflowStack, emulator: EmulatorClient, dag_id: str, slug: str, status: str, *, timeout: float
) -> tuple[str, str]:
    """Trigger ``dag_id``, SIGKILL its task's process once the run reads ``status`` (no on_kill, no cancel:
    a lost worker), and wait for the retry. Returns the DAG run id and the first try's Airplane run id."""
    dag_run_id = stack.trigger_dag(dag_id)
    stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["running"], timeout=90)
    run_id: str = wait_until(
        lambda: stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_id"),
        timeout=30,
        what="run id XCom",
    )
    wait_until(
        lambda: True if runs_of(emulator, slug)[0]["status"] == status else None,
        timeout=timeout,
        what=f"run {status}",
    )
    ti = ti_details(stack, dag_id, dag_run_id)
    assert ti["try_number"] == 1
    assert ti["state"] == "running"
    pid = wait_until(lambda: task_runner_pid(ti["id"]), timeout=10, what="the task's process")

    os.kill(pid, signal.SIGKILL)

    wait_until(
        lambda: True if ti_details(stack, dag_id, dag_run_id)["try_number"] == 2 else None,
        timeout=60,
        what="the retry",
    )
    return dag_run_id, run_id


def test_killed_worker_retry_reattaches_to_the_run(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    dag_id, slug = "it_reliability_reattach", "it_reattach"
    emulator_client.add_task(slug, output={"rows": 20, "source": "one run"}, duration=20)
    # The run keeps going: the retry must wait for it, not start another.
    dag_run_id, run_id = kill_task_once_run_is(
        airflow_stack, emulator_client, dag_id, slug, "Active", timeout=10
    )
    airflow_stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["success"], timeout=90)
    runs = runs_of(emulator_client, slug)
    assert [run["id"] for run in runs] == [run_id], runs
    assert runs[0]["status"] == "Succeeded"  # never cancelled
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK) == {"rows": 20, "source": "one run"}
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_id") == run_id


def test_killed_worker_whose_run_succeeded_retry_adopts_it(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    """Issue 9 d2 on LocalExecutor: the run Succeeded before Airflow noticed the lost worker; the retry
    returns its outputs and the Airplane task does not run a second time."""
    dag_id, slug = "it_reliability_adopt", "it_adopt"
    emulator_client.add_task(slug, output={"invoices": 3}, duration=3)
    # poll_interval=60: the worker sleeps through the run's end, so killing it now loses the outcome.
    dag_run_id, run_id = kill_task_once_run_is(
        airflow_stack, emulator_client, dag_id, slug, "Succeeded", timeout=30
    )
    airflow_stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["success"], timeout=90)
    runs = runs_of(emulator_client, slug)
    assert [run["id"] for run in runs] == [run_id], runs  # no second run
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK) == {"invoices": 3}
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_id") == run_id


def test_retry_after_a_failed_run_starts_exactly_one_new_run(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    dag_id, slug = "it_reliability_after_failure", "it_flaky"
    emulator_client.add_task(slug, fail=True, error="first run breaks", duration=3)
    dag_run_id = airflow_stack.trigger_dag(dag_id)
    wait_until(lambda: runs_of(emulator_client, slug) or None, timeout=90, what="the first run")
    # A run's outcome is fixed when it starts: the first stays Failed, the next one succeeds.
    emulator_client.add_task(slug, output={"second": "run"}, duration=2)

    airflow_stack.wait_for_ti_state(dag_id, dag_run_id, TASK, ["success"], timeout=120)

    runs = runs_of(emulator_client, slug)
    assert [run["status"] for run in runs] == ["Failed", "Succeeded"], runs
    assert ti_details(airflow_stack, dag_id, dag_run_id)["try_number"] == 2
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_id") == runs[1]["id"]
    assert airflow_stack.xcom(dag_id, dag_run_id, TASK) == {"second": "run"}
