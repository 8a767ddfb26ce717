"""DAGs for the outage integration tests: every way of waiting for a run, through a long API outage.

``it_outage``: the execute operator in a worker and deferred, and the sensor in poke, reschedule and
deferrable mode, all waiting at once (the sensors on runs the test starts and passes in the DAG run's
conf). ``it_outage_past``: the execute operator in a worker and deferred with a short ``max_outage``.
The emulator tasks are registered by ``tests/integration/test_outage_in_airflow.py``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor

START = pendulum.datetime(2024, 1, 1, tz="UTC")
POLL = 2.0
# An environment of their own: the test tells the triggerer's listings for these waits from the event
# watchers' by the environment header.
ENV = "outage"

with DAG("it_outage", schedule=None, start_date=START, catchup=False, tags=["integration"]):
    AirplaneExecuteTaskOperator(
        task_id="worker",
        slug="outage_worker",
        deferrable=False,
        poll_interval=POLL,
        show_logs=False,
        env_slug=ENV,
    )
    AirplaneExecuteTaskOperator(
        task_id="deferred", slug="outage_deferred", deferrable=True, poll_interval=POLL, env_slug=ENV
    )
    for mode, deferrable in (("poke", False), ("reschedule", False), ("deferrable", True)):
        AirplaneRunSensor(
            task_id=f"sensor_{mode}",
            run_id=f"{{{{ dag_run.conf['sensor_{mode}'] }}}}",
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=deferrable,
            # Reschedule: 6 s, as LocalExecutor's "success" of one poke arriving after the next poke
            # started makes the scheduler fail the task (state changed externally) on a loaded machine.
            poke_interval=6.0 if mode == "reschedule" else POLL,
            timeout=1800,
            env_slug=ENV,
        )

with DAG("it_outage_past", schedule=None, start_date=START, catchup=False, tags=["integration"]):
    for name, deferrable in (("worker", False), ("deferred", True)):
        AirplaneExecuteTaskOperator(
            task_id=name,
            slug=f"outage_past_{name}",
            deferrable=deferrable,
            poll_interval=POLL,
            max_outage=20,
            show_logs=False,
        )
