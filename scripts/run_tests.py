"""``make test``: the tests that start no Airflow stack on ``TEST_WORKERS`` processes, then the rest alone.

Most unit tests wait on sockets and timers, so two processes on two cores take half the time. The tests
marked ``integration`` start schedulers, triggerers and workers whose timing is the point; they run after,
on one process, with the machine to themselves. Arguments go to both runs (``-m``, ``-k``, test paths);
a run that selects nothing is not a failure unless neither selects anything (pytest's exit code 5).
"""

from __future__ import annotations

import os
import subprocess
import sys

NO_TESTS = 5


def pytest(phase: str, args: list[str]) -> int:
    workers = os.environ.get("TEST_WORKERS", "2")
    spread = []
    if phase == "parallel" and workers not in ("0", "1"):
        spread = ["-n", workers, "--dist", "loadfile"]
    print(f"=== pytest --phase={phase} {' '.join(spread)}", flush=True)
    return subprocess.run([sys.executable, "-m", "pytest", f"--phase={phase}", *spread, *args]).returncode


def main(args: list[str]) -> int:
    codes = [pytest("parallel", args), pytest("alone", args)]
    failed = [code for code in codes if code not in (0, NO_TESTS)]
    if failed:
        return failed[0]
    return 0 if 0 in codes else NO_TESTS


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
