"""The DAG the observability tests run with ``airflow dags test``: a run that succeeds in a worker, one
that fails, and one waited for in the triggerer. The tests register the Airplane tasks."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

FAST = {"poll_interval": 0.5, "retries": 0}

with DAG(dag_id="test_airplane_observability", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    AirplaneExecuteTaskOperator(task_id="succeeds", slug="obs_ok", **FAST)
    AirplaneExecuteTaskOperator(task_id="fails", slug="obs_fails", **FAST)
    AirplaneExecuteTaskOperator(task_id="deferred", slug="obs_ok", deferrable=True, **FAST)
