#!/usr/bin/env bash
# One short GPU study in one call (see experiments/gpu_short_runs.md): synthetic 128x128 shards, the
# `small` video VAE, the tiny audio VAE, then the small DiT on their latents, generation and physics eval.
#   OUT=/tmp/gpu bash scripts/gpu_run.sh            # on the GPU machine (wheels carried in .wheels/)
#   SMOKE=1 OUT=/tmp/gpu bash scripts/gpu_run.sh    # the same pipeline in seconds on CPU
set -euo pipefail
OUT=${OUT:?set OUT}; mkdir -p "$OUT"
PY=${PY:-python3}
W=/tmp/ltx_gpu; rm -rf "$W"; mkdir -p "$W"
if [ -n "${SMOKE:-}" ]; then
  N=16; VAE_T=00:00:00:20; AVAE_T=00:00:00:10; DIT_T=00:00:00:20; EXTRA="trainer=cpu data.num_workers=0 data.batch_size=2 trainer.val_check_interval=4"
else
  N=${N:-512}; VAE_T=${VAE_T:-00:00:02:00}; AVAE_T=${AVAE_T:-00:00:00:40}; DIT_T=${DIT_T:-00:00:02:00}; EXTRA=""
fi
. scripts/gpu_env.sh; gpu_env_setup "$W/text_encoder"
t0=$(date +%s)
$PY -m ltx_train.data.cli synth --out "$W/shards" --train $N --val 32 --size 128 --frames 25 --workers 14 --shard-size 64
echo "shards: $(( $(date +%s) - t0 )) s"
COMMON="${VAL:-} data.train_shards=$W/shards/train-*.tar data.val_shards=$W/shards/val-*.tar ~callbacks.progress trainer.enable_progress_bar=false trainer.log_every_n_steps=10"
$PY -m ltx_train.train experiment=vae_small_gpu $COMMON trainer.max_time=$VAE_T hydra.run.dir=$W/vae $EXTRA
cp $W/vae/metrics.json "$OUT/vae_metrics.json"; cp $W/vae/csv/version_0/metrics.csv "$OUT/vae_curve.csv"
$PY -m ltx_train.train experiment=audio_vae_tiny $COMMON trainer=gpu trainer.max_time=$AVAE_T data.height=128 data.width=128 hydra.run.dir=$W/avae $EXTRA
$PY -m ltx_train.train experiment=dit_small_gpu $COMMON trainer.max_time=$DIT_T hydra.run.dir=$W/dit \
  model.vae_checkpoint=$W/vae/checkpoints/last.ckpt model.audio_vae_checkpoint=$W/avae/checkpoints/last.ckpt \
  model.text_encoder.path=$W/text_encoder $EXTRA
cp $W/dit/metrics.json "$OUT/dit_metrics.json"; cp $W/dit/csv/version_0/metrics.csv "$OUT/dit_curve.csv"
PROMPTS=$($PY -c "import json; from ltx_train.data.synth import render_clip, SynthConfig; print(json.dumps([render_clip(10**9+i, SynthConfig(width=128, height=128)).caption for i in range(4)]))")
$PY -m ltx_train.generate checkpoint=$W/dit/checkpoints/last.ckpt "prompts=$PROMPTS" height=128 width=128 steps=20 hydra.run.dir=$W/gen
$PY -m ltx_train.evaluate task=physics generated=$W/gen shards="$W/shards/val-*.tar" limit=16 hydra.run.dir=$W/phys
# what comes back: metrics, loss curves, one sample, reports
cp $W/avae/metrics.json "$OUT/avae_metrics.json"
cp $W/phys/report.json "$OUT/physics_report.json"
cp "$(ls $W/gen/*.mp4 | head -1)" "$OUT/sample.mp4"
echo "total: $(( $(date +%s) - t0 )) s"
