#!/usr/bin/env bash
# Runs every benchmark, --quick then full, and keeps each JSON result under
# results/benchmarks/<device>/ (the device named by JAX: cpu, or e.g. "NVIDIA H100 80GB HBM3").
#
#   bash benchmarks/run_all.sh            # quick and full
#   bash benchmarks/run_all.sh quick      # quick only (a few minutes)
#   bash benchmarks/run_all.sh full       # full only
#
# On a GPU machine: the venv's jax must be a CUDA build (pip install "jax[cuda12]==<same
# version>"); the torch baselines run on the GPU when the installed torch build sees one
# (torch==2.13.0 from PyPI; the '+cpu' build only runs on the CPU, which the JSON says).
# real_decode needs SmolLM2's GGUF file (`make real-models`) and is skipped without it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WHICH=${1:-all}
DEVICE=$($PY -c 'import jax; d = jax.devices()[0]; print(d.platform if d.platform == "cpu" else d.device_kind)' 2>/dev/null | tail -1 | tr ' /' '__')
OUT=results/benchmarks/$DEVICE
mkdir -p "$OUT"
echo "device: $DEVICE -> $OUT"
run() {  # name, mode, extra args
  local name=$1 mode=$2; shift 2
  local flag=""; [[ $mode == quick ]] && flag="--quick"
  echo "== $name ($mode)"
  local start=$SECONDS
  $PY -m benchmarks.$name $flag --out "$OUT/${name}_${mode}.json" "$@" \
    2> >(grep -v "Warning\|Loading weights" >&2) | tail -1 | cut -c1-300
  echo "   wall $((SECONDS - start)) s"
}
for mode in quick full; do
  [[ $WHICH == all || $WHICH == "$mode" ]] || continue
  run rollout "$mode"
  run call_rate "$mode"
  run handoff "$mode"  # call rate with an LLM of another tokenizer (docs/tokenizers.md)
  run roofline "$mode"
  run attention "$mode"  # one decoded token's attention, three forms (docs/performance.md)
  if $PY -c 'from collab.models import real_models as r; exit(not r.find("smollm2"))' 2>/dev/null
  then run real_decode "$mode"; else echo "== real_decode: no SmolLM2 file (make real-models)"; fi
done
