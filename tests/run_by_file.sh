#!/usr/bin/env bash
# Runs each test file in its own pytest process, TEST_JOBS files at a time (default 2, the
# cores of the project's machine), and reports every file that failed.
#
#   bash tests/run_by_file.sh                 # the fast suite: tests/test_*.py (make test)
#   bash tests/run_by_file.sh tests/e2e/*.py  # end-to-end study runs (make test-e2e)
#
# A process per file keeps one crash from hiding the other files' results and keeps compiled
# programs from piling up in one process (docs/xla_crash.md). Two files at a time: most of
# the suite's time is XLA compilation, one core each. Each file's output is printed whole when
# it ends; the last line adds up every file's tests. Files that import torch (tensorboardX
# does when it is installed) are listed in TORCH_TESTS; every other file runs with torch
# blocked.
set -uo pipefail
PY=${PY:-python}
JOBS=${TEST_JOBS:-2}
TORCH_TESTS=" tests/test_hf_import.py tests/test_hf_tokenizer.py tests/e2e/test_benchmarks_e2e.py tests/e2e/test_slm_reference_real.py tests/test_gguf.py tests/test_gguf_real.py tests/test_gemma3.py "
# The slowest files first (longest first, by a clean-clone run's times), so that the last
# ones to start are short.
SLOW_FIRST=(tests/test_preemption.py tests/test_recipe_tokenizers.py tests/test_evaluate.py
            tests/test_gate_train.py tests/test_rollout.py tests/test_studies.py
            tests/test_multihost.py tests/test_user_errors.py tests/test_mixed_tokenizers.py
            tests/test_model_sharded.py tests/test_quickstart.py tests/test_bad_input.py
            tests/test_word_problems.py tests/test_mixed_pair.py tests/test_benchmarks.py
            tests/test_privacy_property.py tests/test_transformer.py tests/test_pretrain.py
            tests/test_hf_pipeline.py tests/test_gemma3.py)
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
  # Killed by a signal (SIGSEGV 139, SIGABRT 134), not a failed test (docs/xla_crash.md):
  # such a file runs once more, the log says so and the summary counts it; a failed
  # assertion (exit 1) is never retried.
  if ((rc > 128)); then
    echo "$rc" >"$logs/$name.crashed"
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

failed=() crashed=() passed=0 nfailed=0 skipped=0
count() {  # the number before " $1" in a pytest summary line, or 0
  grep -oE "[0-9]+ $1" <<<"$2" | head -n1 | grep -oE "^[0-9]+" || echo 0
}
for f in "${f_list[@]}"; do
  name=$(basename "$f" .py)
  rc=$(cat "$logs/$name.rc" 2>/dev/null || echo missing)
  # pytest's closing line ("3 passed, 1 skipped in 2.1s"), 0 when none; 5: no test collected.
  [[ "$rc" == 0 || "$rc" == 5 ]] || failed+=("$f (exit $rc)")
  [[ -f "$logs/$name.crashed" ]] && crashed+=("$f (signal $(( $(cat "$logs/$name.crashed") - 128 )))")
  summary=$(grep -E "^(=+ )?[0-9]+ (passed|failed|skipped|error)" "$logs/$name.log" | tail -n1)
  passed=$((passed + $(count passed "$summary")))
  nfailed=$((nfailed + $(count failed "$summary") + $(count error "$summary")))
  skipped=$((skipped + $(count skipped "$summary")))
done
rm -rf "$logs"
echo "== ${#f_list[@]} test files in $((SECONDS - start)) s, $JOBS at a time; files failed: ${#failed[@]}; processes killed by a signal and rerun: ${#crashed[@]}"
for f in "${failed[@]}"; do echo "   FAILED $f"; done
for f in "${crashed[@]}"; do echo "   CRASHED ONCE $f"; done
# A failed file without a pytest summary (a crash, a collection error) still counts as failed.
((nfailed == 0 && ${#failed[@]} > 0)) && nfailed=${#failed[@]}
echo "tests: $passed passed, $nfailed failed, $skipped skipped"
[[ ${#failed[@]} -eq 0 ]]
