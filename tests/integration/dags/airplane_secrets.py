"""DAGs for the secrets test: a deferred success, a deferred failure and an API error that echoes the key.

``secrets_ok`` and ``secrets_fail`` are registered by ``tests/integration/test_secrets_in_airflow.py``;
``held`` by the integration conftest (``EMULATOR_TASKS``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
# Rendered into rendered_task_instance_fields, so the test has template fields to search.
PARAMS = {"dag": "{{ dag.dag_id }}", "airflow_run": "{{ run_id }}", "conn_id": "{{ task.airplane_conn_id }}"}


def _dag(dag_id: str, slug: str, **operator_kwargs: object) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["integration"]) as dag:
        AirplaneExecuteTaskOperator(
            task_id="run",
            slug=slug,
            param_values=PARAMS,
            poll_interval=1.0,
            retries=0,
            **operator_kwargs,  # type: ignore[arg-type]
        )
    return dag


# Deferred, succeeds: outputs in XCom, a trigger row while it waits.
secrets_deferred = _dag("it_secrets_deferred", "secrets_ok", deferrable=True)
# Deferred, the run fails: AirplaneRunFailedError in execute_complete.
secrets_failing = _dag("it_secrets_failing", "secrets_fail", deferrable=True)
# In the worker: the execute call answers 400 with a body that echoes the API key.
secrets_api_error = _dag("it_secrets_api_error", "held", deferrable=False)
