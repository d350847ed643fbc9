#!/usr/bin/env bash
# experiments/gpu_inference.md: inference on one GPU (issue 14), then the DeepSpeed GPU tests (issue 13),
# in the background:
#   bash scripts/gpu_inference.sh start      # returns at once
#   bash scripts/gpu_inference.sh wait 540   # waits <= 540 s, prints progress, packs $OUT
# 1. shape-alike bases (scripts/shape_alike_base.py): the shipped base's configs with random weights
#    (the tree travels without them), and its VAEs under the 1b and ltx2b trunks (patch 1x1x1; weights
#    perturbed so the output depends on every layer); the real MiniLM (.gpu_assets/minilm_fp16);
# 2. bench/bench_generate.py: batched against one-at-a-time generation with the base, INT8 against bf16
#    at 1b and ltx2b (weight bytes, peak memory, seconds per clip, PSNR of the INT8 clips against the
#    bf16 ones), model CPU offload against everything on the GPU at ltx2b;
# 3. tests/test_gpu_strategies.py and tests/test_gpu.py; then the ltx2b DiT under ZeRO-3 + CPU offload.
set -uo pipefail
W=${W:-/tmp/ltx_inf}
PY=${PY:-python3}
ASSET=${ASSET:-$PWD/assets/pretrained/ltx-mini-synth}
TE=${TE:-$PWD/.gpu_assets/minilm_fp16}
SIZE=${SIZE:-256}; STEPS=${STEPS:-30}; NP=${NP:-32}   # DEV=cpu BIGS= NOZERO=1 NP=2 STEPS=2: a CPU check of the script
. "$(dirname "$0")/gpu_env.sh"   # stage(), bg_main
RUNS=""

bench() {   # bench NAME ARGS...: one bench_generate run, its JSON lines in $W/bench/NAME.jsonl
  local name=$1; shift
  stage "bench_$name" $PY bench/bench_generate.py --device ${DEV:-cuda} --dtype bf16 "$@"
  grep '^{' "$W/logs/bench_$name.log" >"$W/bench/$name.jsonl"
}

run_all() {
  mkdir -p "$W/bench"
  stage base_mini $PY scripts/shape_alike_base.py "$ASSET" "$W/mini" --text-encoder "$TE" || return 1
  bench mini_batched --pretrained "$W/mini" --prompts $NP --batch 8 16 32 --steps $STEPS --size 64
  for d in ${BIGS-1b ltx2b}; do
    stage "base_$d" $PY scripts/shape_alike_base.py "$ASSET" "$W/$d" --text-encoder "$TE" --dit $d --patch 1 1 1 \
      --perturb 0.02 || return 1
    local extra=""; [ $d = ltx2b ] && extra="--offload"
    bench "$d" --pretrained "$W/$d" --prompts 4 --batch 4 --steps $STEPS --size $SIZE --quantize int8 $extra
    rm -rf "${W:?}/$d"
  done
  export LTX_TEXT_ENCODER=$TE
  stage tests_ds $PY -m pytest -q -m gpu tests/test_gpu_strategies.py -p no:cacheprovider --basetemp "$W/pt_ds"
  stage tests_gpu $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider --basetemp "$W/pt_gpu"
  if [ -z "${NOZERO:-}" ]; then
    W2=$W/ds; mkdir -p "$W2/logs" "$W2/status"
    W=$W2 PROBES="" BIG="ltx2b:deepspeed_zero3_offload" PART=probes bash scripts/gpu_deepspeed.sh run \
      >"$W/logs/ds_probe.log" 2>&1
    cp "$W2/timeline.txt" "$W/logs/ds_timeline.txt" 2>/dev/null
  fi
}

pack() {
  cp -r "$W/bench" "$W/logs" "$OUT/" 2>/dev/null
  cp "$W/timeline.txt" "$OUT/" 2>/dev/null
  [ -f "$W/ds/ltx2b_deepspeed_zero3_offload/csv/version_0/metrics.csv" ] && \
    cp "$W/ds/ltx2b_deepspeed_zero3_offload/csv/version_0/metrics.csv" "$OUT/ltx2b_zero3_offload_metrics.csv"
  cat "$W"/bench/*.jsonl 2>/dev/null | cut -c1-400
}

bg_main "$@"
