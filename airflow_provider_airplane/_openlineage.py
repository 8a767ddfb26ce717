"""OpenLineage facets for the Airplane run a task waited for, read by the OpenLineage provider's listener.

``apache-airflow-providers-openlineage`` is optional (the ``openlineage`` extra): this module imports
nothing of it until the listener calls a ``get_openlineage_facets_on_*`` method, which only happens when
it is installed. The task's own events get an ``airplane_run`` run facet and the standard
``externalQuery`` (and, on failure, ``errorMessage``) facets. The Airplane run is also sent as a job of
its own, a child of the task (``parent`` facet), with the ``jobType`` facet that says it is an Airplane
task: the listener sets the task event's ``jobType`` to Airflow's, as dbt Cloud and Databricks child
jobs do.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_airplane import __version__

if TYPE_CHECKING:
    from airflow_provider_airplane.hooks.airplane import AirplaneHook
    from airflow_provider_airplane.models import AirplaneRun

log = logging.getLogger(__name__)

# Where the provider's code and its facet's JSON schema (facets/AirplaneRunFacet.json) live.
PROJECT_URL = "https://github.com/airflow-provider-airplane/airflow-provider-airplane"
PRODUCER = f"{PROJECT_URL}/tree/{__version__}"
SCHEMA_URL = (
    f"{PROJECT_URL}/blob/{__version__}/airflow_provider_airplane/facets/AirplaneRunFacet.json"
    "#/$defs/AirplaneRunFacet"
)
FACET_KEY = "airplane_run"
INTEGRATION = "AIRPLANE"


@dataclass(frozen=True)
class RunSeen:
    """What a task knows of its Airplane run, kept on the operator for the listener."""

    run_id: str
    run_url: str
    api_url: str
    environment: str | None
    run: AirplaneRun | None = None
    task_slug: str | None = None
    error: str | None = None


def seen(hook: AirplaneHook, run_id: str, run: AirplaneRun | None = None, slug: str | None = None) -> RunSeen:
    config = hook.config
    return RunSeen(
        run_id=run_id,
        run_url=hook.get_run_url(run_id),
        api_url=config.base_url,
        environment=config.env_slug or config.env_id,
        run=run,
        task_slug=slug,
    )


class AirplaneLineageMixin:
    """``get_openlineage_facets_on_start/_complete/_failure`` for every operator that knows a run."""

    _airplane_seen: RunSeen | None = None

    def _see_run(self, hook: AirplaneHook, run_id: str, run: AirplaneRun | None = None) -> None:
        """Remember the run for the lineage events (no request: the URL comes from the connection)."""
        slug = getattr(self, "slug", None)
        self._airplane_seen = seen(hook, run_id, run, slug if isinstance(slug, str) else None)

    @contextlib.contextmanager
    def _verdict_on(self, hook: AirplaneHook, run: AirplaneRun, *, waited: bool = True) -> Iterator[None]:
        """Around the verdict on a finished run: remember it and the error the task shows; a task that
        waited for it also counts it in the metrics."""
        self._see_run(hook, run.id, run)
        if waited:
            from airflow_provider_airplane import _metrics

            _metrics.run_ended(run)
        try:
            yield
        except BaseException as err:
            if self._airplane_seen is not None:
                self._airplane_seen = replace(self._airplane_seen, error=str(err))
            raise

    def get_openlineage_facets_on_start(self) -> Any:
        return operator_lineage(self._airplane_seen)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return operator_lineage(self._airplane_seen, task_instance=task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return operator_lineage(self._airplane_seen, task_instance=task_instance, failed=True)


@functools.cache
def facet_class() -> type:
    """``AirplaneRunFacet``, built on first use: its base class comes from the optional openlineage client."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class AirplaneRunFacet(RunFacet):  # type: ignore[misc]
        """The Airplane run behind an Airflow task (custom facet ``airplane_run``)."""

        runId: str
        runUrl: str
        taskId: str | None = None
        taskSlug: str | None = None
        environment: str | None = None
        status: str | None = None
        createdAt: str | None = None
        endedAt: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return SCHEMA_URL

    return AirplaneRunFacet


