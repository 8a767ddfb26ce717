"""Runs that Airflow stops: a ``timeout`` that cancels the run, and an explicit cancel.

``export_warehouse`` runs for an hour. With ``timeout=3`` the operator cancels the run
when 3 seconds have passed and fails with ``AirplaneRunTimeoutError``; the Airplane run
ends Cancelled, not orphaned. The second branch starts a run without waiting and cancels
it with ``AirplaneCancelRunOperator``, which returns the status the run reached
("Cancelled").
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import (
    AirplaneCancelRunOperator,
    AirplaneExecuteTaskOperator,
)

with DAG(
    dag_id="example_airplane_timeout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "airplane"],
) as dag:
    AirplaneExecuteTaskOperator(
        task_id="export_with_timeout",
        slug="export_warehouse",
        poll_interval=1,
        timeout=3,  # seconds; then the run is cancelled and the task fails
        retries=0,
    )

    start_export = AirplaneExecuteTaskOperator(
        task_id="start_export", slug="export_warehouse", wait_for_completion=False
    )
    AirplaneCancelRunOperator(
        task_id="cancel_export",
        run_id=start_export.output,  # the run id start_export returned
        wait_timeout=30,
    )
