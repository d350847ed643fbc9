#!/usr/bin/env bash
# experiments/deepspeed_one_gpu.md: DeepSpeed ZeRO on one GPU (issue 13), in the background:
#   bash scripts/gpu_deepspeed.sh start      # returns at once
#   bash scripts/gpu_deepspeed.sh wait 540   # waits <= 540 s, prints progress, packs $OUT
# PART=probes runs first (alone on the machine), then PART=tests.
# PART=tests: the GPU tests (tests/test_gpu_strategies.py: ZeRO-2/3/3+offload against trainer=gpu, merge,
#   export, resume; LoRA under ZeRO-3; refusals), then tests/test_gpu.py.
# PART=probes: a latent cache of $N synthetic clips (the real MiniLM; VAEs of the shipped base's configs,
#   random weights when the tree travelled without them: the same shapes, so the same step time and
#   memory), then per strategy a short run of the `small` DiT (eager, batch $BS): perf/step_time_s,
#   perf/gpu_mem_gib, perf/host_mem_gib; then the largest presets (1b, ltx2b) under trainer=gpu and
#   deepspeed_zero3_offload. PROBES / BIG choose which.
# PART=all: both.
set -uo pipefail
W=${W:-/tmp/ltx_ds}
PY=${PY:-python3}
ASSET=${ASSET:-$PWD/assets/pretrained/ltx-mini-synth}
TE=${TE:-$PWD/.gpu_assets/minilm_fp16}
N=${N:-512}; BS=${BS:-64}; STEPS=${STEPS:-40}; BIGSTEPS=${BIGSTEPS:-12}
PROBES=${PROBES:-"gpu deepspeed_zero2 deepspeed_zero2_offload deepspeed_zero3 deepspeed_zero3_offload"}
BIG=${BIG:-"1b:gpu 1b:deepspeed_zero3_offload ltx2b:gpu ltx2b:deepspeed_zero3 ltx2b:deepspeed_zero3_offload"}
QUIET="trainer.enable_progress_bar=false trainer.log_every_n_steps=5 trainer.limit_val_batches=0"
. "$(dirname "$0")/gpu_env.sh"   # stage(), bg_main
RUNS=""

probe() {   # probe NAME TRAINER BATCH STEPS [OVERRIDES...]
  local name=$1 tr=$2 bs=$3 steps=$4; shift 4
  RUNS="$RUNS $name"
  stage "$name" $PY -m ltx_train.train experiment=dit_small_latents trainer=$tr trainer.devices=1 $QUIET \
    data.path="$W/latents" data.batch_size=$bs data.num_workers=4 trainer.max_steps=$steps model.total_steps=$steps \
    model.compile=false trainer.val_check_interval=$steps hydra.run.dir="$W/$name" logger=csv \
    callbacks.model_checkpoint.every_n_train_steps=1000000 "$@"   # no checkpoint: 4b's would be ~90 GB
  rm -rf "$W/$name/checkpoints"   # (ltx2b's were 30-40 GB each: the device's 64 GiB disk holds one, session 7)
}

run_all() {
  export LTX_TEXT_ENCODER=$TE
  case ${PART:-all} in probes|all)   # first, alone on the GPU and the host: their times are reported
    [ -f "$W/latents/manifest.json" ] || {
      stage base $PY scripts/shape_alike_base.py "$ASSET" "$W/base" --text-encoder "$TE" || return 1
      stage cache $PY -m ltx_train.data.cli cache --synthetic $N --val 8 --shard-size 256 --pretrained "$W/base" \
        --text-encoder "$TE" --out "$W/latents" --device cuda --workers 12 --batch-size 128 || return 1; }
    for tr in $PROBES; do probe "small_$tr" "$tr" $BS $STEPS; done
    for pair in $BIG; do
      probe "${pair%%:*}_${pair##*:}" "${pair##*:}" 8 $BIGSTEPS dit=${pair%%:*} model.warmup_steps=2
    done ;;
  esac
  case ${PART:-all} in tests|all)
    stage tests_ds $PY -m pytest -q -m gpu tests/test_gpu_strategies.py -p no:cacheprovider --basetemp "$W/pt_ds"
    stage tests_gpu $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider --basetemp "$W/pt_gpu" ;;
  esac
}

pack() {
  for run in $RUNS; do
    [ -f "$W/$run/csv/version_0/metrics.csv" ] && mkdir -p "$OUT/$run" && cp "$W/$run/csv/version_0/metrics.csv" "$OUT/$run/"
  done
  cp -r "$W/logs" "$OUT/" 2>/dev/null
  cp "$W/timeline.txt" "$OUT/" 2>/dev/null
  $PY - "$W" $RUNS <<'PYEOF' >"$OUT/summary.txt" 2>&1
import csv, statistics, sys
from pathlib import Path
w = Path(sys.argv[1])
for run in sys.argv[2:]:
    f = w / run / "csv" / "version_0" / "metrics.csv"
    if not f.is_file():
        print(f"{run}: no metrics"); continue
    rows = list(csv.DictReader(open(f)))
    def col(k): return [float(r[k]) for r in rows if r.get(k) not in (None, "")]
    st, gm, hm, loss = col("perf/step_time_s"), col("perf/gpu_mem_gib"), col("perf/host_mem_gib"), col("train/loss")
    tail = st[len(st) // 2:] or st
    print(f"{run}: step {statistics.median(tail) if tail else float('nan'):.4f} s (median of last {len(tail)} logged), "
          f"gpu peak {max(gm) if gm else float('nan'):.2f} GiB, host peak {max(hm) if hm else float('nan'):.2f} GiB, "
          f"loss {loss[0] if loss else float('nan'):.4f} -> {loss[-1] if loss else float('nan'):.4f}")
PYEOF
  cat "$OUT/summary.txt"
}

RUNS_ALL="$(for tr in $PROBES; do echo -n " small_$tr"; done)$(for p in $BIG; do echo -n " ${p%%:*}_${p##*:}"; done)"
[ "${1:-}" = wait ] && RUNS=$RUNS_ALL
bg_main "$@"
