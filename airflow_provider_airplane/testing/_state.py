"""The emulator's in-memory state: tasks, keys, runs, idempotency records, faults and the request log.

Everything here is plain data guarded by one lock, so the HTTP handlers (on the server's loop thread)
and a test's controls (on the main thread) can both touch it. Run statuses are computed from
timestamps when a run is looked at, never by timers, so thousands of runs cost nothing while idle.
"""

from __future__ import annotations

import random
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_airplane.testing._hostile import REALISTIC, Hostile, v0_path

# A run is Queued this long after creation and Active this long after creation (capped by its duration),
# so a client polling at once sees every state of a run that lasts longer than that.
QUEUE_DELAY = 0.1
START_DELAY = 0.2
NOT_TERMINAL = ("NotStarted", "Queued", "Active")
REDACTED = "***"
# The request log keeps the most recent entries only, so a long benchmark cannot exhaust memory.
LOG_LIMIT = 100_000
_KEY_HEADERS = ("x-airplane-api-key", "x-airplane-token")
# runs/getLogs serves at most this many lines per answer (the real page size is unknown, reference 4.6).
LOG_PAGE_SIZE = 100
Logs = list[str] | int | Callable[[dict[str, Any]], list[str]] | None
_ID_ALPHABET = string.ascii_lowercase + string.digits
# How runs/get and runs/list shape a run: the public API's object (reference section 5), or that plus
# the fields the CLI's dev server adds (its LocalRun), for clients written against the dev server.
PUBLIC = "public"
DEV_SERVER = "dev-server"
PROFILES = (PUBLIC, DEV_SERVER)


def new_id(prefix: str, now: float, length: int = 10) -> str:
    """An id shaped like Airplane's (``run20220215zv10o6s52qj``): prefix, UTC date, ``z``, random tail."""
    day = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")
    return prefix + day + "z" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def rfc3339(moment: float | None) -> str | None:
    """RFC 3339 in UTC with microseconds and ``Z``, the form Go's ``time.Time`` (the CLI) accepts."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    """An error answer: HTTP status, the ``error`` message and an optional ``code``."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass
class Task:
    """A registered task and how its runs behave."""

    slug: str
    id: str
    output: Any = None
    duration: float = 0.0
    fail: bool = False
    error: str | None = None
    requires_request: bool = False
    logs: Logs = None

    def describe(self) -> dict[str, Any]:
        """The task as the admin routes show it (a callable output or logs is shown by name)."""
        output: Any = self.output
        logs: Any = self.logs
        if callable(output):
            output = f"<callable {getattr(output, '__name__', 'output')}>"
        if callable(logs):
            logs = f"<callable {getattr(logs, '__name__', 'logs')}>"
        return {
            "slug": self.slug,
            "id": self.id,
            "output": output,
            "duration": self.duration,
            "fail": self.fail,
            "error": self.error,
            "requires_request": self.requires_request,
            "logs": logs,
        }


