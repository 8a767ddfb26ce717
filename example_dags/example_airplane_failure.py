"""A run that fails: the task fails with the run's error and URL; a handler reacts.

``nightly_report`` ends Failed in Airplane; the operator raises ``AirplaneRunFailedError``
whose message carries the run's ``error`` output ("quota exceeded") and the run URL. The
run URL is also in XCom, so ``alert`` can point people at it.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, XComArg, task

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

with DAG(
    dag_id="example_airplane_failure",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "airplane"],
) as dag:
    report = AirplaneExecuteTaskOperator(
        task_id="nightly_report", slug="nightly_report", poll_interval=1, retries=0
    )

    @task(trigger_rule="all_failed")
    def alert(run_url: str) -> str:
        message = f"nightly_report failed, see {run_url}"
        print(message)
        return message

    alert(XComArg(report, key="airplane_run_url"))
