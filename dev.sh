#!/usr/bin/env bash
# One command per job on a fresh machine (Debian 12, root):
#   bash dev.sh example   set up everything, run examples/hello.py as a real SkyPilot managed job on the local bed
#   bash dev.sh test      set up everything, run every test (the real-bed ones included)
#   bash dev.sh setup     only set up: the test bed and .venv
#   bash dev.sh lint      ruff (lint and format check), codespell, shellcheck (needs only .venv)
# Extra arguments go to pyflyte run (example) or pytest (test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)

quiet() {  # run, show the output only if it fails
  local out
  out=$(mktemp)
  "$@" >"$out" 2>&1 || { grep -v "is ignored" "$out" >&2; rm -f "$out"; return 1; }
  rm -f "$out"
}

setup() {
  bash testbed/bed.sh up
  # The jobs on the bed run as the Slurm user on this host and use this venv, so it is built on the system
  # python (root's own pythons may live under /root, which other users cannot read).
  [ -x .venv/bin/python ] || quiet /usr/bin/python3 -m venv .venv
  quiet .venv/bin/pip install --disable-pip-version-check -c constraints.txt -e '.[test]'
  if ! runuser -u "${BED_USER:-sky}" -- test -r "$ROOT/flytekitplugins/skypilot/__init__.py"; then
    echo "The bed's jobs run as user ${BED_USER:-sky} and cannot read $ROOT: clone the project into a" \
         "directory other users can read (e.g. /opt or /work)" >&2
    exit 1
  fi
}

# Phase times: each phase's wall time, printed as it ends (or fails) and added to $PHASES_FILE for .ci/run.
PHASE=""
phase_done() {
  printf 'phase %-22s %5ds  (exit %d)\n' "$PHASE" $((SECONDS - PHASE_T0)) "$1" | tee -a "${PHASES_FILE:-/dev/null}"
  PHASE=""
}
on_exit() {
  local rc=$?
  if [ -n "$PHASE" ]; then phase_done "$rc"; fi
}
trap on_exit EXIT
timed() {  # errexit stays on inside: a failing step ends the script, and the trap reports the phase
  PHASE=$1 PHASE_T0=$SECONDS
  shift
  "$@"
  phase_done 0
}

lint() {
  [ -x .venv/bin/ruff ] || quiet .venv/bin/pip install --disable-pip-version-check -c constraints.txt -e '.[test]'
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/codespell
  git ls-files -z '*.sh' .ci/run testbed/shims/curl testbed/shims/uv | xargs -0 .venv/bin/shellcheck
}

cmd=${1:-}
shift || true
case "$cmd" in
  setup) setup;;
  lint)
    [ -x .venv/bin/python ] || quiet /usr/bin/python3 -m venv .venv
    timed lint lint;;
  example)
    setup
    eval "$(bash testbed/bed.sh env)"
    cd examples && exec ../.venv/bin/pyflyte run --raw-output-data-prefix "$FLYTE_SKYPILOT_BED_RAW_OUTPUT" hello.py hello_wf --name skypilot --times 2 "$@";;
  test)
    timed setup setup
    eval "$(bash testbed/bed.sh env)"
    # tests that need the bed to themselves (marker alone) run one by one, after the others; a -m selection
    # applies to every run, and a run it leaves empty (pytest's exit code 5) is no failure
    sel="" args=()
    while [ $# -gt 0 ]; do
      case "$1" in
        -m) sel=$2; shift 2;;
        *) args+=("$1"); shift;;
      esac
    done
    phase() { .venv/bin/python -m pytest -m "${sel:+($sel) and }$1" "${@:2}" "${args[@]}" || [ $? = 5 ]; }
    # the fast tests first, on a quiet machine (their deadlines are propeller's), then the real-bed ones
    timed "tests (stand-in)" phase "not bed"
    timed "tests (bed, side by side)" phase "bed and not alone"
    timed "tests (bed, alone)" phase alone -n 0;;
  *) echo "usage: bash dev.sh example|test|setup|lint [args]" >&2; exit 2;;
esac
