"""Start and stop Airflow's real components (and the Airplane emulator) as separate processes.

Used by the integration and browser tests and by `make up` (scripts/up.py); it stays out of the wheel.

Each component runs in its own session, so teardown can signal everything it spawned (LocalExecutor
workers, task runners, the triggerer's runner subprocess) and then prove nothing is left. Readiness is
read from health endpoints, never from fixed sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import requests

T = TypeVar("T")

ADMIN_USER = "admin"
# Seconds a stopped component gets to exit after SIGTERM before SIGKILL.
STOP_GRACE = 20.0
TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5, what: str = "condition"
) -> T:
    """Call ``probe`` until it returns something other than None; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except (requests.RequestException, OSError) as exc:  # not up yet
            last_error, value = exc, None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})"
            )
        time.sleep(interval)


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (read from /proc, Linux only)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # Fields after the parenthesised command: state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def kill_session(sid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to every process group in session ``sid`` (each component started one session)."""
    groups = set()
    for pid in session_pids(sid):
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            groups.add(os.getpgid(pid))
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)


@dataclass
class Component:
    """One started process and the session it leads."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] | None
    # How it was started, so it can be started again the same way (restart).
    cmd: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    # Where this process's output starts in its log (a restarted component appends to the same file).
    log_start: int = 0

    @property
    def sid(self) -> int:
        return self.proc.pid  # start_new_session makes the child its session leader

    def stop(self, *, sig: signal.Signals = signal.SIGTERM, grace: float = STOP_GRACE) -> None:
        """Signal the whole session; escalate to SIGKILL for whatever is still alive after ``grace``."""
        kill_session(self.sid, sig)
        deadline = time.monotonic() + grace
        while session_pids(self.sid) and time.monotonic() < deadline:
            self.proc.poll()  # reap the leader so it does not linger as a zombie
            time.sleep(0.2)
        if session_pids(self.sid):
            kill_session(self.sid, signal.SIGKILL)
            wait_until(lambda: None if session_pids(self.sid) else True, timeout=10, what=f"{self.name} dead")
        self.proc.wait(timeout=10)
        if self.log_file is not None:
            self.log_file.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_text(self) -> str:
        """What this process has logged (not what an earlier process of the same name did)."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")


