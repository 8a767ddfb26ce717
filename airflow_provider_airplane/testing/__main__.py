"""Run the Airplane API emulator standalone, for the demo and for developing DAGs offline.

    python -m airflow_provider_airplane.testing --host 127.0.0.1 --port 5055 --api-key KEY --tasks tasks.json

The first line on stdout is the base URL (without ``/v0``), so a parent process can read it and go.
``tasks.json`` maps each task slug to ``add_task``'s keyword arguments. Stops on SIGINT or SIGTERM.
``--realistic`` (or any hostile flag) prints the seed on stderr; ``--seed`` replays it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from airflow_provider_airplane.testing._hostile import KNOBS, parse_mix
from airflow_provider_airplane.testing._server import AirplaneEmulator
from airflow_provider_airplane.testing._state import PROFILES, PUBLIC


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_airplane.testing", description="Serve a local Airplane API emulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5055, help="port; 0 picks a free one (default 5055)")
    parser.add_argument("--api-key", default=None, help="the accepted API key (default: a generated tkn_...)")
    parser.add_argument(
        "--tasks", type=Path, default=None, help="JSON file: task slug -> add_task keyword arguments"
    )
    parser.add_argument(
        "--idempotency-ttl", type=float, default=3600.0, help="seconds an Idempotency-Key is kept"
    )
    parser.add_argument(
        "--no-logs-endpoint", action="store_true", help="answer runs/getLogs with 404, as a server without it"
    )
    parser.add_argument("--clock-offset", type=float, default=0.0, help="seconds added to the server's clock")
    parser.add_argument(
        "--cancel-delay", type=float, default=None, help="seconds before a cancel request takes effect"
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=PUBLIC,
        help="run objects as the public API or the CLI dev server",
    )
    hostile = parser.add_argument_group("hostile conditions (all off by default)")
    hostile.add_argument(
        "--realistic", action="store_true", help="turn on the realistic mix of the knobs below"
    )
    hostile.add_argument(
        "--seed", type=int, default=None, help="seed of every random choice, to replay a run"
    )
    for name, (default, text) in KNOBS.items():
        kind = parse_mix if name == "error_mix" else type(default)
        hostile.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    hostile.add_argument("--outage", type=float, default=None, metavar="SECONDS", help="start with an outage")
    hostile.add_argument("--outage-path", default=None, help="the outage hits only this /v0 path")
    hostile.add_argument("--outage-mix", type=parse_mix, default=None, help="outage modes and weights")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    emulator = AirplaneEmulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        idempotency_ttl=args.idempotency_ttl,
        clock_offset=args.clock_offset,
        logs_endpoint=not args.no_logs_endpoint,
        cancel_delay=args.cancel_delay,
        profile=args.profile,
        realistic=args.realistic,
        seed=args.seed,
    )
    emulator.configure(**{name: getattr(args, name) for name in KNOBS if getattr(args, name) is not None})
    if args.outage is not None:
        emulator.start_outage(args.outage, path=args.outage_path, mix=args.outage_mix)
    if args.tasks is not None:
        tasks = json.loads(args.tasks.read_text())
        if not isinstance(tasks, dict):
            raise SystemExit(f"{args.tasks}: expected a JSON object mapping task slug -> settings")
        for slug, settings in tasks.items():
            emulator.add_task(slug, **(settings or {}))

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with emulator:
        print(emulator.url, flush=True)
        print(
            f"Airplane emulator at {emulator.url}/v0, API key {emulator.api_key}", file=sys.stderr, flush=True
        )
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
