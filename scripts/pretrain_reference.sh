#!/usr/bin/env bash
# Pretrain the shipped reference base (assets/pretrained/ltx-mini-synth) from scratch on one GPU:
#   1. tiny video VAE, tiny audio VAE and tiny vocoder, side by side;
#   2. the `mini` DiT + ltx23 connector (experiment=reference_base) on their latents, conditioned on
#      the real MiniLM (TEXT_ENCODER: a local copy of the packaged model, e.g. fp16 safetensors);
#   3. ltx-export to a bf16 pretrained directory that refers to the packaged MiniLM.
# Every stage trains on the synthetic world rendered in-process (data=synthetic_live, no mp4 needed)
# and caches the rendered clips on local disk. It runs in the background and is watched:
#   bash scripts/pretrain_reference.sh start          # returns at once
#   bash scripts/pretrain_reference.sh wait 540       # waits <= 540 s, prints progress, packs $OUT
# SMOKE=1 runs the same on CPU in a few minutes (a check of the script itself).
set -uo pipefail
W=${W:-/tmp/ltx_reference}
PY=${PY:-python3}
TEXT_ENCODER=${TEXT_ENCODER:-$PWD/.gpu_assets/minilm_fp16}
if [ -n "${SMOKE:-}" ]; then
  GPU="trainer=cpu"; T_VAE=00:00:00:40; T_AVAE=00:00:00:30; T_VOC=00:00:00:40; T_DIT=00:00:01:00
  S_VAE=20; S_AVAE=20; S_VOC=40; S_DIT=20; BS=4; BS_DIT=4; NTRAIN=64; WV=1; WA=0; WD=1; COMPILE=false; VAL=10
else
  GPU="trainer=gpu"; T_VAE=00:00:04:00; T_AVAE=00:00:02:30; T_VOC=00:00:04:00; T_DIT=${T_DIT:-00:00:12:00}
  S_VAE=2500; S_AVAE=1500; S_VOC=4000; S_DIT=${S_DIT:-8000}; BS=16; BS_DIT=64; NTRAIN=16384; WV=5; WA=3; WD=12
  COMPILE=true; VAL=500
fi
QUIET="~callbacks.progress trainer.enable_progress_bar=false trainer.log_every_n_steps=50 callbacks=default"
LIVE="data=synthetic_live data.num_train=$NTRAIN data.cache_dir=$W/render_cache data.persistent_workers=true"

. "$(dirname "$0")/gpu_env.sh"   # stage(), gpu_env_setup()

run_all() {
  stage audio_vae $PY -m ltx_train.train experiment=audio_vae_tiny $GPU $QUIET $LIVE data.num_workers=$WA \
    data.batch_size=$BS trainer.max_time=$T_AVAE trainer.max_steps=$S_AVAE model.total_steps=$S_AVAE \
    trainer.val_check_interval=$VAL hydra.run.dir="$W/audio_vae" &
  local pa=$!
  stage vocoder $PY -m ltx_train.train experiment=vocoder_tiny $GPU $QUIET $LIVE data.num_workers=$WA \
    data.batch_size=$BS trainer.max_time=$T_VOC trainer.max_steps=$S_VOC model.total_steps=$((S_VOC / 2)) \
    model.disc_start_step=$((S_VOC / 8)) trainer.val_check_interval=$VAL hydra.run.dir="$W/vocoder" &
  local pv=$!
  stage vae $PY -m ltx_train.train experiment=vae_tiny $GPU $QUIET $LIVE data.num_workers=$WV \
    data.batch_size=$BS trainer.max_time=$T_VAE trainer.max_steps=$S_VAE model.total_steps=$S_VAE \
    trainer.val_check_interval=$VAL hydra.run.dir="$W/vae" || return 1
  wait $pa || return 1
  dmon_start "$W/logs/dit_gpu_util.txt" 5
  stage dit $PY -m ltx_train.train experiment=reference_base $GPU $QUIET $LIVE data.num_workers=$WD \
    data.batch_size=$BS_DIT trainer.max_time=$T_DIT trainer.max_steps=$S_DIT model.total_steps=$S_DIT \
    trainer.val_check_interval=$VAL model.compile=$COMPILE model.text_encoder.path="$TEXT_ENCODER" \
    model.text_encoder.cache_size=0 model.vae_checkpoint="$W/vae/checkpoints/last.ckpt" \
    model.audio_vae_checkpoint="$W/audio_vae/checkpoints/last.ckpt" hydra.run.dir="$W/dit"
  dmon_stop
  wait $pv
  [ -e "$W/dit/checkpoints/last.ckpt" ] || return 1   # a run stopped by its time budget still exports
  stage export $PY -m ltx_train.export checkpoint="$W/dit/checkpoints/last.ckpt" \
    vocoder_checkpoint="$W/vocoder/checkpoints/last.ckpt" out="$W/pretrained" dtype=bfloat16 \
    packaged_text_encoder=true hydra.run.dir="$W/export"
}

pack() {   # what comes back: the pretrained dir (split into <= 15 MB parts) and one archive of records
  local P=$W/pack; rm -rf "$P"; mkdir -p "$P"
  cp -r "$W/logs" "$W/timeline.txt" "$P/" 2>/dev/null
  for run in vae audio_vae vocoder dit; do
    [ -d "$W/$run" ] || continue; mkdir -p "$P/$run"
    cp "$W/$run/metrics.json" "$P/$run/" 2>/dev/null
    cp "$W/$run/csv/version_0/metrics.csv" "$P/$run/curve.csv" 2>/dev/null
  done
  tar -czf "$OUT/records.tar.gz" -C "$P" .
  if [ -d "$W/pretrained" ]; then
    tar -cf "$W/pretrained.tar" -C "$W" pretrained && split -b 15m -d "$W/pretrained.tar" "$OUT/pretrained.tar.part"
  fi
}

RUNS="vae audio_vae vocoder dit"
bg_main "$@"
