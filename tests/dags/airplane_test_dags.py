"""DAGs only the tests run: the ways a task stops while its Airplane run is in progress.

Each uses the example tasks (``example_dags/airplane_tasks.json``); ``export_warehouse`` runs for an
hour, so only a cancel ends it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

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
    # The test registers "slow_sync" (a few seconds), so the sensor reschedules at least once.
    started = AirplaneExecuteTaskOperator(task_id="start", slug="slow_sync", wait_for_completion=False)
    AirplaneRunSensor(task_id="watch", run_id=started.output, mode="reschedule", poke_interval=1, timeout=60)
