"""The "Airplane Run" button on a task, read from XCom so every try, segment and instance shows it.

Each try also records its run's URL in the task state store (Airflow 3.3+), which a retry does not clear
as it clears XCom: that is what lets the API server show every try its own run (``links/per_try.py``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

    from airflow_provider_airplane.hooks.airplane import AirplaneHook

XCOM_RUN_ID = "airplane_run_id"
XCOM_RUN_URL = "airplane_run_url"
# Task state store key of ``{"<try number>": run URL}``, one entry per try that knew its run.
STATE_STORE_RUN_URLS = "airplane_run_urls"

log = logging.getLogger(__name__)


def push_run_xcoms(context: Context, hook: AirplaneHook, run_id: str) -> str:
    """Record the run id and URL as soon as the run is known (the link and users read them).

    Returns the URL.
    """
    run_url = hook.get_run_url(run_id)
    ti = context["ti"]
    ti.xcom_push(key=XCOM_RUN_ID, value=run_id)
    ti.xcom_push(key=XCOM_RUN_URL, value=run_url)
    _record_try(context, run_url)
    return run_url


def _record_try(context: Context, run_url: str) -> None:
    """Keep this try's run URL where a retry leaves it (Airflow 3.3's task_state_store); best effort."""
    store = context.get("task_state_store")
    try_number = getattr(context["ti"], "try_number", None)
    if store is None or not isinstance(try_number, int):
        return
    try:
        urls = store.get(STATE_STORE_RUN_URLS)
        urls = urls if isinstance(urls, dict) else {}
        if urls.get(str(try_number)) != run_url:  # a resumed deferral or a sensor's poke wrote it already
            store.set(STATE_STORE_RUN_URLS, {**urls, str(try_number): run_url})
    except Exception as err:  # the XCom link still shows the latest try's run
        log.warning("Could not record the run of try %s in the task state store: %s", try_number, err)


def url_of_try(urls: Any, try_number: int) -> str | None:
    """The run URL try ``try_number`` recorded; "" if it had none; None if ``urls`` cannot tell.

    A try that recorded nothing while a later one did stopped before it had a run (e.g. the API refused
    to start it), so it gets no link rather than another try's run.
    """
    if not isinstance(urls, dict):
        return None
    url = urls.get(str(try_number))
    if isinstance(url, str) and url:
        return url
    if any(key.isdigit() and int(key) > try_number for key in urls):
        return ""
    return None


class AirplaneRunLink(BaseOperatorLink):
    """Link to the Airplane run of a task instance.

    The URL comes from XCom, never from the operator object: a resumed deferral, a reschedule and the
    API server each see a fresh instance, and the XCom is what survives them.
    """

    name = "Airplane Run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url: Any = XCom.get_value(ti_key=ti_key, key=XCOM_RUN_URL)
        if url:
            return str(url)
        run_id: Any = XCom.get_value(ti_key=ti_key, key=XCOM_RUN_ID)
        if not run_id:
            return ""
        # Only the id was recorded (e.g. by an older version): build the URL from the connection's app_url.
        from airflow_provider_airplane.hooks.airplane import AirplaneHook

        conn_id = getattr(operator, "airplane_conn_id", "airplane_default")
        env_slug = getattr(operator, "env_slug", None)
        if not isinstance(env_slug, str) or "{" in env_slug:  # unset, or a template not rendered here
            env_slug = None
        try:
            return AirplaneHook(conn_id, env_slug=env_slug).get_run_url(str(run_id))
        except Exception as err:  # a link must never fail the task that renders it
            log.warning("Could not build the Airplane run link for run %s: %s", run_id, err)
            return ""
