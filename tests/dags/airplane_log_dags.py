"""DAGs the run-log tests run with ``dag.test()``; the tests register their Airplane tasks.

``chatty`` writes 250 lines over two seconds, ``chatty_fails`` writes 30 and fails.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

START = datetime(2026, 1, 1)
FAST = {"poll_interval": 0.5, "retries": 0}

with DAG(dag_id="test_airplane_logs_worker", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(task_id="run", slug="chatty", **FAST)

with DAG(dag_id="test_airplane_logs_deferred", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(task_id="run", slug="chatty", deferrable=True, **FAST)

with DAG(dag_id="test_airplane_logs_failed", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(task_id="run", slug="chatty_fails", **FAST)

with DAG(dag_id="test_airplane_logs_capped", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(task_id="run", slug="chatty", log_max_lines=100, **FAST)

with DAG(dag_id="test_airplane_logs_off", schedule=None, start_date=START, catchup=False):
    AirplaneExecuteTaskOperator(task_id="run", slug="chatty", show_logs=False, **FAST)
    AirplaneExecuteTaskOperator(
        task_id="run_deferred", slug="chatty", show_logs=False, deferrable=True, **FAST
    )

with DAG(dag_id="test_airplane_logs_deferred_slow_poll", schedule=None, start_date=START, catchup=False):
    # A read may retry for one poll interval: room for the faults the test injects.
    AirplaneExecuteTaskOperator(task_id="run", slug="chatty", deferrable=True, poll_interval=2, retries=0)