def run_facets(seen_run: RunSeen, *, failed: bool = False) -> dict[str, Any]:
    """The run facets that carry the Airplane run: ``airplane_run``, ``externalQuery``, ``errorMessage``."""
    from openlineage.client.facet_v2 import error_message_run, external_query_run

    run = seen_run.run
    ended = None if run is None else (run.succeeded_at or run.failed_at or run.cancelled_at)
    raw = {} if run is None else run.raw
    facets: dict[str, Any] = {
        FACET_KEY: facet_class()(
            runId=seen_run.run_id,
            runUrl=seen_run.run_url,
            taskId=None if run is None else run.task_id,
            taskSlug=seen_run.task_slug or _text(raw.get("taskSlug")),
            environment=seen_run.environment or _text(raw.get("envSlug")),
            status=None if run is None else str(run.status),
            createdAt=None if run is None or run.created_at is None else run.created_at.isoformat(),
            endedAt=None if ended is None else ended.isoformat(),
            producer=PRODUCER,
        ),
        "externalQuery": external_query_run.ExternalQueryRunFacet(
            externalQueryId=seen_run.run_id, source=urlsplit(seen_run.api_url).netloc, producer=PRODUCER
        ),
    }
    if failed and seen_run.error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=seen_run.error, programmingLanguage="python", producer=PRODUCER
        )
    return facets


def operator_lineage(seen_run: RunSeen | None, *, task_instance: Any = None, failed: bool = False) -> Any:
    """The task event's facets; at the end of a task, also the Airplane run's own events."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    if seen_run is None:
        return OperatorLineage()
    facets = run_facets(seen_run, failed=failed)
    if task_instance is not None and seen_run.run is not None and seen_run.run.is_terminal:
        try:
            emit_run_events(seen_run, facets, task_instance)
        except Exception:  # lineage must never fail the task or hide its events
            log.warning(
                "Could not send the OpenLineage events of Airplane run %s", seen_run.run_id, exc_info=True
            )
    return OperatorLineage(run_facets=facets)


def emit_run_events(seen_run: RunSeen, facets: dict[str, Any], task_instance: Any) -> None:
    """START and COMPLETE/FAIL of the Airplane run as a job of its own, child of the Airflow task, at the
    server's times, with the job type ``AIRPLANE`` ``TASK``. Its run id is derived from the Airplane run
    id, so a re-attached run keeps one identity."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.providers.openlineage.plugins.macros import (
        lineage_job_name,
        lineage_job_namespace,
        lineage_root_job_name,
        lineage_root_job_namespace,
        lineage_root_run_id,
        lineage_run_id,
    )
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import job_type_job, parent_run
    from openlineage.client.uuid import generate_static_uuid

    run = seen_run.run
    assert run is not None
    now = datetime.now(UTC)
    created = run.created_at or now
    ended = run.succeeded_at or run.failed_at or run.cancelled_at or now
    namespace = lineage_job_namespace()
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=lineage_run_id(task_instance)),
        job=parent_run.Job(namespace=namespace, name=lineage_job_name(task_instance)),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=lineage_root_run_id(task_instance)),
            job=parent_run.RootJob(
                namespace=lineage_root_job_namespace(task_instance),
                name=lineage_root_job_name(task_instance),
            ),
        ),
        producer=PRODUCER,
    )
    name = f"airplane.{seen_run.environment or 'default'}.{seen_run.task_slug or run.task_id or 'task'}"
    job = Job(
        namespace=namespace,
        name=name,
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                jobType="TASK", integration=INTEGRATION, processingType="BATCH", producer=PRODUCER
            )
        },
    )
    ol_run = Run(
        runId=str(generate_static_uuid(instant=created, data=run.id.encode())),
        facets={**facets, "parent": parent},
    )
    end_state = RunState.COMPLETE if str(run.status) == "Succeeded" else RunState.FAIL
    adapter = get_openlineage_listener().adapter
    for state, moment in ((RunState.START, created), (end_state, ended)):
        adapter.emit(
            RunEvent(eventType=state, eventTime=moment.isoformat(), run=ol_run, job=job, producer=PRODUCER)
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
