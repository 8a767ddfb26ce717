"""`make up`: the Airplane emulator and a local Airflow with the example DAGs, until Ctrl-C.

Airflow's api-server, scheduler (LocalExecutor), dag-processor and triggerer run on SQLite in
.airflow/up (git-ignored, started afresh each time), with an ``airplane_default`` connection to the
emulator, whose run pages are what the tasks' "Airplane Run" links open. Ctrl-C (or SIGTERM) stops
every process it started, process group by process group.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from airflow_stack import ADMIN_USER, AirflowStack

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / ".airflow" / "up"
API_KEY = "tkn_local_emulator_key"


def example_stack(home: Path) -> AirflowStack:
    """The stack `make up` runs (and the browser test looks at): example DAGs, their emulator tasks."""
    tasks = json.loads((REPO / "example_dags" / "airplane_tasks.json").read_text())
    return AirflowStack(
        home=home,
        dags_source=REPO / "example_dags",
        api_key=API_KEY,
        emulator_tasks=tasks,
        connection_in_db=True,
    )


def main() -> int:
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    stack = example_stack(HOME)
    print("Starting the Airplane emulator and Airflow (api-server, scheduler, dag-processor, triggerer)")
    print(f"in {HOME.relative_to(REPO)}; this takes about a minute ...", flush=True)
    try:
        stack.start()
    except KeyboardInterrupt:
        print("\nInterrupted; everything started was stopped.")
        return 130
    # From here on, Ctrl-C and SIGTERM end the wait below; the finally block stops everything.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(
            f"""
Airflow UI:        {stack.base_url}
  log in as:       {ADMIN_USER} / {stack.admin_password()}
  example DAGs:    {stack.base_url}/dags?tags=airplane  (trigger example_airplane_execute)
  connection:      airplane_default, in Admin > Connections
Airplane emulator: {stack.emulator_url}  (API key {API_KEY}; run pages at /runs/<run id>)
Logs:              {(HOME / "logs").relative_to(REPO)}/

Press Ctrl-C to stop everything.""",
            flush=True,
        )
        while not done.wait(1.0):
            for name, component in stack.components.items():
                if component.proc.poll() is not None:
                    code = component.proc.returncode
                    print(f"{name} exited ({code}):\n{component.tail()}", file=sys.stderr)
                    return 1
        return 0
    finally:
        print("\nStopping ...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop()
        print("Stopped: no process of the stack is left.")


if __name__ == "__main__":
    sys.exit(main())
