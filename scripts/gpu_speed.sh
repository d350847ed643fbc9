#!/usr/bin/env bash
# experiments/gpu_speed.md: the `small` DiT training loop from a latent cache on one GPU, before and after
# the changes that keep the GPU busy (fused AdamW + clipping on the device, no host syncs, compile=all).
#   bash scripts/gpu_speed.sh start          # returns at once
#   bash scripts/gpu_speed.sh wait 540       # waits <= 540 s, prints progress, packs $OUT
# 1. `ltx-shards cache` of 4096 + 16 synthetic-world clips (shipped tiny VAEs, the real MiniLM in fp16);
# 2. probes of `experiment=dit_small_latents` (small DiT, 64x64x25, 448 video + 25 audio + 128 text
#    tokens): the code before the change (.gpu_assets/old: `git archive` of the previous commit) and
#    after, at batch 64 and 256. Each logs perf/samples_per_s and perf/gpu_util per 10 steps; nvidia-smi
#    dmon samples SM utilisation every second.
# 3. PART=bench (or all): bench/bench_dit.py at `ltx2b` (~10k tokens): ours compiled without a text mask
#    (profiled), then eager and compiled beside diffusers' LTXVideoTransformer3DModel and (eager)
#    LTX2VideoTransformer3DModel; needs a diffusers wheel in .gpu_assets/.
# 4. PART=heads: the same bench at 16 heads x 128 (ours and diffusers', regional compile) and diffusers'
#    own 32 x 64 compiled (experiments/gpu_speed.md, session 17).
# 5. PART=attn: bench/bench_attention.py (the attention call alone, per q/k/v layout and backend), then
#    ours at 16 x 128 with and without contiguous q, k, v, at batch 2, and diffusers' two layouts, all in
#    one run on one machine (session 18).
# PART=loop (default) | bench | all | heads | attn (SHORT=1: its first three stages). PROBES: which loop probes (default: the before/after set).
# SMOKE=1: the same on CPU, tiny sizes (a check of the script).
set -uo pipefail
W=${W:-/tmp/ltx_speed}
PY=${PY:-python3}
ASSET=${ASSET:-$PWD/assets/pretrained/ltx-mini-synth}
TE=${TE:-$PWD/.gpu_assets/minilm_fp16}
OLD=${OLD:-$PWD/.gpu_assets/old}
if [ -n "${SMOKE:-}" ]; then
  DEV=cpu; GPU="trainer=cpu dit=tiny"; N=32; NV=4; WK=1; DW=0; S64=4; S128=4; B1=4; B2=8
else   # batch 256 does not fit the small DiT in 140 GB without activation checkpointing
  DEV=cuda; GPU="trainer=gpu"; N=${N:-4096}; NV=16; WK=12; DW=8; S64=${S64:-160}; S128=${S128:-120}; B1=64; B2=128
fi
QUIET="trainer.enable_progress_bar=false trainer.log_every_n_steps=10 trainer.limit_val_batches=0"
. "$(dirname "$0")/gpu_env.sh"   # stage(), dmon_start/stop, bg_main

probe() {   # probe NAME TREE BATCH STEPS COMPILE [OVERRIDES...]: a short cached run from the package in TREE
  local name=$1 tree=$2 bs=$3 steps=$4 comp=$5; shift 5
  dmon_start "$W/logs/${name}_sm.txt"
  ( cd "$tree" && stage "$name" $PY -m ltx_train.train experiment=dit_small_latents $GPU $QUIET data.path="$W/latents" \
      data.batch_size=$bs data.num_workers=$DW trainer.max_steps=$steps model.total_steps=$steps \
      model.compile=$comp hydra.run.dir="$W/$name" "$@" )
  dmon_stop
}

bench() {   # bench NAME ARGS...: bench/bench_dit.py, its output and JSON in logs/
  dmon_start "$W/logs/${1}_sm.txt"
  stage "$1" $PY bench/bench_dit.py --preset ltx2b --warmup 3 --steps 8 --json "$W/logs/$1.json" "${@:2}"
  dmon_stop
}

