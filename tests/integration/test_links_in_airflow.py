"""The "Airplane Run" link of each try, as the api-server's REST API (and so the UI) serves it.

Airflow 3.2+ asks the extra-links endpoint for one try (``try_number``); on 3.3+ the provider's plugin
answers with the run that try waited for, kept in the task state store. Below 3.3 every try shows the
latest try's run, as Airflow's own XCom link does.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow_stack import AirflowStack, wait_until

from airflow_provider_airplane.testing import EmulatorClient
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "it_links_per_try"
SLUGS = {"worker": "it_link_worker", "deferred": "it_link_deferred"}


def runs_of(emulator: EmulatorClient, slug: str) -> list[dict[str, Any]]:
    return [run for run in emulator.runs() if run["taskSlug"] == slug]


def link(stack: AirflowStack, dag_run_id: str, task_id: str, try_number: int | None = None) -> Any:
    params = {} if try_number is None else {"try_number": try_number}
    body = stack.api("GET", f"{stack._ti_path(DAG_ID, dag_run_id, task_id)}/links", params=params)
    return body["extra_links"]["Airplane Run"]


def test_each_try_links_the_run_it_waited_for(
    airflow_stack: AirflowStack, emulator_client: EmulatorClient
) -> None:
    # Runs of some seconds: a deferral shorter than the worker's exit races the scheduler (the executor's
    # "success" for the deferring workload arrives after the resumed try started, and fails it).
    for slug in SLUGS.values():
        emulator_client.add_task(slug, fail=True, error="first run breaks", duration=8)
    dag_run_id = airflow_stack.trigger_dag(DAG_ID)
    for slug in SLUGS.values():
        wait_until(lambda slug=slug: runs_of(emulator_client, slug) or None, timeout=90, what=f"{slug} run")
        # A run's outcome is fixed when it starts: the first stays Failed, the retry's succeeds.
        emulator_client.add_task(slug, output={"second": "run"}, duration=8)

    for task_id, slug in SLUGS.items():
        airflow_stack.wait_for_ti_state(DAG_ID, dag_run_id, task_id, ["success"], timeout=180)
        failed, succeeded = runs_of(emulator_client, slug)
        assert (failed["status"], succeeded["status"]) == ("Failed", "Succeeded")
        url = airflow_stack.xcom(DAG_ID, dag_run_id, task_id, "airplane_run_url")
        assert f"/runs/{succeeded['id']}" in url
        first_try = url.replace(succeeded["id"], failed["id"]) if AIRFLOW_V_3_3_PLUS else url

        assert link(airflow_stack, dag_run_id, task_id, try_number=1) == first_try
        assert link(airflow_stack, dag_run_id, task_id, try_number=2) == url
        assert link(airflow_stack, dag_run_id, task_id) == url  # no try: the latest, as the UI's default
