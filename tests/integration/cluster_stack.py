"""Airflow in the shape production runs it, on one machine: PostgreSQL, Redis, CeleryExecutor, two Celery
workers and two triggerers (plus api-server, scheduler, dag-processor and the emulator).

Process start, stop and readiness stay in ``AirflowStack``; this adds the services and the extra
components. PostgreSQL and Redis come from the Debian packages (``make test-deps``).
Two triggerers or workers on one host need their own host names: every Airflow process gets
``STACK_HOSTNAME`` and a ``hostname_callable`` that returns it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_stack import AirflowStack, free_port, kill_session, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
DB_USER = DB_PASSWORD = DB_NAME = "airflow"
HOSTNAME_MODULE = '''"""Per-process host names: two triggerers or workers on one test machine."""

import os
import socket


def hostname() -> str:
    return os.environ.get("STACK_HOSTNAME") or socket.getfqdn()
'''
# What the cluster suite measured; conftest.py prints it at the end of the run, so CI logs keep it.
METRICS: dict[str, str] = {}


class ComponentDown(RuntimeError):
    """A component did not come up (missing, exited, or not ready in time); names it and its log."""


@dataclass
class ClusterStack(AirflowStack):
    """PostgreSQL + Redis + CeleryExecutor with ``workers`` Celery workers and ``triggerers`` triggerers."""

    triggerers: int = 2
    workers: int = 2
    worker_concurrency: int = 10
    pg_port: int = 0
    redis_port: int = 0
    pg_dir: Path | None = None
    postmaster_pid: int | None = None
    peak_rss_bytes: int = 0
    _sampler: threading.Thread | None = None
    _sampling: threading.Event = field(default_factory=threading.Event)

    # ---- configuration ---------------------------------------------------------------------------

    @property
    def db_url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.pg_port}/{DB_NAME}"

    def env(self) -> dict[str, str]:
        env = super().env()
        pylib = self.home / "pylib"
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.db_url}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "stack_hostname.hostname",
                "PYTHONPATH": os.pathsep.join(p for p in (str(pylib), env.get("PYTHONPATH", "")) if p),
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                # Production defaults for the triggerers: a heartbeat every 5 s, a triggerer counts as
                # dead (and its triggers move) once its heartbeat is 30 s old.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "5",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "30",
                # A lost worker's tasks are noticed after 60 s without a heartbeat (default 300 s).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                **self.extra_env,
            }
        )
        return env

    def airflow_components(self) -> list[tuple[str, list[str], dict[str, str]]]:
        base = [c for c in super().airflow_components() if c[0] != "triggerer"]
        triggerers = [
            (name, ["airflow", "triggerer", "--skip-serve-logs"], {"STACK_HOSTNAME": name})
            for name in self.triggerer_names
        ]
        workers = [
            (
                name,
                ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"],
                {"STACK_HOSTNAME": name},
            )
            for name in self.worker_names
        ]
        return base + triggerers + workers

    @property
    def triggerer_names(self) -> list[str]:
        return [f"triggerer-{i + 1}" for i in range(self.triggerers)]

    @property
    def worker_names(self) -> list[str]:
        return [f"worker-{i + 1}" for i in range(self.workers)]

    # ---- PostgreSQL and Redis --------------------------------------------------------------------

    def _start_services(self) -> None:
        for binary in (PG_BIN / "initdb", PG_BIN / "pg_ctl"):
            if not binary.exists():
                raise ComponentDown(f"{binary} is missing: run make test-deps (as root)")
        if shutil.which("redis-server") is None:
            raise ComponentDown("redis-server is missing: run make test-deps (as root)")
        pylib = self.home / "pylib"
        pylib.mkdir(exist_ok=True)
        (pylib / "stack_hostname.py").write_text(HOSTNAME_MODULE)
        self._start_postgres()
        self._start_redis()
        self._sampler = threading.Thread(target=self._sample_memory, daemon=True)
        self._sampler.start()

    def _as_postgres(self) -> list[str]:
        """initdb refuses to run as root: run PostgreSQL's tools as the postgres user when we are root."""
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _start_postgres(self, timeout: int = 120) -> None:
        # Outside the (root-only) pytest temp dir, so the postgres user can reach it.
        self.pg_dir = Path(tempfile.mkdtemp(prefix="airplane-stack-pg-"))
        data, log = self.pg_dir / "data", self.pg_dir / "postgresql.log"
        if os.geteuid() == 0:
            shutil.chown(self.pg_dir, "postgres", "postgres")
        self.pg_port = free_port()
        as_pg = self._as_postgres()
        self._run_service(
            "PostgreSQL initdb",
            [*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            timeout=timeout,
        )
        options = (
            f"-p {self.pg_port} -k {self.pg_dir} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c fsync=off -c synchronous_commit=off"
        )
        try:
            self._run_service(
                "PostgreSQL",
                [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(timeout),
                 "-o", options, "start"],
                timeout=timeout + 10,
            )  # fmt: skip
        finally:
            pid_file = data / "postmaster.pid"
            if pid_file.exists():
                self.postmaster_pid = int(pid_file.read_text().split()[0])
        psql = ["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
        self._run_service(
            "PostgreSQL (creating the airflow database)",
            [*psql, "-c", f"create user {DB_USER} password '{DB_PASSWORD}'",
             "-c", f"create database {DB_NAME} owner {DB_USER}"],
            timeout=60,
        )  # fmt: skip

    def _run_service(self, what: str, cmd: list[str], *, timeout: float) -> None:
        """Run a service's set-up command; on failure or timeout name it and where its log is."""
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise ComponentDown(
                f"{what} did not come up within {timeout:.0f}s; {self._pg_log_hint()}"
            ) from err
        if result.returncode != 0:
            raise ComponentDown(
                f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}; "
                f"{self._pg_log_hint()}"
            )

    def _pg_log_hint(self) -> str:
        return f"PostgreSQL's log: {self.home / 'logs' / 'postgresql.log'} (copied there at teardown)"

    def _start_redis(self, timeout: float = 60.0) -> None:
        self.redis_port = self.redis_port or free_port()
        redis_dir = self.home / "redis"
        redis_dir.mkdir()
        redis = self._spawn(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
             "--save", "", "--appendonly", "no"],
        )  # fmt: skip

        def pong() -> bool | None:
            if redis.proc.poll() is not None:
                raise ComponentDown(f"Redis exited with {redis.proc.returncode}; log {redis.log_path}")
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return True if sock.recv(64).startswith(b"+PONG") else None

        try:
            wait_until(pong, timeout=timeout, what="Redis")
        except TimeoutError as err:
            raise ComponentDown(
                f"Redis did not answer PING within {timeout:.0f}s; log {redis.log_path}"
            ) from err

    def _stop_services(self) -> None:
        """Stop PostgreSQL, then delete every data directory (PostgreSQL's log is kept in logs/)."""
        self._sampling.set()
        try:
            self._stop_postgres()
        finally:
            if self.pg_dir is not None:
                log = self.pg_dir / "postgresql.log"
                if log.exists():
                    shutil.copy(log, self.home / "logs" / "postgresql.log")
                shutil.rmtree(self.pg_dir, ignore_errors=True)
            shutil.rmtree(self.home / "redis", ignore_errors=True)
        left = [str(d) for d in (self.pg_dir, self.home / "redis") if d is not None and d.exists()]
        assert not left, f"data directories left behind: {left}"

    def _stop_postgres(self) -> None:
        if self.pg_dir is None or not (self.pg_dir / "data" / "postmaster.pid").exists():
            return
        subprocess.run(
            [*self._as_postgres(), str(PG_BIN / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-m", "fast",
             "-w", "-t", "60", "stop"],
            capture_output=True,
            timeout=90,
            check=False,
        )  # fmt: skip
        pid = self.postmaster_pid
        if pid is not None and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: None if alive(pid) else True, timeout=20, what="PostgreSQL gone")
        assert pid is None or not alive(pid), f"PostgreSQL (pid {pid}) left behind"

    # ---- readiness -------------------------------------------------------------------------------

    def wait_healthy(self, timeout: float = 300.0) -> None:
        """Health endpoint, then every triggerer heartbeating in the job table, then every worker ready."""
        super().wait_healthy(timeout=timeout)
        self.wait_triggerers(set(self.triggerer_names), timeout=timeout)
        for name in self.worker_names:
            self.wait_worker(name, timeout=timeout)

    def wait_triggerers(self, names: set[str], timeout: float = 120.0) -> None:
        def probe() -> bool | None:
            self.check_alive()
            return True if names <= set(self.live_triggerers()) else None

        try:
            wait_until(probe, timeout=timeout, what="triggerers heartbeating")
        except TimeoutError as err:
            missing = sorted(names - set(self.live_triggerers()))
            logs = ", ".join(str(self.components[n].log_path) for n in missing if n in self.components)
            raise ComponentDown(
                f"triggerer(s) {missing} not heartbeating after {timeout:.0f}s; logs: {logs}"
            ) from err

    def respawn_triggerer(self, name: str, timeout: float = 240.0) -> None:
        """Start triggerer ``name`` again (after ``kill``) and wait until it heartbeats."""
        self.start_component(name)
        self.wait_triggerers({name}, timeout=timeout)

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """SIGSTOP component ``name``'s whole session for the block (SIGCONT on the way out, also on failure).

        A paused triggerer neither heartbeats nor picks up triggers: what Airflow sees of a triggerer
        whose host stalls. Its triggers move once its heartbeat is older than the health-check threshold.
        """
        sid = self.components[name].sid
        kill_session(sid, signal.SIGSTOP)
        try:
            yield
        finally:
            kill_session(sid, signal.SIGCONT)

    def _heartbeat(self, triggerer: str, what: str) -> float:
        rows = self.sql(
            f"select {what} from job where job_type = 'TriggererJob' and state = 'running' and hostname = %s "
            "order by latest_heartbeat desc limit 1",
            (triggerer,),
        )
        return float(rows[0][0]) if rows else math.inf

    def heartbeat_age(self, triggerer: str) -> float:
        """Seconds since triggerer ``triggerer``'s latest heartbeat: 5-10 s while it is well (heartbeat
        every 5 s), and its triggers move to another triggerer once it passes 30 s."""
        return self._heartbeat(triggerer, "extract(epoch from now() - latest_heartbeat)")

    def wait_heartbeat(self, triggerer: str, timeout: float = 60.0) -> None:
        """Wait for triggerer ``triggerer``'s next heartbeat (e.g. after a pause)."""
        stamp = "extract(epoch from latest_heartbeat)"
        last = self._heartbeat(triggerer, stamp)
        wait_until(
            lambda: True if self._heartbeat(triggerer, stamp) > last else None,
            timeout=timeout,
            what=f"a heartbeat of {triggerer}",
        )

    def wait_worker(self, name: str, timeout: float = 180.0) -> None:
        """A Celery worker logs ``<name>@<host> ready.`` once it consumes from the broker."""
        component = self.components[name]

        def probe() -> bool | None:
            self.check_alive()
            text = component.log_text()
            return True if f"{name}@" in text and " ready." in text else None

        try:
            wait_until(probe, timeout=timeout, what=f"Celery worker {name}")
        except TimeoutError as err:
            raise ComponentDown(
                f"Celery worker {name} not ready after {timeout:.0f}s; log {component.log_path}"
            ) from err

    # ---- the metadata database -------------------------------------------------------------------

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.pg_port, user=DB_USER, password=DB_PASSWORD, dbname=DB_NAME
        )
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def live_triggerers(self, max_age: float = 30.0) -> dict[str, int]:
        """Host name -> job id of every triggerer whose heartbeat is younger than ``max_age`` seconds."""
        rows = self.sql(
            "select hostname, id from job where job_type = 'TriggererJob' and state = 'running' "
            "and latest_heartbeat > now() - make_interval(secs => %s)",
            (max_age,),
        )
        return {str(host): int(job_id) for host, job_id in rows}

    def triggers_by_triggerer(self, dag_id: str) -> dict[str | None, list[tuple[str, int]]]:
        """Triggerer host name (None: not picked up) -> (task_id, map_index) of ``dag_id``'s deferred TIs."""
        rows = self.sql(
            "select j.hostname, ti.task_id, ti.map_index from task_instance ti "
            "join trigger t on ti.trigger_id = t.id left join job j on t.triggerer_id = j.id "
            "where ti.dag_id = %s and ti.state = 'deferred'",
            (dag_id,),
        )
        held: dict[str | None, list[tuple[str, int]]] = {}
        for host, task_id, map_index in rows:
            held.setdefault(host, []).append((str(task_id), int(map_index)))
        return held

    # ---- Celery ----------------------------------------------------------------------------------

    def celery_control(self, *args: str) -> str:
        """``celery control ...`` against the stack's broker (e.g. cancel_consumer default -d NAME@host)."""
        result = subprocess.run(
            ["celery", "--app", CELERY_APP, "control", *args],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"celery control {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def celery_name(self, worker: str) -> str:
        return f"{worker}@{socket.gethostname()}"

    # ---- measurements ----------------------------------------------------------------------------

    def stack_pids(self) -> set[int]:
        """Every live process of the stack: the components' sessions and PostgreSQL's."""
        sids = {c.sid for c in self.components.values()}
        if self.postmaster_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                sids.add(os.getsid(self.postmaster_pid))
        pids = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getsid(int(entry.name)) in sids:
                        pids.add(int(entry.name))
        return pids

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.stack_pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return total

    def _sample_memory(self) -> None:
        while not self._sampling.wait(2.0):
            with contextlib.suppress(Exception):  # a process exiting mid-sample is not an error
                self.peak_rss_bytes = max(self.peak_rss_bytes, self.rss_bytes())


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
