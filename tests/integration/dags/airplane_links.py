"""DAG for the per-try link test: each task's first try waits for a run that fails, its retry for one that
succeeds, in a worker and in the triggerer.

The emulator tasks (``it_link_worker``, ``it_link_deferred``) are registered by
``tests/integration/test_links_in_airflow.py`` before it triggers the DAG.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

with DAG(
    "it_links_per_try",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["integration"],
):
    for deferrable in (False, True):
        AirplaneExecuteTaskOperator(
            task_id="deferred" if deferrable else "worker",
            slug="it_link_deferred" if deferrable else "it_link_worker",
            deferrable=deferrable,
            poll_interval=1.0,
            retries=1,
            retry_delay=timedelta(seconds=2),
        )
