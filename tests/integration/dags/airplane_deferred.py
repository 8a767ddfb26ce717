"""DAGs for the integration tests: one deferred Airplane task each, against the standalone emulator.

The emulator tasks they run are registered by ``tests/integration/conftest.py`` (``EMULATOR_TASKS``), but
``it_metrics``, which ``tests/integration/test_metrics_in_airflow.py`` registers.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def _dag(dag_id: str, slug: str, **operator_kwargs: object) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["integration"]) as dag:
        AirplaneExecuteTaskOperator(
            task_id="run",
            slug=slug,
            deferrable=True,
            poll_interval=1.0,
            retries=0,
            **operator_kwargs,  # type: ignore[arg-type]
        )
    return dag


# (a) finishes in the triggerer; outputs come back through XCom.
deferred_success = _dag("it_deferred_success", "held")
# (b) marked failed through the REST API while deferred: the run must be cancelled.
deferred_mark_failed = _dag("it_deferred_mark_failed", "endless")
# (c) the triggerer dies mid-wait: a new one takes over and nothing is cancelled.
deferred_triggerer_restart = _dag("it_deferred_triggerer_restart", "medium")
# (d) execution_timeout while deferred: the trigger's deadline fires and execute_complete cancels.
deferred_execution_timeout = _dag(
    "it_deferred_execution_timeout", "endless", execution_timeout=timedelta(seconds=12)
)

# (e) a run waited for in the triggerer, whose metrics the test reads from a statsd listener.
deferred_metrics = _dag("it_deferred_metrics", "it_metrics")
