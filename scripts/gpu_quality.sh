#!/usr/bin/env bash
# experiments/quality.md: the image-feature and connector ablations (issues 14 and 15) on one H200, in
# the background, watched by short calls:
#   bash scripts/gpu_quality.sh start        # returns at once
#   bash scripts/gpu_quality.sh wait 540     # waits <= 540 s, prints progress, packs $OUT
# 1. `ltx-shards cache` of N synthetic-world clips (64x64, 25 frames) with the shipped base's tiny VAEs
#    and the real MiniLM (.gpu_assets/minilm_fp16) at max_length 176 (every synthetic caption fits; at
#    the base's 128, 38% lose their last sentence, the camera's);
# 2. six DiT runs of the reference recipe (experiment=reference_base_latents: `mini` DiT, batch 256,
#    the same step budget), side by side on the one GPU (each step is launch-bound, so the processes
#    share it at modest cost to each):
#      ltx23, ltx23_s1        the 4x connector (ltx23, width 128 x2), seeds 0 and 1; image-to-video by
#                             the clean latent frame alone
#      baseline, baseline_s1  the baseline connector (width 128 x1: a quarter of ltx23's parameters)
#      ltx23_img              ltx23 + the conv image encoder's spatial feature tokens (model.image={kind: conv})
#      nophys                 ltx23 without the physics heads (model.physics.enabled=false)
# 3. ltx-export (bf16) of each. What comes back: one archive of records, and the models' weights
#    (split into <= 15 MB parts), three models per call (the device returns <= 64 MiB a call):
#      bash scripts/gpu_quality.sh wait 540          # records + ltx23 ltx23_img baseline
#      MODELS="ltx23_s1 baseline_s1 nophys" bash scripts/gpu_quality.sh wait 1
#    Generation and evaluation run on the CPU afterwards (no PyAV on the device).
# SMOKE=1: the same on CPU at tiny sizes (a check of the script).
set -uo pipefail
W=${W:-/tmp/ltx_quality}
PY=${PY:-python3}
ASSET=${ASSET:-$PWD/assets/pretrained/ltx-mini-synth}
TE=${TE:-$PWD/.gpu_assets/minilm_fp16}
if [ -n "${SMOKE:-}" ]; then
  DEV=cpu; GPU="trainer=cpu"; N=32; NV=8; SHARD=16; BS=4; WK=1; COMPILE=false; STEPS=4; DW=0; MAXT=00:00:05:00
  SMALL="dit=tiny connector.width=64"
else
  DEV=cuda; GPU="trainer=gpu"; N=${N:-8192}; NV=64; SHARD=128; BS=256; WK=12; COMPILE=true; STEPS=${STEPS:-3000}
  DW=2; MAXT=${MAXT:-00:00:15:00}; SMALL=""
fi
QUIET="trainer.enable_progress_bar=false trainer.log_every_n_steps=50"
. "$(dirname "$0")/gpu_env.sh"   # stage(), bg_main
RUNS="ltx23 ltx23_img baseline ltx23_s1 baseline_s1 nophys"
MODELS=${MODELS:-ltx23 ltx23_img baseline}

train_run() {   # train_run NAME EXTRA...: one DiT run of the shared recipe, then its export
  local name=$1; shift
  stage "$name" $PY -m ltx_train.train experiment=reference_base_latents $GPU $QUIET $SMALL \
    data.path="$W/latents/world" data.batch_size=$BS data.num_workers=$DW trainer.max_steps=$STEPS \
    model.total_steps=$STEPS trainer.val_check_interval=$(( STEPS / 6 > 0 ? STEPS / 6 : 1 )) \
    trainer.max_time=$MAXT model.compile=$COMPILE "$@" hydra.run.dir="$W/$name" || return 1
  stage "export_$name" $PY -m ltx_train.export checkpoint="$W/$name/checkpoints/last.ckpt" \
    out="$W/pre_$name" dtype=bfloat16 packaged_text_encoder=true hydra.run.dir="$W/export_$name"
}

run_all() {
  stage cache_world $PY -m ltx_train.data.cli cache --synthetic $N --val $NV --shard-size $SHARD \
    --pretrained "$ASSET" --text-encoder "$TE" --max-length 176 --out "$W/latents/world" --device $DEV \
    --workers $WK --batch-size 128 || return 1
  du -sh "$W"/latents/* >"$W/logs/cache_size.txt"
  dmon_start "$W/logs/train_sm.txt" 5
  train_run ltx23 seed=0 &
  train_run ltx23_img seed=0 "model.image={kind: conv}" &
  train_run baseline seed=0 connector=baseline &
  train_run nophys seed=0 model.physics.enabled=false &
  train_run ltx23_s1 seed=1 &
  train_run baseline_s1 seed=1 connector=baseline &
  wait
  dmon_stop
}

pack() {   # what comes back: each run's model/ (<= 15 MB parts) and one archive of records
  local P=$W/pack; rm -rf "$P"; mkdir -p "$P"
  cp -r "$W/logs" "$W/timeline.txt" "$P/" 2>/dev/null
  cp "$W/latents/world/manifest.json" "$P/cache_manifest.json" 2>/dev/null
  for run in $RUNS; do
    [ -d "$W/$run" ] || continue; mkdir -p "$P/$run"
    cp "$W/$run/metrics.json" "$P/$run/" 2>/dev/null
    cp "$W/$run/csv/version_0/metrics.csv" "$P/$run/curve.csv" 2>/dev/null
    cp "$W/$run/.hydra/config.yaml" "$P/$run/" 2>/dev/null
    if [ -d "$W/pre_$run" ]; then
      cp "$W/pre_$run/model_index.json" "$P/$run/"; cp "$W/pre_$run/model/config.json" "$P/$run/model_config.json"
    fi
  done
  for run in $MODELS; do
    [ -f "$W/pre_$run/model/model.safetensors" ] && split -b 15m -d "$W/pre_$run/model/model.safetensors" "$OUT/$run.safetensors.part"
  done
  tar -czf "$OUT/records.tar.gz" -C "$P" .
}

bg_main "$@"
