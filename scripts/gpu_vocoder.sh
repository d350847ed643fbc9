#!/usr/bin/env bash
# Vocoders against Griffin-Lim on one GPU (issue 15; experiments/vocoder_floor.md), in the background:
#   bash scripts/gpu_vocoder.sh start      # returns at once
#   bash scripts/gpu_vocoder.sh wait 540   # waits <= 540 s, prints progress, packs $OUT
# Side by side, each for at most $T on data=synthetic_live ($NTRAIN clips, rendered once, then read from
# a cache), batch $BS, lr $LR:
#   tiny_alt   the tiny HiFi-GAN, gan_update=alternating, discriminators from half-way ($S/2 batches);
#   tiny_sim   the same with gan_update=simultaneous (one optimiser step per batch, not two);
#   base_mel   the base HiFi-GAN (V1 widths), mel L1 only, lr $LR_BASE.
# Then scripts/vocoder_floor.py scores each last.ckpt, Griffin-Lim and the noise-realisation floor on
# 32 val clips (all frames / noise frames / event frames).
set -uo pipefail
W=${W:-/tmp/ltx_voc}
PY=${PY:-python3}
S=${S:-6000}; BS=${BS:-16}; T=${T:-00:00:06:00}; LR=${LR:-2e-3}; LR_BASE=${LR_BASE:-5e-4}; NTRAIN=${NTRAIN:-2048}
QUIET="~callbacks.progress trainer.enable_progress_bar=false trainer.log_every_n_steps=50 callbacks=default"
LIVE="data=synthetic_live data.num_train=$NTRAIN data.num_workers=4 data.persistent_workers=true"
. "$(dirname "$0")/gpu_env.sh"   # stage(), bg_main
RUNS="tiny_alt tiny_sim base_mel"

vocoder() {   # vocoder NAME PRESET LR OVERRIDES...
  local name=$1 preset=$2 lr=$3; shift 3
  stage "$name" $PY -m ltx_train.train experiment=vocoder_tiny vocoder=$preset trainer=gpu $QUIET $LIVE \
    data.batch_size=$BS trainer.max_time=$T model.total_steps=$S model.lr=$lr model.warmup_steps=200 \
    trainer.val_check_interval=1000 trainer.limit_val_batches=2 data.cache_dir="$W/cache_$name" \
    hydra.run.dir="$W/$name" logger=csv "$@"
}

run_all() {
  # (alternating: Lightning counts 2 steps per batch once the discriminators train)
  vocoder tiny_alt tiny $LR trainer.max_steps=$((2 * S)) model.disc_start_step=$((S / 2)) &
  local p1=$!
  vocoder tiny_sim tiny $LR trainer.max_steps=$S model.disc_start_step=$((S / 2)) model.gan_update=simultaneous &
  local p2=$!
  vocoder base_mel base $LR_BASE trainer.max_steps=$S model.disc_start_step=$((10 * S))
  wait $p1; wait $p2
  local args=""
  for run in $RUNS; do [ -f "$W/$run/checkpoints/last.ckpt" ] && args="$args --vocoder $run=$W/$run/checkpoints/last.ckpt"; done
  stage floor $PY scripts/vocoder_floor.py --clips 32 $args --out "$W/vocoder_floor.json"
}

pack() {
  for run in $RUNS; do
    [ -f "$W/$run/csv/version_0/metrics.csv" ] && cp "$W/$run/csv/version_0/metrics.csv" "$OUT/$run.metrics.csv"
  done
  for run in tiny_alt tiny_sim; do
    [ -f "$W/$run/checkpoints/last.ckpt" ] && cp "$W/$run/checkpoints/last.ckpt" "$OUT/$run.ckpt"
  done
  cp "$W/vocoder_floor.json" "$OUT/" 2>/dev/null
  tail -n 8 "$W/logs/floor.log" >"$OUT/floor_tail.txt" 2>/dev/null
}
bg_main "$@"
