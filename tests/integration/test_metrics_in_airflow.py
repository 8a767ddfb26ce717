"""The ``airplane.`` metrics of a deferred task, as a statsd server receives them from a real stack.

The stack sends statsd to the session's listener (conftest.py); the triggerer with its own prefix
(``triggerer.``), every other process with Airflow's default (``airflow.``), so each line says which
process sent it. The provider's trigger runs in the triggerer's trigger runner subprocess, which sends
through the task SDK's ``Stats`` on Airflow 3.2+: set up there by ``airflow.sdk.serde`` on import (3.2.2,
3.3.2), else by ``_metrics._initialize_sdk_stats``.
"""

from __future__ import annotations

import pytest
from airflow_stack import AirflowStack, wait_until

from airflow_provider_airplane.testing import EmulatorClient
from tests.statsd_listener import StatsdListener

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID, SLUG, TASK = "it_deferred_metrics", "it_metrics", "run"


def test_deferred_task_emits_from_worker_and_triggerer(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient, statsd_listener: StatsdListener
) -> None:
    triggerer_prefix = airflow_stack.component_env["triggerer"]["AIRFLOW__METRICS__STATSD_PREFIX"]
    emulator_client.add_task(SLUG, output={"rows": 1}, duration=8)
    seen = len(statsd_listener.lines)
    dag_run_id = airflow_stack.trigger_dag(DAG_ID)
    airflow_stack.wait_for_ti_state(DAG_ID, dag_run_id, TASK, ["success"], timeout=180)

    def lines(prefix: str) -> list[str]:
        return [line for line in statsd_listener.lines[seen:] if line.startswith(f"{prefix}.airplane.")]

    # The worker's resume sends its last metrics as it finishes: wait for them rather than sleep.
    wait_until(
        lambda: True if any(".run.ended.succeeded:" in line for line in lines("airflow")) else None,
        timeout=10,
        what="the worker's run.ended metric",
    )
    triggerer = {line.split(":", 1)[0] for line in lines(triggerer_prefix)}
    worker = {line.split(":", 1)[0] for line in lines("airflow")}
    # The triggerer waits for the run: the shared watcher's gauge and its status reads.
    assert {
        f"{triggerer_prefix}.airplane.watcher.waits",
        f"{triggerer_prefix}.airplane.api.request.runs_get.2xx",
    } <= triggerer, sorted(triggerer)
    # The worker starts the run before deferring and reads the outcome after resuming.
    assert {
        "airflow.airplane.run.started",
        "airflow.airplane.api.request.tasks_execute.2xx",
        "airflow.airplane.run.ended.succeeded",
        "airflow.airplane.run.duration.succeeded",
    } <= worker, sorted(worker)
    assert not any(name.startswith("airflow.airplane.watcher.") for name in worker)
    # The gauge counts this triggerer's waits (other tests' triggers included): up for this one, then down.
    waits = [
        int(line.split(":")[1].split("|")[0]) for line in lines(triggerer_prefix) if ".watcher.waits:" in line
    ]
    assert waits[-1] < max(waits), waits
