#!/usr/bin/env bash
# Runs each test file in its own pytest process, TEST_JOBS files at a time (default 2, the
# cores of the project's machine), and reports every file that failed.
#
# One process for the whole suite crashed inside XLA's CPU compiler (a segfault, never the
# same test twice, never when the crashing file ran alone) after ~150 tests had compiled
# hundreds of programs; a process per file keeps such state from building up and keeps one
# crash from hiding the other files' results. Two files at a time: most of the suite's time is
# XLA compilation, one core each. Each file's output is printed whole when it ends.
# Files that import torch (tensorboardX does when it is installed) are listed in TORCH_TESTS;
# every other file runs with torch blocked.
set -uo pipefail
PY=${PY:-python}
JOBS=${TEST_JOBS:-2}
TORCH_TESTS=" tests/test_hf_import.py tests/test_hf_tokenizer.py tests/test_benchmarks.py "
# The slowest files first, so that the last ones to start are short.
SLOW_FIRST=(tests/test_studies.py tests/test_studies_sweeps.py tests/test_multihost.py tests/test_preemption.py
            tests/test_rollout.py tests/test_benchmarks.py tests/test_quickstart.py)
start=$SECONDS
if [[ $# -eq 0 ]]; then
  f_list=("${SLOW_FIRST[@]}")
  for f in tests/test_*.py; do
    [[ " ${SLOW_FIRST[*]} " == *" $f "* ]] || f_list+=("$f")
  done
else
  f_list=("$@")
fi
logs=$(mktemp -d)

pytest_file() {  # file log -> pytest's exit status
  if [[ "$TORCH_TESTS" == *" $1 "* ]]; then
    "$PY" -m pytest -q -p no:cacheprovider "$1" >"$2" 2>&1
  else
    COLLAB_BLOCK_TORCH=1 "$PY" -m pytest -q -p no:cacheprovider "$1" >"$2" 2>&1
  fi
}

run_one() {  # file -> its log and exit status under $logs
  local f=$1 name t0=$SECONDS rc
  name=$(basename "$f" .py)
  pytest_file "$f" "$logs/$name.log"; rc=$?
  # Killed by a signal (SIGSEGV 139, SIGABRT 134), not a failed test: XLA's CPU compiler has
  # crashed inside single files too on a heavily loaded machine (backend_compile, 2026-12-02),
  # never reproducibly. Such a file runs once more, and the log says so; a failed assertion
  # (exit 1) is never retried.
  if ((rc > 128)); then
    mv "$logs/$name.log" "$logs/$name.crash.log"
    pytest_file "$f" "$logs/$name.log"; local rc2=$?
    { echo "== $f: process killed by signal $((rc - 128)) (exit $rc); ran again: exit $rc2"
      tail -n 40 "$logs/$name.crash.log" | grep -v '^  File' | head -n 5; } >>"$logs/$name.log"
    rc=$rc2
  fi
  echo "== $f: exit $rc, $((SECONDS - t0)) s" >>"$logs/$name.log"
  echo "$rc" >"$logs/$name.rc"
  cat "$logs/$name.log"
}

running=0
for f in "${f_list[@]}"; do
  if ((running >= JOBS)); then
    wait -n
    running=$((running - 1))
  fi
  run_one "$f" &
  running=$((running + 1))
done
wait

failed=()
for f in "${f_list[@]}"; do
  rc=$(cat "$logs/$(basename "$f" .py).rc" 2>/dev/null || echo missing)
  [[ "$rc" == 0 ]] || failed+=("$f (exit $rc)")
done
rm -rf "$logs"
echo "== ${#f_list[@]} test files in $((SECONDS - start)) s, $JOBS at a time; failed: ${#failed[@]}"
for f in "${failed[@]}"; do echo "   FAILED $f"; done
[[ ${#failed[@]} -eq 0 ]]
