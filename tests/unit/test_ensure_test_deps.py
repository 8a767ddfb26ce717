"""scripts/ensure-test-deps.sh, what `make test` runs first: installs only what is missing, and only as root.

Run with a PATH of stand-ins: ``id`` says who we are, ``apt-get`` records its calls, ``redis-server``
exists; Chromium is missing (``CHROMIUM`` points nowhere).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-test-deps.sh"
# The script's arguments and uid -> its result and the apt-get calls it made.
RunScript = Callable[..., tuple[subprocess.CompletedProcess[str], list[str]]]


def stand_in(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def run_script(tmp_path: Path) -> RunScript:
    bin_dir, apt_log = tmp_path / "bin", tmp_path / "apt-get.log"
    bin_dir.mkdir()
    stand_in(bin_dir / "apt-get", f'echo "$*" >> {apt_log}')
    stand_in(bin_dir / "redis-server", "exit 0")

    def run(*args: str, uid: int) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        stand_in(bin_dir / "id", f"echo {uid}")
        env = {"PATH": str(bin_dir), "CHROMIUM": str(tmp_path / "no-chromium")}
        bash = shutil.which("bash")
        assert bash
        done = subprocess.run([bash, str(SCRIPT), *args], env=env, capture_output=True, text=True)
        return done, apt_log.read_text().splitlines() if apt_log.exists() else []

    return run


def test_root_installs_only_what_is_missing(run_script: RunScript) -> None:
    done, apt = run_script("cluster", "browser", uid=0)

    assert done.returncode == 0, done.stderr
    assert apt[0] == "update -qq"
    installed = apt[1].split()
    assert "chromium" in installed
    assert "redis-server" not in installed  # present


def test_non_root_stops_at_once_naming_the_command(run_script: RunScript) -> None:
    done, apt = run_script("browser", uid=1000)

    assert done.returncode == 1
    assert "chromium" in done.stderr
    assert done.stderr.strip().endswith("Run: sudo make test-deps")
    assert apt == []


def test_check_installs_nothing_even_as_root(run_script: RunScript) -> None:
    done, apt = run_script("--check", "browser", uid=0)

    assert done.returncode == 1
    assert "chromium" in done.stderr
    assert "make test-deps" in done.stderr
    assert apt == []


def test_only_the_parts_asked_for_are_checked(run_script: RunScript) -> None:
    """``-m cluster`` needs no Chromium: its check does not ask for it."""
    done, apt = run_script("--check", "cluster", uid=0)

    assert "chromium" not in done.stderr
    assert done.returncode == (0 if Path("/usr/lib/postgresql/15/bin/initdb").exists() else 1)
    assert apt == []


def test_node_part_installs_node_and_npm_when_missing(run_script: RunScript) -> None:
    done, apt = run_script("node", uid=0)

    assert done.returncode == 0, done.stderr
    assert apt[1].split()[-2:] == ["nodejs", "npm"]


def test_check_names_the_missing_node_for_the_node_sdk_test(run_script: RunScript) -> None:
    done, apt = run_script("--check", "node", uid=0)

    assert done.returncode == 1
    assert "nodejs npm" in done.stderr
    assert "make test-deps" in done.stderr
    assert apt == []
