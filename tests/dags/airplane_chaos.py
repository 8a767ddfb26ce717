"""The chaos DAG: 50 mapped Airplane runs, 25 waited for in the worker and 25 deferred.

``tests/unit/test_chaos.py`` runs it with ``dag.test()`` against an emulator that fails, rate-limits,
drops and slows down a share of the requests. The ``square`` task's output depends on its ``n``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

MAPPED = 25

with DAG(dag_id="test_airplane_chaos", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    # retries=0: a transient API error that got past the hook's retries fails the DAG run.
    AirplaneExecuteTaskOperator.partial(
        task_id="in_worker", slug="square", deferrable=False, poll_interval=0.5, retries=0
    ).expand(param_values=[{"n": n} for n in range(MAPPED)])
    AirplaneExecuteTaskOperator.partial(
        task_id="deferred", slug="square", deferrable=True, poll_interval=0.5, retries=0
    ).expand(param_values=[{"n": n} for n in range(MAPPED, 2 * MAPPED)])
