"""Wait in the triggerer instead of a worker slot: the deferrable operator and sensor.

``deferrable=True`` (or ``[operators] default_deferrable = True``) hands the wait to
``AirplaneRunTrigger``. The XComs, the link and the return value are the same as when
waiting in the worker; a ``timeout`` still cancels the run (the trigger carries the
deadline).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor

with DAG(
    dag_id="example_airplane_deferrable",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "airplane"],
) as dag:
    refresh = AirplaneExecuteTaskOperator(
        task_id="refresh_customers",
        slug="refresh_customers",
        param_values={"segment": "enterprise"},
        deferrable=True,
        poll_interval=1,
        timeout=600,
        execution_timeout=timedelta(minutes=30),
    )

    start_score = AirplaneExecuteTaskOperator(
        task_id="start_score", slug="score_customer", wait_for_completion=False
    )
    watch = AirplaneRunSensor(
        task_id="watch_score",
        run_id=start_score.output,
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )

    @task
    def rows(outputs: dict[str, Any]) -> int:
        return int(outputs["rows"])

    rows(refresh.output)
