"""DAGs for the production-shaped stack (tests/integration/test_cluster.py): CeleryExecutor, two triggerers.

Each mapped task runs its own Airplane task (slug ``<prefix>_<i>``), registered by the test with its own
output, so a task that got another task's run would show it. ``ResumeCountingOperator`` is the provider's
operator plus one line per ``execute_complete`` call in ``$CLUSTER_RESUME_LOG``: the test counts resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator

START = pendulum.datetime(2024, 1, 1, tz="UTC")
POLL = 5.0
# Sizes the tests read from here too.
FAILOVER_DEFERRED, FAILOVER_IN_WORKER = 40, 10
ROLLING_DEFERRED = 8
MARK_DEFERRED, MARK_IN_WORKER = 14, 4
LOST_REATTACH, LOST_SUCCEEDED = 5, 5
BIG_OUTPUT_LIMIT = 500_000


class ResumeCountingOperator(AirplaneExecuteTaskOperator):
    """The provider's operator; records each resume after deferral so the test can count them."""

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        path = os.environ.get("CLUSTER_RESUME_LOG")
        if path:
            ti = context["ti"]
            line = {
                "dag_id": ti.dag_id,
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "try": ti.try_number,
            }
            with open(path, "a") as sink:  # one short append per call: atomic on a local file system
                sink.write(json.dumps(line) + "\n")
        return super().execute_complete(context, event)


def gate(dag_id: str) -> str:
    """The pool through which (a) and (c) start their deferred tasks in two halves, so that each half can
    be handed to one triggerer. The test creates it; deferred tasks keep their slot."""
    return f"{dag_id}_gate"


def _slugs(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(count)]


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, max_active_tasks=64, tags=["cluster"])


# (a) Triggerer lost: 40 deferred and 10 waiting in a worker while the busier triggerer is SIGKILLed.
with _dag("cluster_failover"):
    ResumeCountingOperator.partial(
        task_id="deferred", deferrable=True, poll_interval=POLL, pool=gate("cluster_failover")
    ).expand(slug=_slugs("fo_def", FAILOVER_DEFERRED))
    AirplaneExecuteTaskOperator.partial(task_id="in_worker", deferrable=False, poll_interval=POLL).expand(
        slug=_slugs("fo_wrk", FAILOVER_IN_WORKER)
    )

# (b) Rolling restart: SIGTERM one triggerer and start it again while these are deferred.
with _dag("cluster_rolling"):
    ResumeCountingOperator.partial(task_id="deferred", deferrable=True, poll_interval=POLL).expand(
        slug=_slugs("ro_def", ROLLING_DEFERRED)
    )

# (c) Mark failed through the REST API: 3 deferred on each triggerer and 2 in workers.
with _dag("cluster_mark_failed"):
    AirplaneExecuteTaskOperator.partial(
        task_id="deferred", deferrable=True, poll_interval=POLL, pool=gate("cluster_mark_failed")
    ).expand(slug=_slugs("mf_def", MARK_DEFERRED))
    AirplaneExecuteTaskOperator.partial(task_id="in_worker", deferrable=False, poll_interval=POLL).expand(
        slug=_slugs("mf_wrk", MARK_IN_WORKER)
    )

# (d, d2) Worker lost: tasks waiting in the worker that is SIGKILLed; their retries run on the other one.
with _dag("cluster_worker_lost"):
    for task_id, prefix, count in (("reattach", "wl_re", LOST_REATTACH), ("ended", "wl_end", LOST_SUCCEEDED)):
        AirplaneExecuteTaskOperator.partial(
            task_id=task_id,
            deferrable=False,
            poll_interval=2.0,
            retries=1,
            retry_delay=timedelta(seconds=2),
        ).expand(slug=_slugs(prefix, count))


# (e) Outputs on PostgreSQL: 900 KB through XCom, and the same over output_max_bytes.
@task
def digest(outputs: Any) -> dict[str, Any]:
    """What the downstream task read back: the size and hash of its canonical JSON."""
    text = json.dumps(outputs, sort_keys=True, separators=(",", ":"))
    return {"bytes": len(text.encode()), "sha256": hashlib.sha256(text.encode()).hexdigest()}


with _dag("cluster_outputs"):
    big = AirplaneExecuteTaskOperator(task_id="big", slug="out_big", deferrable=True, poll_interval=1.0)
    digest(big.output)
    AirplaneExecuteTaskOperator(
        task_id="too_big",
        slug="out_big",
        deferrable=True,
        poll_interval=1.0,
        output_max_bytes=BIG_OUTPUT_LIMIT,
    )
