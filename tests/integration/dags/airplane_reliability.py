"""DAGs for the reliability integration tests: a retry re-attaches to, or replaces, an earlier try's run.

The emulator tasks they run (``it_reattach``, ``it_flaky``, ``it_adopt``) are registered by
``tests/integration/test_reliability_in_airflow.py`` before it triggers them.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def _dag(dag_id: str, slug: str, poll_interval: float = 1.0) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["integration"]) as dag:
        AirplaneExecuteTaskOperator(
            task_id="run",
            slug=slug,
            param_values={"dag": dag_id},
            deferrable=False,  # the wait happens in the worker, which the test kills
            poll_interval=poll_interval,
            retries=1,
            retry_delay=timedelta(seconds=2),
        )
    return dag


# (a) the task's process is SIGKILLed mid-wait: the retry re-attaches to the same run.
reliability_reattach = _dag("it_reliability_reattach", "it_reattach")
# (b) the first run fails: the retry starts exactly one new run.
reliability_after_failure = _dag("it_reliability_after_failure", "it_flaky")
# (c) issue 9 d2: the run Succeeds while the worker sleeps between polls, then the worker is SIGKILLed:
# the retry adopts the run's outputs and starts no second run.
reliability_adopt = _dag("it_reliability_adopt", "it_adopt", poll_interval=60.0)
