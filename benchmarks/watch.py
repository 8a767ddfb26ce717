"""Waiting on N Airplane runs in one event loop: a ``runs/get`` per run per interval vs the shared watcher.

    .venv/bin/python benchmarks/watch.py                 # N = 100, 1000, 5000; runs end over 120 s (~13 min)
    .venv/bin/python benchmarks/watch.py --quick         # N = 100, 1000; runs end over 20 s (~2 min)
    .venv/bin/python benchmarks/watch.py --n 1000 --spread 60 --poll-interval 10
    .venv/bin/python benchmarks/watch.py --quick --metrics both   # each mode with statsd off, then on

For each N and mode a standalone emulator process and a fresh child process are started, so that the
server's CPU and the other mode's memory stay out of the numbers. The child imports the provider, notes
its RSS, starts N runs (their own tasks, each ending ``--lead`` + uniform(0, ``--spread``) seconds after
it starts), then waits on all of them at once, as a triggerer does after a restart:

- per-run: the pattern other providers use; each waiter has its own ``AirplaneAsyncHook`` (as each
  ``AirplaneRunTrigger`` does) and calls ``runs/get`` every interval until the run is terminal;
- watcher: each waiter is ``watch_run(...)`` of ``triggers/_watcher.py``.

Printed per mode: API requests (``runs/get`` + ``runs/list``, counted by the emulator), peak RSS growth above
the RSS after imports, CPU seconds of the waiting phase, and latency from the run's end (the emulator's
``succeededAt``) to the waiter's wake-up. ``--metrics on`` turns on Airflow's statsd (``[metrics]``) in the
child, sending to a UDP listener of the parent that counts the lines (the ``airplane.*`` metrics cost);
``both`` measures each mode off and then on. Targets checked at N >= 1000: watcher requests <= 5% of per-run,
watcher p95 <= poll interval + 1 s, watcher RSS growth <= 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from airflow_provider_airplane.testing import start_standalone

API_KEY = "tkn_benchmark"
GET = "/v0/runs/get"
LIST = "/v0/runs/list"
MODES = ("per-run", "watcher")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, nargs="+", default=None, help="waiting runs (default 100 1000 5000)")
    parser.add_argument("--spread", type=float, default=None, help="runs end over this many seconds (120)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls (5)")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds before the first run can end (5)")
    parser.add_argument("--quick", action="store_true", help="N = 100 and 1000, runs ending over 20 s")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--metrics", choices=("off", "on", "both"), default="off", help="Airflow's statsd in the child (off)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = [100, 1000] if args.quick else [100, 1000, 5000]
    if args.spread is None:
        args.spread = 20.0 if args.quick else 120.0
    return args


# The child: one mode, one N ----------------------------------------------------------------------------


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class _PeakRss:
    """Peak RSS from now on: the kernel's high-water mark once reset, else samples every 50 ms."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:  # no permission to reset VmHWM: sample instead (costs a little CPU)
            self.sampled = _rss_mb()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.sampled = max(self.sampled, _rss_mb())

    def stop(self) -> float:
        if self._thread is None:
            return _rss_mb("VmHWM")
        self._stop.set()
        self._thread.join()
        return max(self.sampled, _rss_mb())


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook
    from airflow_provider_airplane.models import AirplaneRun
    from airflow_provider_airplane.testing import EmulatorClient
    from airflow_provider_airplane.triggers._watcher import watch_run

    n, interval = args.n[0], args.poll_interval
    emulator = EmulatorClient(args.url)
    base_rss = _rss_mb()

    # Start the runs (not measured): POST /v0/tasks/execute, 50 at a time.
    run_ids: list[str] = [""] * n
    gate = asyncio.Semaphore(50)
    async with aiohttp.ClientSession(headers={"X-Airplane-API-Key": API_KEY}) as session:

        async def execute(number: int) -> None:
            async with (
                gate,
                session.post(f"{args.url}/v0/tasks/execute", json={"slug": f"b{number}"}) as answer,
            ):
                answer.raise_for_status()
                run_ids[number] = (await answer.json())["runID"]

        await asyncio.gather(*(execute(number) for number in range(n)))

    async def per_run(run_id: str) -> AirplaneRun:
        async with AirplaneAsyncHook() as hook:
            while True:
                run = await hook.get_run(run_id)
                if run.is_terminal:
                    return run
                await asyncio.sleep(interval)

    async def watched(run_id: str) -> AirplaneRun:
        async with watch_run(run_id, poll_interval=interval) as watch:
            return await watch.terminal()

    wait = per_run if args.child == "per-run" else watched
    latencies: list[float] = []

    async def waiter(run_id: str) -> None:
        started = time.time()
        run = await wait(run_id)
        woke = time.time()
        ended = run.succeeded_at or run.failed_at or run.cancelled_at
        assert ended is not None, run
        latencies.append(woke - max(ended.timestamp(), started))

    before = emulator.request_counts()
    peak = _PeakRss()
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(waiter(run_id) for run_id in run_ids))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    peak_rss = peak.stop()
    after = emulator.request_counts()
    gets, lists = (after.get(path, 0) - before.get(path, 0) for path in (GET, LIST))
    latencies.sort()
    return {
        "mode": args.child,
        "n": n,
        "gets": gets,
        "lists": lists,
        "requests": gets + lists,
        "rss_base_mb": base_rss,
        "rss_growth_mb": peak_rss - base_rss,
        "cpu_s": cpu,
        "wall_s": wall,
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "max_s": latencies[-1],
    }