run_all() {
  case ${PART:-loop} in loop|all) loop_probes ;; esac
  case ${PART:-loop} in bench|all) benches ;; esac
  case ${PART:-loop} in heads) benches_heads ;; esac
  case ${PART:-loop} in attn) benches_attn ;; esac
}

need_diffusers() {
  if ! $PY -c "import diffusers" 2>/dev/null && ls .gpu_assets/diffusers-*.whl >/dev/null 2>&1; then
    site_install .gpu_assets/diffusers-*.whl
  fi
}

benches_heads() {   # session 17: ltx2b at 16 heads x 128 (same width, parameters and FLOPs), everything compiled
  need_diffusers
  bench bench_h16_nomask --compile --heads 16 --no-text-mask --profile 14   # + diffusers at 16 x 128, regional compile
  bench bench_h32_diffusers --compile --no-ours                             # diffusers at its own 32 x 64, regional compile
}

benches_attn() {   # session 18: where the attention backward loses time in the step, and the same-run comparison
  need_diffusers
  stage attn_h16 $PY bench/bench_attention.py --json "$W/logs/attn.jsonl"
  bench bench_h16 --compile --heads 16 --no-text-mask --no-diffusers --profile 20
  bench bench_h16_contig --compile --heads 16 --no-text-mask --no-diffusers --qkv-contiguous --profile 20
  [ -n "${SHORT:-}" ] && return 0   # SHORT=1: the layout question alone (a few device minutes)
  bench bench_h16_diffusers --compile --heads 16 --no-ours    # diffusers at 16 x 128, regional compile
  bench bench_h32_diffusers --compile --no-ours               # diffusers at its own 32 x 64
  stage attn_h32 $PY bench/bench_attention.py --heads 32 --head-dim 64 --json "$W/logs/attn.jsonl"
  bench bench_h16_b2 --compile --heads 16 --no-text-mask --no-diffusers --batch 2
}

benches() {
  need_diffusers
  bench bench_ltx2b_nomask --compile --no-text-mask --no-diffusers --profile 14
  bench bench_ltx2b_eager --ltx2
  bench bench_ltx2b_compiled --compile
}

loop_probes() {
  [ -f "$W/latents/manifest.json" ] || stage cache $PY -m ltx_train.data.cli cache --synthetic $N --val $NV --shard-size 256 \
    --pretrained "$ASSET" --text-encoder "$TE" --out "$W/latents" --device $DEV --workers $WK --batch-size 128 || return 1
  for p in ${PROBES:-old_b64 new_b64_blocks new_b64_all old_b128 new_b128_all new_b128_replace}; do
    case $p in
      old_b64) probe $p "$OLD" $B1 $S64 true ;;
      new_b64_blocks) probe $p "$PWD" $B1 $S64 blocks ;;
      new_b64_all) probe $p "$PWD" $B1 $S64 all ;;
      old_b128) probe $p "$OLD" $B2 $S128 true ;;
      new_b128_all) probe $p "$PWD" $B2 $S128 all ;;
      new_b128_replace) probe $p "$PWD" $B2 $S128 all +connector.register_mode=replace ;;   # LTX-2's registers: no text mask
    esac
  done
}

pack() {
  local P=$W/pack; rm -rf "$P"; mkdir -p "$P"
  cp -r "$W/logs" "$W/timeline.txt" "$P/" 2>/dev/null
  for run in $RUNS; do
    [ -d "$W/$run" ] || continue; mkdir -p "$P/$run"
    cp "$W/$run/metrics.json" "$P/$run/" 2>/dev/null
    cp "$W/$run/csv/version_0/metrics.csv" "$P/$run/curve.csv" 2>/dev/null
  done
  cp "$W"/logs/bench_*.json "$P/" 2>/dev/null
  cp "$W/latents/manifest.json" "$P/cache_manifest.json" 2>/dev/null
  tar -czf "$OUT/records.tar.gz" -C "$P" .
}

RUNS="old_b64 new_b64_blocks new_b64_all old_b128 new_b128_all new_b128_replace"
bg_main "$@"
