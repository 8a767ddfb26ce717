"""A mapped operator with one ``idempotency_key`` of the user's: each map index must start its own run.

``tests/unit/test_durable.py`` runs it with ``dag.test()``; the test registers the ``score`` task.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

MAPPED = 3

with DAG(dag_id="test_airplane_mapped_key", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    AirplaneExecuteTaskOperator.partial(
        task_id="score", slug="score", idempotency_key="nightly-scores", poll_interval=0.2, retries=0
    ).expand(param_values=[{"n": n} for n in range(MAPPED)])