# The parent: one emulator and one child per (N, mode) ---------------------------------------------------


class _StatsdSink:
    """A UDP statsd server on 127.0.0.1 that counts the metric lines it receives (and keeps nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.lines = 0
        self.airplane_lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            for line in data.splitlines():
                self.lines += 1
                self.airplane_lines += b".airplane." in line

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _measure(args: argparse.Namespace, n: int, mode: str, home: Path, *, metrics: bool) -> dict[str, Any]:
    rng = random.Random(args.seed + n)
    tasks = home / f"tasks-{n}.json"
    tasks.write_text(
        json.dumps({f"b{i}": {"duration": args.lead + rng.uniform(0, args.spread)} for i in range(n)})
    )
    emulator, url = start_standalone(api_key=API_KEY, tasks=tasks)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "AIRFLOW_CONN_AIRPLANE_DEFAULT": json.dumps(
            {"conn_type": "airplane", "host": url, "password": API_KEY}
        ),
    }
    sink = _StatsdSink() if metrics else None
    if sink is not None:
        env.update(
            {
                "AIRFLOW__METRICS__STATSD_ON": "True",
                "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(sink.port),
            }
        )
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--url",
        url,
        "--n",
        str(n),
        "--poll-interval",
        str(args.poll_interval),
    ]
    try:
        child = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.wait(timeout=30)
        if sink is not None:
            time.sleep(0.5)  # the last datagrams
            sink.close()
    if child.returncode != 0:
        raise SystemExit(f"the {mode} child failed:\n{child.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    result["metrics"] = None if sink is None else sink.airplane_lines
    if sink is not None:
        result["mode"] += "+statsd"
    return result


def _table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'mode':<15} {'requests':>9} {'get':>7} {'list':>6} {'RSS+ MB':>8} {'CPU s':>7} "
        f"{'p50 s':>6} {'p95 s':>6} {'max s':>6} {'wall s':>7} {'metrics':>8}"
    )
    lines = [header]
    for row in rows:
        sent = "-" if row["metrics"] is None else str(row["metrics"])
        lines.append(
            f"{row['mode']:<15} {row['requests']:>9} {row['gets']:>7} {row['lists']:>6} "
            f"{row['rss_growth_mb']:>8.1f} {row['cpu_s']:>7.2f} {row['p50_s']:>6.2f} {row['p95_s']:>6.2f} "
            f"{row['max_s']:>6.2f} {row['wall_s']:>7.1f} {sent:>8}"
        )
    return "\n".join(lines)


def _metrics_cost(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Per mode measured both ways: what turning statsd on cost in CPU and memory."""
    lines = []
    for mode in MODES:
        off, on = rows.get(mode), rows.get(mode + "+statsd")
        if off is None or on is None:
            continue
        extra = on["cpu_s"] - off["cpu_s"]
        lines.append(
            f"{mode}: statsd on {on['cpu_s']:.2f} CPU s vs off {off['cpu_s']:.2f} "
            f"({extra:+.2f} s, {extra / max(off['cpu_s'], 1e-9):+.0%}; "
            f"{1000 * extra / max(on['metrics'], 1):+.3f} ms per metric line, {on['metrics']} lines), "
            f"RSS growth {on['rss_growth_mb']:.1f} vs {off['rss_growth_mb']:.1f} MB"
        )
    return lines


def _verdict(args: argparse.Namespace, rows: dict[str, dict[str, Any]]) -> list[str]:
    watcher, per_run = rows.get("watcher"), rows.get("per-run")
    if watcher is None:
        return []
    checks = []
    if per_run is not None:
        share = watcher["requests"] / max(1, per_run["requests"])
        checks.append(
            f"watcher requests {share:.1%} of per-run (target <= 5%): {'PASS' if share <= 0.05 else 'FAIL'}"
        )
        checks.append(
            f"watcher CPU {watcher['cpu_s'] / max(per_run['cpu_s'], 1e-9):.1%} of per-run, "
            f"RSS growth {watcher['rss_growth_mb']:.1f} MB vs {per_run['rss_growth_mb']:.1f} MB"
        )
    bound = args.poll_interval + 1.0
    checks.append(
        f"watcher p95 {watcher['p95_s']:.2f} s (target <= {bound:g} s): "
        f"{'PASS' if watcher['p95_s'] <= bound else 'FAIL'}"
    )
    checks.append(
        f"watcher RSS growth {watcher['rss_growth_mb']:.1f} MB above {watcher['rss_base_mb']:.0f} MB after "
        f"imports (target <= 50 MB): {'PASS' if watcher['rss_growth_mb'] <= 50 else 'FAIL'}"
    )
    return checks


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args))), flush=True)
        return 0
    print(
        f"Waiting on N runs ending over {args.lead:g}-{args.lead + args.spread:g} s, poll interval "
        f"{args.poll_interval:g} s; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="airplane-bench-") as tmp:
        for n in args.n:
            switches = {"off": (False,), "on": (True,), "both": (False, True)}[args.metrics]
            measured = [
                _measure(args, n, mode, Path(tmp), metrics=metrics)
                for mode in args.modes
                for metrics in switches
            ]
            rows = {row["mode"]: row for row in measured}
            print(f"\nN = {n}\n{_table(measured)}", flush=True)
            for line in _verdict(args, rows) + _metrics_cost(rows):
                print(f"  {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
