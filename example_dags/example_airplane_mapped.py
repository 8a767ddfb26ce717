"""One Airplane run per parameter set (dynamic task mapping), outputs gathered after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

CUSTOMERS = [{"customer": "acme"}, {"customer": "globex"}, {"customer": "initech"}]

with DAG(
    dag_id="example_airplane_mapped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "airplane"],
) as dag:
    scores = AirplaneExecuteTaskOperator.partial(
        task_id="score_customer", slug="score_customer", poll_interval=1, timeout=120
    ).expand(param_values=CUSTOMERS)

    @task
    def average(results: list[dict[str, Any]]) -> float:
        values = [r["score"] for r in results]
        return sum(values) / len(values)

    average(scores.output)
