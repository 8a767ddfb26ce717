"""Run an Airplane task with the DAG's params as parameters; use its outputs downstream.

This is the demo DAG: ``refresh_customers`` runs in Airplane (or the local emulator), the
operator waits for it, and its outputs arrive in the next task through XCom. The run's id
and URL are in XCom too (``airplane_run_id``, ``airplane_run_url``), and the task has an
"Airplane Run" link.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

with DAG(
    dag_id="example_airplane_execute",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"segment": "enterprise", "limit": 100},
    tags=["example", "airplane"],
) as dag:
    refresh = AirplaneExecuteTaskOperator(
        task_id="refresh_customers",
        slug="refresh_customers",
        # Templated, JSON values: the limit stays a number.
        param_values={"segment": "{{ params.segment }}", "limit": 100},
        poll_interval=1,
        timeout=300,
        execution_timeout=timedelta(minutes=10),
    )

    @task
    def report(outputs: dict[str, Any]) -> str:
        """Any downstream task can use the run's outputs."""
        summary = f"refreshed {outputs['rows']} rows of {outputs['table']}"
        print(summary)
        return summary

    report(refresh.output)
