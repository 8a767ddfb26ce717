"""DAGs only the tests run: the ways a task stops while its Airplane run is in progress.

Each uses the example tasks (``example_dags/airplane_tasks.json``); ``export_warehouse`` runs for an
hour, so only a cancel ends it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, chain, task

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor

START = datetime(2026, 1, 1)

with DAG(dag_id="test_airplane_sigterm", schedule=None, start_date=START, catchup=False):
    # Run by the SIGTERM test in a separate process (`airflow tasks test`).
    AirplaneExecuteTaskOperator(task_id="export", slug="export_warehouse", poll_interval=1, retries=0)

with DAG(dag_id="test_airplane_execution_timeout", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(
        task_id="export",
        slug="export_warehouse",
        poll_interval=1,
        execution_timeout=timedelta(seconds=3),
        retries=0,
    )

with DAG(dag_id="test_airplane_deferred_timeout", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(
        task_id="export", slug="export_warehouse", deferrable=True, poll_interval=1, timeout=2, retries=0
    )

with DAG(dag_id="test_airplane_deferred_execution_timeout", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(
        task_id="export",
        slug="export_warehouse",
        deferrable=True,
        poll_interval=1,
        execution_timeout=timedelta(seconds=3),
        retries=0,
    )

with DAG(dag_id="test_airplane_deferred_failure", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(
        task_id="report", slug="nightly_report", deferrable=True, poll_interval=1, retries=0
    )

with DAG(dag_id="test_airplane_sensor_reschedule", schedule=None, start_date=START, catchup=False):
    # The test registers "slow_sync" and ends its run once the sensor has poked it, so it reschedules once.
    started = AirplaneExecuteTaskOperator(task_id="start", slug="slow_sync", wait_for_completion=False)
    AirplaneRunSensor(task_id="watch", run_id=started.output, mode="reschedule", poke_interval=1, timeout=60)


# One sensor per way of waiting, each on a run of its own started (and, with conf "cancel", cancelled)
# just before it: the test sets the run's task and how long a cancel takes, so the run ends before the
# sensor starts or while it waits. "plain" fails the task; soft_fail and never_fail skip it.
SENSOR_VARIANTS: dict[str, dict[str, Any]] = {
    "poke_plain": {"mode": "poke"},
    "poke_soft_fail": {"mode": "poke", "soft_fail": True},
    "poke_never_fail": {"mode": "poke", "never_fail": True},
    "reschedule_soft_fail": {"mode": "reschedule", "soft_fail": True},
    "deferred_plain": {"deferrable": True},
    "deferred_soft_fail": {"deferrable": True, "soft_fail": True},
    "deferred_never_fail": {"deferrable": True, "never_fail": True},
}


@task(trigger_rule="all_done")
def start_run(params: dict[str, Any] | None = None) -> str:
    from airflow_provider_airplane.hooks.airplane import AirplaneHook

    settings = params or {}
    with AirplaneHook() as hook:
        run_id = hook.execute_task(settings["slug"])
        if settings.get("cancel"):
            hook.cancel_run(run_id)
    return run_id


with DAG(
    dag_id="test_airplane_sensor_outcomes",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"slug": "fails_now", "cancel": False},
):
    steps = []
    for name, kwargs in SENSOR_VARIANTS.items():
        run_id = start_run.override(task_id=f"start_{name}")()
        steps += [
            run_id,
            AirplaneRunSensor(task_id=name, run_id=run_id, poke_interval=1, timeout=60, **kwargs),
        ]
    chain(*steps)
