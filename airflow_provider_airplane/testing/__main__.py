"""Run the Airplane API emulator standalone, for the demo and for developing DAGs offline.

    python -m airflow_provider_airplane.testing --host 127.0.0.1 --port 5055 --api-key KEY --tasks tasks.json

The first line on stdout is the base URL (without ``/v0``), so a parent process can read it and go.
``tasks.json`` maps each task slug to ``add_task``'s keyword arguments. Stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from airflow_provider_airplane.testing._server import AirplaneEmulator


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
        "--cancel-delay", type=float, default=0.0, help="seconds before a cancel request takes effect"
    )
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
    )
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
