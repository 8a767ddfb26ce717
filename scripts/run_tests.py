"""``make test``: the tests that start no Airflow stack on ``TEST_WORKERS`` processes, then the rest alone.

Most unit tests wait on sockets and timers, so two processes on two cores take half the time. The tests
marked ``integration`` start schedulers, triggerers and workers whose timing is the point; they run after,
on one process, with the machine to themselves. Arguments go to both runs (``-m``, ``-k``, test paths);
a run that selects nothing is not a failure unless neither selects anything (pytest's exit code 5).
``-x``/``--maxfail`` stop before the second run when the first failed; ``--pdb``, ``--trace`` and ``-s``
run the first on one process, where they work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

NO_TESTS = 5
INTERRUPTED = 2
ONE_PROCESS_OPTIONS = ("--pdb", "--trace", "-s", "--capture=no")
STOP_OPTIONS = ("-x", "--exitfirst", "--maxfail")


def pytest(phase: str, args: list[str]) -> int:
    """Run one phase; Ctrl-C and SIGTERM (as a Ctrl-C) stop pytest, which tears its stacks down first."""
    workers = os.environ.get("TEST_WORKERS", "2")
    spread = []
    if phase == "parallel" and workers not in ("0", "1") and not set(args) & set(ONE_PROCESS_OPTIONS):
        spread = ["-n", workers, "--dist", "loadfile"]
    print(f"=== pytest --phase={phase} {' '.join(spread)}", flush=True)
    child = subprocess.Popen([sys.executable, "-m", "pytest", f"--phase={phase}", *spread, *args])

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGINT:  # a terminal's Ctrl-C already reached pytest, in our process group
            child.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(args: list[str]) -> int:
    stop_on_failure = any(a.split("=")[0] in STOP_OPTIONS for a in args)
    codes = []
    for phase in ("parallel", "alone"):
        code = pytest(phase, args)
        codes.append(code)
        if code < 0 or code == INTERRUPTED or (code not in (0, NO_TESTS) and stop_on_failure):
            break
    failed = [code for code in codes if code not in (0, NO_TESTS)]
    if failed:
        return failed[0] if failed[0] > 0 else 128 - failed[0]
    return 0 if 0 in codes else NO_TESTS


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