@dataclass
class AirflowStack:
    """api-server, scheduler (LocalExecutor), dag-processor and triggerer on SQLite, plus the emulator.

    The one home for starting, watching and stopping a stack's processes; other shapes of Airflow
    (``cluster_stack.ClusterStack``: PostgreSQL, Redis, Celery workers, two triggerers) subclass it and
    override ``env``, ``_start_services``/``_stop_services``, ``airflow_components`` and ``wait_healthy``.
    """

    home: Path
    dags_source: Path
    api_key: str
    emulator_tasks: dict[str, dict[str, Any]]
    # DAG files copied next to ``dags_source`` (e.g. an example DAG the stack should run as it ships).
    extra_dags: tuple[Path, ...] = ()
    parallelism: int = 4
    # True: airplane_default is stored in Airflow's database (listed and editable in the UI) once the
    # API server is up; False: it comes from AIRFLOW_CONN_AIRPLANE_DEFAULT, as in a deployment's secrets.
    connection_in_db: bool = False
    # Environment every Airflow process also gets (e.g. where a test DAG records what it saw, statsd).
    extra_env: dict[str, str] = field(default_factory=dict)
    # Environment of one component on top of that, by name (e.g. the triggerer's own statsd prefix).
    component_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # More flags of the standalone emulator (e.g. ``("--realistic", "--seed", "7")``).
    emulator_args: tuple[str, ...] = ()
    components: dict[str, Component] = field(default_factory=dict)
    api_port: int = 0
    emulator_url: str = ""
    _token: str = ""
    _secret: str = ""
    _fernet_key: str = ""

    # ---- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        """The environment every Airflow component gets: nothing inherited from the test process's Airflow."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__FERNET_KEY": self._fernet_key,
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__SECRET_KEY": self._secret,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A killed triggerer's triggers go to the next one once its heartbeat is this old.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                **self.extra_env,
            }
        )
        if not self.connection_in_db:
            env["AIRFLOW_CONN_AIRPLANE_DEFAULT"] = json.dumps(self.connection())
        return env

    def connection(self) -> dict[str, Any]:
        """``airplane_default``: the emulator, whose run pages (``/runs/<id>``) the run links open."""
        return {
            "conn_type": "airplane",
            "host": self.emulator_url,
            "password": self.api_key,
            "extra": {"env_slug": "prod", "app_url": self.emulator_url},
        }

    def start(self) -> None:
        """Migrate the DB, start the emulator and the four components, and wait until all are healthy."""
        self._secret = secrets.token_hex(16)
        self._fernet_key = _fernet_key()
        shutil.copytree(self.dags_source, self.home / "dags", ignore=shutil.ignore_patterns("__pycache__"))
        for extra in self.extra_dags:
            shutil.copy(extra, self.home / "dags" / extra.name)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        try:
            self._start_services()
            self._start_emulator()
            self._migrate()
            for name, cmd, extra_env in self.airflow_components():
                self._spawn(name, cmd, extra_env)
            self.wait_healthy()
            if self.connection_in_db:
                conn = self.connection()
                self.api(
                    "POST",
                    "/connections",
                    json={
                        "connection_id": "airplane_default",
                        "conn_type": conn["conn_type"],
                        "host": conn["host"],
                        "password": conn["password"],
                        "extra": json.dumps(conn["extra"]),
                    },
                )
        except BaseException:
            self.stop()
            raise

    def _start_services(self) -> None:
        """Start what Airflow needs before it migrates (nothing for SQLite)."""

    def _stop_services(self) -> None:
        """Stop what ``_start_services`` started; runs after every component has stopped."""

    def airflow_components(self) -> list[tuple[str, list[str], dict[str, str]]]:
        """(name, command, extra environment) of every Airflow process, in start order."""
        port = str(self.api_port)
        commands = [
            ("api-server", ["airflow", "api-server", "-H", "127.0.0.1", "-p", port, "-w", "1"]),
            ("scheduler", ["airflow", "scheduler", "--skip-serve-logs"]),
            ("dag-processor", ["airflow", "dag-processor"]),
            ("triggerer", ["airflow", "triggerer", "--skip-serve-logs"]),
        ]
        return [(name, cmd, dict(self.component_env.get(name, {}))) for name, cmd in commands]

    def _migrate(self, timeout: float = 300.0) -> None:
        log_path = self.home / "logs" / "db-migrate.log"
        with log_path.open("wb") as log_file:
            try:
                subprocess.run(
                    ["airflow", "db", "migrate"],
                    env=self.env(),
                    check=True,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
                raise RuntimeError(f"airflow db migrate failed ({err}); see {log_path}") from err

    def _start_emulator(self) -> None:
        tasks_file = self.home / "emulator-tasks.json"
        tasks_file.write_text(json.dumps(self.emulator_tasks))
        cmd = [
            sys.executable, "-m", "airflow_provider_airplane.testing",
            "--host", "127.0.0.1", "--port", "0", "--api-key", self.api_key, "--tasks", str(tasks_file),
            *self.emulator_args,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        log_path = self.home / "logs" / "emulator.log"
        self.components["emulator"] = Component("emulator", proc, log_path, None)
        assert proc.stdout is not None
        # Its URL on stdout; a hostile setting first prints its seed on stderr (merged into the same pipe).
        before: list[str] = []
        while not (line := proc.stdout.readline().decode().strip()).startswith("http"):
            before.append(line)
            if not line and proc.poll() is not None:
                raise RuntimeError(f"emulator exited before printing its URL: {before!r}")
        self.emulator_url = line
        log_path.write_text("".join(f"{text}\n" for text in before))
        # Keep draining its output so a full pipe never blocks it.
        threading.Thread(target=_copy_stream, args=(proc.stdout, log_path), daemon=True).start()

    def _spawn(self, name: str, cmd: list[str], extra_env: dict[str, str] | None = None) -> Component:
        log_path = self.home / "logs" / f"{name}.log"
        log_file = log_path.open("ab")
        log_start = log_file.tell()
        proc = subprocess.Popen(
            cmd,
            env={**self.env(), **(extra_env or {})},
            cwd=self.home,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        component = Component(name, proc, log_path, log_file, cmd, dict(extra_env or {}), log_start)
        self.components[name] = component
        return component

    def health(self) -> dict[str, Any]:
        response = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait_healthy(self, timeout: float = 300.0) -> None:
        """Wait for metadatabase, scheduler, triggerer and dag processor to report healthy."""

        def probe() -> bool | None:
            self.check_alive()
            body = self.health()
            statuses = [part.get("status") for part in body.values() if isinstance(part, dict)]
            return True if statuses and all(s == "healthy" for s in statuses) else None

        wait_until(probe, timeout=timeout, what="Airflow components healthy")

    def check_alive(self) -> None:
        """Fail, naming the component and its log, if one of them has exited."""
        for name, component in self.components.items():
            if component.proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {component.proc.returncode}; log {component.log_path}:\n"
                    f"{component.tail()}"
                )

    def stop(self) -> None:
        """Stop every component (whole sessions) and assert that no process of theirs survives."""
        components = list(self.components.values())
        try:
            # All at once, so the grace periods run side by side rather than one after another.
            for component in components:
                kill_session(component.sid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            for component in reversed(components):
                component.stop(grace=max(1.0, deadline - time.monotonic()))
        finally:
            self.components.clear()
            self._stop_services()
        leftovers = {c.name: session_pids(c.sid) for c in components if session_pids(c.sid)}
        assert not leftovers, f"processes left behind: {leftovers}"

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> Component:
        """Stop component ``name``'s whole session with ``sig`` (SIGKILL: no clean-up at all, as when a
        machine is lost); returns it, so it can be started again with ``respawn``."""
        component = self.components.pop(name)
        component.stop(sig=sig)
        return component

    def respawn(self, component: Component) -> Component:
        """Start a stopped component again, with the command and environment it had."""
        return self._spawn(component.name, component.cmd, component.extra_env)

    def start_component(self, name: str) -> Component:
        """Start Airflow component ``name`` (one of ``airflow_components``), e.g. again after ``kill``."""
        for known, cmd, extra_env in self.airflow_components():
            if known == name:
                return self._spawn(name, cmd, extra_env)
        raise KeyError(f"no Airflow component {name!r} in this stack")

    def restart_triggerer(
        self, sig: signal.Signals = signal.SIGKILL, while_down: Callable[[], object] | None = None
    ) -> None:
        """Stop the triggerer's whole session with ``sig`` (SIGKILL: no clean-up at all), call
        ``while_down`` if given, then start a new one."""
        component = self.kill("triggerer", sig)
        if while_down is not None:
            while_down()
        self.respawn(component)

    # ---- REST API (SimpleAuthManager: password file + POST /auth/token) --------------------------

    def admin_password(self) -> str:
        """The password the API server generated for ``admin`` (SimpleAuthManager)."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        password: str = passwords[ADMIN_USER]
        return password

    def token(self) -> str:
        if not self._token:
            response = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": ADMIN_USER, "password": self.admin_password()},
                timeout=10,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API (``/api/v2`` + path) and return the decoded JSON body."""
        response = requests.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            **kwargs,
        )
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 90.0) -> None:
        """Wait until the DAG processor has parsed ``dag_id`` (it then shows up in the REST API)."""

        def probe() -> bool | None:
            response = requests.get(
                f"{self.base_url}/api/v2/dags/{dag_id}",
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=10,
            )
            return True if response.status_code == 200 else None

        wait_until(probe, timeout=timeout, what=f"DAG {dag_id} parsed")

    def trigger_dag(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause ``dag_id`` and start a run now; returns its dag_run_id."""
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        body = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        dag_run_id: str = body["dag_run_id"]
        return dag_run_id

    def _ti_path(self, dag_id: str, dag_run_id: str, task_id: str) -> str:
        quoted = urllib.parse.quote(dag_run_id, safe="")
        return f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}"

    def ti_state(self, dag_id: str, dag_run_id: str, task_id: str) -> str | None:
        state: str | None = self.api("GET", self._ti_path(dag_id, dag_run_id, task_id))["state"]
        return state

    def wait_for_ti_state(
        self, dag_id: str, dag_run_id: str, task_id: str, states: Iterable[str], timeout: float = 120.0
    ) -> str:
        """Wait until the TI reaches one of ``states``; fail early if it ends in another final state."""
        wanted = set(states)

        def probe() -> str | None:
            state = self.ti_state(dag_id, dag_run_id, task_id)
            if state in wanted:
                return state
            if state in TERMINAL_TI_STATES:
                raise AssertionError(f"{dag_id}.{task_id} ended {state}, expected one of {sorted(wanted)}")
            return None

        return wait_until(probe, timeout=timeout, what=f"{dag_id}.{task_id} in {sorted(wanted)}")

    def set_ti_state(self, dag_id: str, dag_run_id: str, task_id: str, state: str) -> None:
        """What a user does with "Mark failed/success" in the UI."""
        self.api("PATCH", self._ti_path(dag_id, dag_run_id, task_id), json={"new_state": state})

    def read(self, path: str, **params: Any) -> Any:
        """A REST API read (``/api/v2`` + path) that rides out the API server's transient 500s (SQLite busy
        on a loaded machine); None for a 404 (e.g. no XCom yet, no queued events)."""
        for _ in range(10):
            response = requests.get(
                f"{self.base_url}/api/v2{path}",
                params=params,
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=30,
            )
            if response.status_code < 500:
                break
            time.sleep(1)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def xcom(
        self, dag_id: str, dag_run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """The XCom value (of one mapped task instance with ``map_index``), or None while there is none."""
        path = f"{self._ti_path(dag_id, dag_run_id, task_id)}/xcomEntries/{key}"
        body = self.read(path, deserialize="true", map_index=map_index)
        return None if body is None else body["value"]


def _copy_stream(stream: IO[bytes], path: Path) -> None:
    with path.open("ab") as sink:
        for line in stream:
            sink.write(line)
            sink.flush()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
