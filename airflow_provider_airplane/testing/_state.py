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

    def visible_logs(self, now: float) -> int:
        """How many lines are written by ``now``; a cancel stops the rest."""
        until = now if self.cancelled is None else min(now, self.cancelled - 1e-6)
        count = 0
        while count < len(self.log_texts) and self.log_time(count) <= until:
            count += 1
        return count

    def log_item(self, index: int) -> dict[str, Any]:
        return {
            "timestamp": rfc3339(self.log_time(index)),
            "insertID": f"{self.id[-6:]}{index:08d}",
            "text": self.log_texts[index],
            "level": "info",
            "taskSlug": self.task.slug,
        }

    def to_api(self, now: float) -> dict[str, Any]:
        """The flat public run object (reference section 5), as of ``now``."""
        status = self.status(now)
        cancelled = self.cancelled_at(now)
        until = cancelled if cancelled is not None else now
        active = self.active if self.active <= until else None
        return {
            "id": self.id,
            "taskID": self.task.id,
            "taskSlug": self.task.slug,
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
            "envSlug": self.env_slug,
            "envID": self.env_id,
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
        if path is not None and not path.startswith("/v0/"):
            path = "/v0/" + path.lstrip("/")
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

    def reset(self) -> None:
        """Forget runs, idempotency records, counts, the log and faults; keep tasks and keys."""
        with self.lock:
            self.runs.clear()
            self.idempotency.clear()
            self.faults.clear()
            self.counts.clear()
            self.log.clear()

    def request_counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def request_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(entry) for entry in self.log]

    def run_objects(self) -> list[dict[str, Any]]:
        """Every run as the API shows it, oldest first."""
        with self.lock:
            now = self.now()
            return [run.to_api(now) for run in self.runs.values()]

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
            )
            self.runs[run.id] = run
            return run.id

    def get_run(self, run_id: str | None) -> dict[str, Any]:
        with self.lock:
            return self._run(run_id).to_api(self.now())

    def get_outputs(self, run_id: str | None) -> Any:
        with self.lock:
            return self._run(run_id).outputs(self.now())

    def get_logs(self, run_id: str | None, prev_token: str | None) -> dict[str, Any]:
        """One page of the lines written so far after ``prev_token``; no lines: an empty token."""
        with self.lock:
            run = self._run(run_id)
            start = 0
            if prev_token:
                owner, _, index = prev_token.rpartition(".")
                if owner != run.id or not index.isdigit():
                    raise ApiError(400, f"Invalid prev_token: {prev_token!r}")
                start = int(index)
            end = min(run.visible_logs(self.now()), start + LOG_PAGE_SIZE)
            items = [run.log_item(i) for i in range(start, end)]
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
            items = [run.log_item(i) for i in range(run.visible_logs(now))]
            return run.to_api(now), items, run.outputs(now)

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
        """One page, most recent first; ``since`` is inclusive and ``until`` exclusive."""
        with self.lock:
            now = self.now()
            chosen = []
            for run in reversed(self.runs.values()):
                if task_id and run.task.id != task_id:
                    continue
                if task_slug and run.task.slug != task_slug:
                    continue
                updated = run.updated(now)
                if since is not None and updated < since:
                    continue
                if until is not None and updated >= until:
                    continue
                chosen.append(run)
            return [run.to_api(now) for run in chosen[page * limit : (page + 1) * limit]]

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