@dataclass
class Run:
    """One run; its status at any moment follows from these timestamps."""

    id: str
    task: Task
    param_values: dict[str, Any]
    resources: dict[str, Any]
    created: float
    created_by: str
    team_id: str
    env_slug: str | None
    env_id: str | None
    output: Any
    error: str | None
    # When a cancel takes effect (``cancel_delay`` after the request); a run that ends first is not cancelled.
    cancelled: float | None = None
    cancelled_by: str | None = None
    # Set by ``end_runs``: the run ends then instead of after its task's duration.
    ends_at: float | None = None
    log_texts: list[str] = field(default_factory=list)
    # Seconds between writing each line and it being readable (``log_jitter``); empty: none.
    log_delays: list[float] = field(default_factory=list)

    def cancelled_at(self, now: float) -> float | None:
        """When the run became Cancelled, if it has by ``now``."""
        if self.cancelled is None or self.cancelled > now or self.cancelled >= self.ended:
            return None
        return self.cancelled

    @property
    def queued(self) -> float:
        return self.created + min(QUEUE_DELAY, self.task.duration)

    @property
    def active(self) -> float:
        return self.created + min(START_DELAY, self.task.duration)

    @property
    def ended(self) -> float:
        return self.ends_at if self.ends_at is not None else self.created + self.task.duration

    @property
    def failed(self) -> bool:
        return self.error is not None

    def status(self, now: float) -> str:
        if self.cancelled_at(now) is not None:
            return "Cancelled"
        if now >= self.ended:
            return "Failed" if self.failed else "Succeeded"
        if now >= self.active:
            return "Active"
        if now >= self.queued:
            return "Queued"
        return "NotStarted"

    def updated(self, now: float) -> float:
        """When the status last changed, as of ``now``."""
        cancelled = self.cancelled_at(now)
        if cancelled is not None:
            return cancelled
        return max([self.created, *(t for t in (self.queued, self.active, self.ended) if t <= now)])

    def outputs(self, now: float) -> Any:
        """What ``runs/getOutputs`` serves: the output once finished, ``{"error": ...}`` if failed."""
        status = self.status(now)
        if status == "Succeeded":
            return self.output
        if status == "Failed":
            return {"error": self.error}
        return None

    def log_time(self, index: int) -> float:
        """Line ``index`` is written at an even step through the run's active time, before it ends."""
        share = (index + 1) / (len(self.log_texts) + 1)
        return self.active + (self.ended - self.active) * share

    def readable_logs(self, now: float) -> list[int]:
        """The lines readable by ``now`` (a cancel stops the rest), in the order they became readable.

        That is timestamp order unless ``log_delays`` let a line become readable after a later one. Lines
        that become readable later sort after these, so a token (a position here) stays valid.
        """
        until = now if self.cancelled is None else min(now, self.cancelled - 1e-6)
        delays = self.log_delays or [0.0] * len(self.log_texts)
        ready = []
        for index, delay in enumerate(delays):
            written = self.log_time(index)
            if written <= until and written + delay <= now:
                ready.append((written + delay, index))
        return [index for _, index in sorted(ready)]

    def log_item(self, index: int) -> dict[str, Any]:
        return {
            "timestamp": rfc3339(self.log_time(index)),
            "insertID": f"{self.id[-6:]}{index:08d}",
            "text": self.log_texts[index],
            "level": "info",
            "taskSlug": self.task.slug,
        }

    def to_api(self, now: float, profile: str = PUBLIC) -> dict[str, Any]:
        """The flat public run object (reference section 5) as of ``now``, and with the ``dev-server``
        profile the fields the CLI's dev server adds."""
        run = self._public(now)
        if profile == DEV_SERVER:
            run.update(
                runID=self.id,
                taskSlug=self.task.slug,
                taskName=self.task.slug,
                creatorID=self.created_by,
                parameters=[],
                parentID="",
                outputs=self.outputs(now),
                displays=[],
                prompts=[],
                sleeps=[],
                isWaitingForUser=False,
                envSlug=self.env_slug or "",
                isStdAPI=False,
            )
        return run

    def admin_view(self, now: float) -> dict[str, Any]:
        """The public object plus what a test wants to check that the API does not show: the task's
        slug and the environment the run was started in."""
        return {
            **self._public(now),
            "taskSlug": self.task.slug,
            "envSlug": self.env_slug,
            "envID": self.env_id,
        }

    def _public(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        cancelled = self.cancelled_at(now)
        until = cancelled if cancelled is not None else now
        active = self.active if self.active <= until else None
        return {
            "id": self.id,
            "taskID": self.task.id,
            "teamID": self.team_id,
            "status": status,
            "paramValues": self.param_values,
            "params": [],
            "permissions": [],
            "isPrivate": False,
            "resources": self.resources,
            "runtime": "standard",
            "sessionID": None,
            "constraints": {"labels": []},
            "createdAt": rfc3339(self.created),
            "createdBy": self.created_by,
            "activeAt": rfc3339(active),
            "succeededAt": rfc3339(self.ended) if status == "Succeeded" else None,
            "failedAt": rfc3339(self.ended) if status == "Failed" else None,
            "cancelledAt": rfc3339(cancelled),
            "cancelledBy": self.cancelled_by if cancelled is not None else None,
            "timeout": 3600,
            "zoneID": None,
        }


@dataclass
class Fault:
    """A planned misbehaviour for requests to ``path`` (None: every ``/v0`` path)."""

    path: str | None
    status: int | None
    count: int
    rate: float | None
    headers: dict[str, str]
    body: str | None
    drop: bool
    delay: float

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path

    @property
    def only_delays(self) -> bool:
        """True when the request is answered normally after the delay."""
        return self.status is None and self.body is None and not self.drop


@dataclass
class Stored:
    """A 2xx answer kept for an ``Idempotency-Key`` until ``expires``."""

    expires: float
    status: int
    body: Any


@dataclass
class State:
    """All mutable emulator state; hold ``lock`` while touching any of it."""

    api_key: str
    idempotency_ttl: float
    clock_offset: float
    # Seconds between a cancel request and the run reading Cancelled (the API cancels asynchronously).
    cancel_delay: float = 0.0
    profile: str = PUBLIC
    hostile: Hostile = field(default_factory=Hostile)
    lock: threading.RLock = field(default_factory=threading.RLock)
    team_id: str = ""
    keys: dict[str, bool] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    tasks_by_slug: dict[str, Task] = field(default_factory=dict)
    tasks_by_id: dict[str, Task] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], Stored] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    logs_endpoint: bool = True
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))

    def __post_init__(self) -> None:
        self.team_id = new_id("tea", self.now(), 7)
        self.add_key(self.api_key, allowed=True)

    def now(self) -> float:
        """The emulator's clock: wall time shifted by ``clock_offset``."""
        return time.time() + self.clock_offset

    # Controls -----------------------------------------------------------------------------------

    def add_task(
        self,
        slug: str,
        *,
        task_id: str | None = None,
        output: Any = None,
        duration: float = 0.0,
        fail: bool = False,
        error: str | None = None,
        requires_request: bool = False,
        logs: Logs = None,
    ) -> str:
        if not slug:
            raise ValueError("a task needs a slug")
        if duration < 0:
            raise ValueError("duration must be >= 0")
        if not (logs is None or callable(logs) or _is_count(logs) or _is_texts(logs)):
            raise ValueError("logs must be a list of strings, a number of lines, or a callable of the params")
        with self.lock:
            old = self.tasks_by_slug.get(slug)
            if old is not None:
                self.tasks_by_id.pop(old.id, None)
            task = Task(
                slug=slug,
                id=task_id or new_id("tsk", self.now(), 7),
                output=output,
                duration=float(duration),
                fail=fail,
                error=error,
                requires_request=requires_request,
                logs=logs,
            )
            self.tasks_by_slug[slug] = task
            self.tasks_by_id[task.id] = task
            return task.id

    def add_key(self, key: str, *, allowed: bool = True) -> None:
        if not key:
            raise ValueError("an API key must not be empty")
        with self.lock:
            self.keys[key] = allowed
            self.users.setdefault(key, new_id("usr", self.now(), 7))

    def inject_fault(
        self,
        path: str | None = None,
        *,
        status: int | None = None,
        count: int = 1,
        rate: float | None = None,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        drop: bool = False,
        delay: float = 0.0,
    ) -> None:
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate is a probability between 0 and 1")
        if count < 1 and rate is None:
            raise ValueError("count must be >= 1")
        path = v0_path(path)
        with self.lock:
            self.faults.append(
                Fault(path, status, count, rate, dict(headers or {}), body, drop, max(0.0, delay))
            )

    def end_runs(self, slug: str, *, after: float = 0.0) -> int:
        """Make every unfinished run of ``slug`` end ``after`` seconds from now; returns how many."""
        if after < 0:
            raise ValueError("after must be >= 0")
        with self.lock:
            now = self.now()
            chosen = [
                run for run in self.runs.values() if run.task.slug == slug and run.status(now) in NOT_TERMINAL
            ]
            for run in chosen:
                run.ends_at = max(now + after, run.active)
            return len(chosen)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def configure(self, *, realistic: bool = False, **settings: Any) -> None:
        """Change settings by name: ``profile``, ``clock_offset``, ``cancel_delay``, ``seed`` and the
        hostile knobs; ``realistic`` first applies the realistic mix (named settings win over it)."""
        if realistic:
            settings = {**REALISTIC, **settings}
        profile = settings.pop("profile", self.profile)
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        offset = settings.pop("clock_offset", self.clock_offset)
        delay = settings.pop("cancel_delay", self.cancel_delay)
        for name, value in (("clock_offset", offset), ("cancel_delay", delay)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number of seconds")
        if delay < 0:
            raise ValueError("cancel_delay must be >= 0")
        self.hostile.configure(**settings)
        with self.lock:
            self.profile, self.clock_offset, self.cancel_delay = profile, float(offset), float(delay)

    def settings(self) -> dict[str, Any]:
        """Every setting ``configure`` takes, as it is now (``seed`` included)."""
        with self.lock:
            own = {
                "profile": self.profile,
                "clock_offset": self.clock_offset,
                "cancel_delay": self.cancel_delay,
            }
        return {**own, **self.hostile.settings()}

    def reset(self) -> None:
        """Forget runs, idempotency records, counts, the log, faults and an outage; keep tasks, keys
        and settings."""
        with self.lock:
            self.runs.clear()
            self.idempotency.clear()
            self.faults.clear()
            self.counts.clear()
            self.log.clear()
        self.hostile.end_outage()

    def request_counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def request_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(entry) for entry in self.log]

    def run_objects(self) -> list[dict[str, Any]]:
        """Every run as it is now (not as a lagging listing shows it), oldest first, in the admin view."""
        with self.lock:
            now = self.now()
            return [run.admin_view(now) for run in self.runs.values()]

    def tasks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [task.describe() for task in self.tasks_by_slug.values()]

    # Serving ------------------------------------------------------------------------------------

    def record(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """Count a request and log it with any key redacted; the caller fills in ``status`` later."""
        with self.lock:
            shown = {
                name: REDACTED if name.lower() in _KEY_HEADERS or value in self.keys else value
                for name, value in headers.items()
            }
            entry: dict[str, Any] = {
                "time": self.now(),
                "method": method,
                "path": path,
                "query": query,
                "status": None,
                "headers": shown,
            }
            self.counts[path] = self.counts.get(path, 0) + 1
            self.log.append(entry)
            return entry

    def take_fault(self, path: str) -> Fault | None:
        """The fault this request meets, if any; count-limited faults are used up here."""
        with self.lock:
            for fault in self.faults:
                if not fault.matches(path):
                    continue
                if fault.rate is not None:
                    if random.random() < fault.rate:
                        return fault
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
            return None

    def authenticate(self, key: str | None) -> str:
        """The API user id behind ``key``, or an :class:`ApiError` (401 unknown, 403 not allowed)."""
        with self.lock:
            if not key:
                raise ApiError(401, "Missing API key: send it in the X-Airplane-API-Key header")
            allowed = self.keys.get(key)
            if allowed is None:
                raise ApiError(401, "Invalid API key")
            if not allowed:
                raise ApiError(
                    403, "This API key does not have permission to perform this action", "forbidden"
                )
            return self.users[key]

    def recall(self, idempotency_key: str, api_key: str) -> Stored | None:
        with self.lock:
            stored = self.idempotency.get((idempotency_key, api_key))
            if stored is None:
                return None
            if stored.expires <= self.now():
                del self.idempotency[(idempotency_key, api_key)]
                return None
            return stored

    def remember(self, idempotency_key: str, api_key: str, status: int, body: Any) -> None:
        with self.lock:
            self.idempotency[(idempotency_key, api_key)] = Stored(
                self.now() + self.idempotency_ttl, status, body
            )

    def execute(
        self,
        body: dict[str, Any],
        *,
        user: str,
        env_slug: str | None,
        env_id: str | None,
    ) -> str:
        """Start a run of the task named by ``slug`` or ``id``; returns its run id."""
        slug, task_id = body.get("slug"), body.get("id")
        params = body.get("paramValues")
        resources = body.get("resources")
        if not slug and not task_id:
            raise ApiError(400, "Invalid body: either an ID or a slug must be provided")
        if params is not None and not isinstance(params, dict):
            raise ApiError(400, "Invalid body: paramValues must be an object")
        if resources is not None and not isinstance(resources, dict):
            raise ApiError(400, "Invalid body: resources must be an object")
        with self.lock:
            if task_id:
                task = self.tasks_by_id.get(str(task_id))
                if task is None:
                    raise ApiError(404, f'Task with id "{task_id}" not found')
            else:
                task = self.tasks_by_slug.get(str(slug))
                if task is None:
                    raise ApiError(404, f'Task with slug "{slug}" not found')
            if task.requires_request:
                raise ApiError(
                    403,
                    f'Task "{task.slug}" must be requested and approved before it can run',
                    "task_must_be_requested",
                )
            now = self.now()
            output, error = _outcome(task, params or {})
            log_texts, log_error = _log_texts(task, params or {})
            run = Run(
                id=new_id("run", now),
                task=task,
                param_values=params or {},
                resources=resources or {},
                created=now,
                created_by=user,
                team_id=self.team_id,
                env_slug=env_slug,
                env_id=env_id,
                output=output,
                error=error or log_error,
                log_texts=log_texts,
                log_delays=self.hostile.log_delays(len(log_texts)),
            )
            self.runs[run.id] = run
            return run.id

    def get_run(self, run_id: str | None) -> dict[str, Any]:
        with self.lock:
            return self._run(run_id).to_api(self.now(), self.profile)

    def get_outputs(self, run_id: str | None) -> Any:
        with self.lock:
            return self._run(run_id).outputs(self.now())

    def get_logs(self, run_id: str | None, prev_token: str | None) -> dict[str, Any]:
        """One page of the lines readable so far after ``prev_token``; no new lines: an empty token.

        With ``log_overlap`` a page with new lines starts that many lines before the token.
        """
        overlap = self.hostile.get("log_overlap")
        with self.lock:
            run = self._run(run_id)
            start = 0
            if prev_token:
                owner, _, index = prev_token.rpartition(".")
                if owner != run.id or not index.isdigit():
                    raise ApiError(400, f"Invalid prev_token: {prev_token!r}")
                start = int(index)
            readable = run.readable_logs(self.now())
            end = min(len(readable), start + LOG_PAGE_SIZE)
            first = max(0, start - overlap)
            items = [run.log_item(i) for i in readable[first:end]] if end > start else []
            return {
                "runID": run.id,
                "logs": items,
                "prev_token": f"{run.id}.{end}" if items else "",
                "next_token": "",
            }

    def run_page(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
        """What the run page shows: the run, the lines written so far, the outputs."""
        with self.lock:
            run = self._run(run_id)
            now = self.now()
            items = [run.log_item(i) for i in sorted(run.readable_logs(now))]
            return run.admin_view(now), items, run.outputs(now)

    def cancel(self, run_id: str | None, user: str) -> None:
        with self.lock:
            run = self._run(run_id)
            now = self.now()
            if run.status(now) not in NOT_TERMINAL:
                raise ApiError(400, f"cannot cancel run {run.id} (state is already terminal)")
            if run.cancelled is None:  # a repeated request does not postpone the first one
                run.cancelled = now + self.cancel_delay
                run.cancelled_by = user

    def list_runs(
        self,
        *,
        task_id: str | None,
        task_slug: str | None,
        since: float | None,
        until: float | None,
        limit: int,
        page: int,
    ) -> list[dict[str, Any]]:
        """One page, most recent first; ``since`` is inclusive and ``until`` exclusive.

        With ``list_lag`` the page shows the runs as they were that many seconds ago (an API server
        behind the others). With ``list_shift`` runs are ordered by their last change, so one that
        changes between page reads moves to the front, and a page after the first may start one run
        early, as if a run had been created since the previous page was read.
        """
        lag, shift = self.hostile.get("list_lag"), self.hostile.get("list_shift")
        early = 1 if page > 0 and self.hostile.list_shifted() else 0
        with self.lock:
            view = self.now() - lag
            chosen = []
            for run in reversed(self.runs.values()):
                if run.created > view:
                    continue
                if task_id and run.task.id != task_id:
                    continue
                if task_slug and run.task.slug != task_slug:
                    continue
                updated = run.updated(view)
                if since is not None and updated < since:
                    continue
                if until is not None and updated >= until:
                    continue
                chosen.append((updated, run))
            if shift:
                chosen.sort(key=lambda pair: pair[0], reverse=True)  # stable: ties stay newest first
            start = max(0, page * limit - early)
            return [run.to_api(view, self.profile) for _, run in chosen[start : start + limit]]

    def _run(self, run_id: str | None) -> Run:
        if not run_id:
            raise ApiError(400, "Missing required query parameter: id")
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, f'Run with id "{run_id}" not found')
        return run


def _outcome(task: Task, params: dict[str, Any]) -> tuple[Any, str | None]:
    """The run's output and error message (None unless it fails); a raising callable fails the run."""
    if task.fail:
        return None, task.error or "Run failed"
    output: Any = task.output
    if callable(output):
        producer: Callable[[dict[str, Any]], Any] = output
        try:
            output = producer(params)
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
    return output, None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(text, str) for text in value)


def _log_texts(task: Task, params: dict[str, Any]) -> tuple[list[str], str | None]:
    """The lines a run writes, and an error when a callable producing them raised (the run fails)."""
    logs = task.logs
    if logs is None:
        return [], None
    if isinstance(logs, int):
        return [f"{task.slug}: line {n} of {logs}" for n in range(1, logs + 1)], None
    if callable(logs):
        try:
            produced = logs(params)
        except Exception as exc:
            return [], f"{type(exc).__name__}: {exc}"
        return [str(text) for text in produced], None
    return list(logs), None
