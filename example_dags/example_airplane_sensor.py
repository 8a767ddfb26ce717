"""Start a run without waiting, watch it with a sensor, then read its outputs.

Useful when the run is long: the starting task ends at once, and the sensor in
``reschedule`` mode frees its worker slot between checks. The sensor only watches; it
never cancels the run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_airplane.operators.airplane import (
    AirplaneExecuteTaskOperator,
    AirplaneGetRunOutputsOperator,
)
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor

RUN_ID = "{{ ti.xcom_pull(task_ids='start_refresh', key='airplane_run_id') }}"

with DAG(
    dag_id="example_airplane_sensor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "airplane"],
) as dag:
    start = AirplaneExecuteTaskOperator(
        task_id="start_refresh",
        airplane_task_id="tsk_refresh_customers",  # by id instead of slug
        param_values={"segment": "smb"},
        wait_for_completion=False,  # returns the run id
    )
    wait = AirplaneRunSensor(
        task_id="wait_for_refresh", run_id=RUN_ID, mode="reschedule", poke_interval=1
    )
    outputs = AirplaneGetRunOutputsOperator(task_id="get_outputs", run_id=RUN_ID)

    @task
    def use(result: dict[str, Any]) -> int:
        return int(result["rows"])

    start >> wait >> outputs
    use(outputs.output)
