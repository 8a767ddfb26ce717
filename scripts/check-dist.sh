#!/usr/bin/env bash
# Release check: build the sdist and wheel, `twine check --strict` them, look inside, then install the
# built wheel (not editable) with Airflow from the lock into a clean venv and run an example DAG with it.
# Usage: scripts/check-dist.sh [--build-only]   (AIRFLOW_VERSION picks the lock; default 3.3.2)
set -euo pipefail
cd "$(dirname "$0")/.."
AIRFLOW_VERSION=${AIRFLOW_VERSION:-3.3.2}
BIN=${BIN:-.venv/bin}
LOCK=requirements/airflow-$AIRFLOW_VERSION.txt

rm -rf dist
"$BIN/python" -m build --sdist --wheel --outdir dist . >"${TMPDIR:-/tmp}/check-dist-build.log" 2>&1 \
  || { cat "${TMPDIR:-/tmp}/check-dist-build.log"; exit 1; }
"$BIN/python" -m twine check --strict dist/*
"$BIN/python" - <<'PY'
"""What must be (and must not be) in the wheel and the sdist."""
import sys, tarfile, zipfile
from pathlib import Path

import airflow_provider_airplane

version = airflow_provider_airplane.__version__
wheel = next(Path("dist").glob("*.whl"))
sdist = next(Path("dist").glob("*.tar.gz"))
wheel_names = zipfile.ZipFile(wheel).namelist()
sdist_names = [n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n]
problems = []
if f"-{version}-" not in wheel.name or f"-{version}.tar.gz" not in sdist.name:
    problems.append(f"file names do not carry the package version {version}: {wheel.name}, {sdist.name}")
for required in ("airflow_provider_airplane/py.typed", "airflow_provider_airplane/get_provider_info.py"):
    if required not in wheel_names:
        problems.append(f"wheel lacks {required}")
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel_names):
    problems.append("wheel lacks the LICENSE")
if not any(n.endswith("entry_points.txt") for n in wheel_names):
    problems.append("wheel lacks entry_points.txt (Airflow would not find the provider)")
for required in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "airflow_provider_airplane/py.typed"):
    if required not in sdist_names:
        problems.append(f"sdist lacks {required}")
junk = ("tests/", "docs/", "benchmarks/", ".ci/", ".venv", ".airflow", "__pycache__", ".pyc", "dist/", "scripts/")
for name in wheel_names + sdist_names:
    if any(part in name for part in junk):
        problems.append(f"does not belong in a release file: {name}")
print(f"{wheel.name}: {len(wheel_names)} files; {sdist.name}: {len(sdist_names)} files")
if problems:
    sys.exit("\n".join(problems))
print("wheel and sdist contents OK (py.typed, LICENSE, entry point; no tests, docs or local state)")
PY
[ "${1:-}" = "--build-only" ] && exit 0

# A clean venv: Airflow and the other runtime pins from the lock, the provider from the built wheel.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$BIN/uv" pip install -q --python "$work/venv/bin/python" -r "$LOCK" --no-deps
"$BIN/uv" pip install -q --python "$work/venv/bin/python" -c "$LOCK" dist/*.whl
(cd "$work" && "$work/venv/bin/python" -c "import airflow_provider_airplane as p, sys; \
  sys.exit(0 if '/site-packages/' in p.__file__ else f'provider imported from {p.__file__}')")

export AIRFLOW_HOME=$work/home PATH="$work/venv/bin:$PATH"
export AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGS_FOLDER=$PWD/example_dags
listed=$(cd "$work" && airflow providers list --output plain 2>/dev/null)
echo "$listed" | grep -E "^airflow-provider-airplane +" \
  || { echo "airflow providers list does not show airflow-provider-airplane:"; echo "$listed"; exit 1; }

# The example DAG against the standalone emulator, run with the installed wheel.
key=tkn_check_dist
tasks=$PWD/example_dags/airplane_tasks.json
exec 3< <(cd "$work" && exec python -m airflow_provider_airplane.testing --port 0 --api-key $key \
  --tasks "$tasks" 2>"$work/emulator.log")
emulator_pid=$!
trap 'kill $emulator_pid 2>/dev/null || true; rm -rf "$work"' EXIT
read -r -t 60 url <&3 || { echo "the emulator did not start:"; cat "$work/emulator.log"; exit 1; }
export AIRFLOW_CONN_AIRPLANE_DEFAULT="{\"conn_type\": \"airplane\", \"host\": \"$url\", \"password\": \"$key\", \"extra\": {\"env_slug\": \"prod\"}}"
(cd "$work" && airflow db migrate >"$work/migrate.log" 2>&1) || { tail -50 "$work/migrate.log"; exit 1; }
if ! (cd "$work" && airflow dags test example_airplane_execute >"$work/dags-test.log" 2>&1); then
  tail -80 "$work/dags-test.log"; exit 1
fi
state=$(grep -Eo "DagRun Finished: .*state=[a-z]+" "$work/dags-test.log" | tail -1 || true)
echo "$state"
case "$state" in *state=success*) ;; *) tail -80 "$work/dags-test.log"; echo "example DAG did not succeed"; exit 1;; esac
echo "check-dist: the built wheel installs, registers with Airflow and runs example_airplane_execute"
