#!/usr/bin/env bash
# The longer single-GPU study (experiments/gpu_long_runs.md), run as a background job that outlives
# one device call (a call may last 10 minutes; the study takes ~25), so that the calls only watch it:
#   bash scripts/gpu_study.sh start            # renders data, starts both tracks in the background
#   bash scripts/gpu_study.sh wait 560         # waits <= 560 s (or until done / a stage fails),
#                                              # then packs results into $OUT/results.tar.gz
# Two tracks share the GPU:
#   A (issue 2): `vae/small` at 128x128 for VAE_T -- the larger-preset VAE run.
#   B (issue 4): tiny VAE + tiny audio VAE at 64x64 (a few minutes; meanwhile EXTRA more train clips
#                are rendered), then the `small` DiT (compiled blocks, batch BS_DIT, first-frame
#                conditioning FFP) on their latents for DIT_T, then text-to-video of held-out captions
#                and image-to-video of held-out clips, each scored by `ltx-eval task=physics`.
# SMOKE=1 runs the same on CPU in ~2 minutes with the tiny DiT (a check of the script itself).
set -uo pipefail
CMD=${1:?start|wait}   # (track_a, track_b: started by start)
W=${W:-/tmp/ltx_study}
PY=${PY:-python3}

if [ -n "${SMOKE:-}" ]; then
  NA=16; NB=32; NV=8; VAE_T=00:00:00:30; TV_T=00:00:00:20; AV_T=00:00:00:15; DIT_T=00:00:00:30
  GPU="trainer=cpu"; WORKERS=0; DIT=tiny; BS_DIT=4; BS_TV=4; VAL_EVERY=10; NGEN=2; EXTRA=16; COMPILE=false
else
  NA=${NA:-1024}; NB=${NB:-4096}; NV=64; VAE_T=${VAE_T:-00:00:21:00}; TV_T=${TV_T:-00:00:03:00}
  AV_T=${AV_T:-00:00:01:30}; DIT_T=${DIT_T:-00:00:17:00}
  GPU="trainer=gpu"; WORKERS=6; DIT=small; BS_DIT=${BS_DIT:-64}; BS_TV=16; VAL_EVERY=1000; NGEN=16
  EXTRA=${EXTRA:-8192}; COMPILE=${COMPILE:-true}
fi
FFP=${FFP:-0.5}   # DiT: share of training clips conditioned on their clean first frame (image-to-video)
QUIET="~callbacks.progress trainer.enable_progress_bar=false trainer.log_every_n_steps=25"

. "$(dirname "$0")/gpu_env.sh"   # stage(), gpu_env_setup()

track_a() {
  stage vae_small $PY -m ltx_train.train experiment=vae_small_gpu $QUIET $GPU \
    data.train_shards="$W/shards128/train-*.tar" data.val_shards="$W/shards128/val-*.tar" \
    data.num_workers=$WORKERS trainer.max_time=$VAE_T trainer.max_steps=100000 model.total_steps=${VAE_STEPS:-3000} \
    trainer.val_check_interval=$((VAL_EVERY / 2)) trainer.limit_val_batches=4 hydra.run.dir="$W/vae_small"
}

track_b() {
  local data64="data.train_shards=$W/shards64/train-*.tar data.val_shards=$W/shards64/val-*.tar data.num_workers=$WORKERS"
  # more DiT training clips (disjoint seeds), rendered on the CPU while the VAEs train on the GPU
  [ "$EXTRA" -gt 0 ] && $PY -m ltx_train.data.cli synth --out "$W/shards64b" --train $EXTRA --val 1 --seed $NB \
    --size 64 --frames 25 --workers 8 --shard-size 256 >"$W/logs/render_extra.log" 2>&1 &
  local pr=$!
  stage audio_vae $PY -m ltx_train.train experiment=audio_vae_tiny $QUIET $GPU $data64 \
    trainer.max_time=$AV_T trainer.max_steps=100000 model.total_steps=1500 data.batch_size=16 \
    trainer.val_check_interval=$VAL_EVERY hydra.run.dir="$W/audio_vae" &
  local pa=$!
  stage vae_tiny $PY -m ltx_train.train experiment=vae_tiny $QUIET $GPU $data64 \
    trainer.max_time=$TV_T trainer.max_steps=100000 model.total_steps=2500 data.batch_size=$BS_TV \
    trainer.val_check_interval=$VAL_EVERY hydra.run.dir="$W/vae_tiny" || return 1
  wait $pa || return 1
  local train="$W/shards64/train-*.tar"
  if [ "$EXTRA" -gt 0 ]; then wait $pr || return 1; train="[$W/shards64/train-*.tar,$W/shards64b/train-*.tar]"; fi
  nvidia-smi dmon -s u -d 5 >"$W/logs/dit_gpu_util.txt" 2>&1 &
  local dmon=$!
  stage dit $PY -m ltx_train.train experiment=dit_small_gpu dit=$DIT callbacks=dit $QUIET $GPU $data64 \
    "data.train_shards=$train" data.height=64 data.width=64 data.batch_size=$BS_DIT data.num_workers=$((WORKERS + 4)) \
    trainer.max_time=$DIT_T trainer.max_steps=100000 model.total_steps=${DIT_STEPS:-5000} \
    trainer.val_check_interval=$VAL_EVERY trainer.limit_val_batches=2 model.lr=3e-4 model.warmup_steps=200 \
    model.first_frame_prob=$FFP model.compile=$COMPILE model.text_encoder.cache_size=32768 \
    model.vae_checkpoint="$W/vae_tiny/checkpoints/last.ckpt" model.audio_vae_checkpoint="$W/audio_vae/checkpoints/last.ckpt" \
    model.text_encoder.path="$W/text_encoder" hydra.run.dir="$W/dit"
  kill $dmon 2>/dev/null
  [ -e "$W/dit/checkpoints/last.ckpt" ] || return 1   # a stopped run still generates from its last checkpoint
  local prompts
  prompts=$($PY -c "import json; from ltx_train.data.synth import render_clip, SynthConfig; print(json.dumps([render_clip(10**9+i, SynthConfig(width=64, height=64)).caption for i in range($NGEN)]))")
  # text-to-video on held-out captions, and image-to-video: held-out val clips continued from their first frame
  stage generate $PY -m ltx_train.generate checkpoint="$W/dit/checkpoints/last.ckpt" "prompts=$prompts" \
    height=64 width=64 steps=30 hydra.run.dir="$W/gen" || return 1
  stage generate_i2v $PY -m ltx_train.generate checkpoint="$W/dit/checkpoints/last.ckpt" \
    from_shards="$W/shards64/val-*.tar" limit=$NGEN height=64 width=64 steps=30 hydra.run.dir="$W/gen_i2v" || return 1
  stage physics $PY -m ltx_train.evaluate task=physics generated="$W/gen" shards="$W/shards64/val-*.tar" \
    limit=$NV hydra.run.dir="$W/phys"
  stage physics_i2v $PY -m ltx_train.evaluate task=physics generated="$W/gen_i2v" shards="$W/shards64/val-*.tar" \
    limit=$NV hydra.run.dir="$W/phys_i2v"
}

pack() {   # what comes back: one archive of metrics, curves, reports, samples and logs (+ the log tail)
  local P=$W/pack; rm -rf "$P"; mkdir -p "$P"
  cp -r "$W/logs" "$W/timeline.txt" "$P/" 2>/dev/null
  for run in vae_small vae_tiny audio_vae dit; do
    [ -d "$W/$run" ] || continue; mkdir -p "$P/$run"
    cp "$W/$run/metrics.json" "$P/$run/" 2>/dev/null
    cp "$W/$run/csv/version_0/metrics.csv" "$P/$run/curve.csv" 2>/dev/null
    ls "$W/$run"/samples/*.mp4 2>/dev/null | tail -6 | xargs -r cp -t "$P/$run/"
  done
  for g in gen gen_i2v; do
    [ -d "$W/$g" ] && mkdir -p "$P/$g" && cp "$W/$g"/*.mp4 "$W/$g"/*.txt "$W/$g"/*.json "$P/$g/" 2>/dev/null
  done
  [ -f "$W/phys/report.json" ] && cp "$W/phys/report.json" "$P/physics_report.json"
  [ -f "$W/phys_i2v/report.json" ] && cp "$W/phys_i2v/report.json" "$P/physics_report_i2v.json"
  nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv >"$P/nvidia_smi.txt" 2>/dev/null
  tar -czf "$OUT/results.tar.gz" -C "$P" .
}

case $CMD in
start)
  rm -rf "$W"; mkdir -p "$W/logs" "$W/status"
  . scripts/gpu_env.sh; gpu_env_setup "$W/text_encoder" || exit 1
  t0=$(date +%s)
  [ "${TRACKS:-ab}" = b ] || $PY -m ltx_train.data.cli synth --out "$W/shards128" --train $NA --val $NV --size 128 --frames 25 --workers 14 --shard-size 128 || exit 1
  echo "[$(date +%T)] shards128: $(( $(date +%s) - t0 )) s" | tee -a "$W/timeline.txt"
  # each track re-runs this script in its own session (it outlives the call), reading the same environment
  [ "${TRACKS:-ab}" = b ] || W=$W setsid bash "$0" track_a </dev/null >"$W/logs/track_a.out" 2>&1 &
  t0=$(date +%s)
  $PY -m ltx_train.data.cli synth --out "$W/shards64" --train $NB --val $NV --size 64 --frames 25 --workers 12 --shard-size 256 || exit 1
  echo "[$(date +%T)] shards64: $(( $(date +%s) - t0 )) s" | tee -a "$W/timeline.txt"
  W=$W setsid bash "$0" track_b </dev/null >"$W/logs/track_b.out" 2>&1 &
  if [ -z "${SMOKE:-}${NOTEST:-}" ]; then   # the GPU-marked tests, while the tracks warm up
    timeout 150 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider >"$W/logs/pytest_gpu.log" 2>&1
    echo "[$(date +%T)] pytest -m gpu: rc=$?" >>"$W/timeline.txt"
  fi
  echo started
  ;;
track_a) track_a ;;
track_b) track_b; touch "$W/status/track_b.done" ;;
wait)
  deadline=$(( $(date +%s) + ${2:-560} ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    ls "$W/status" | grep -q '\.fail$' && { echo "a stage failed"; break; }
    a_running=; [ -e "$W/logs/vae_small.log" ] && ! ls "$W/status" | grep -q '^vae_small\.' && a_running=1
    [ -e "$W/status/track_b.done" ] && [ -z "$a_running" ] && { echo "all done"; break; }
    sleep 10
  done
  pack
  cat "$W/timeline.txt"
  for f in "$W"/logs/*.log; do echo "== $f"; grep -v "^\s*$" "$f" | tail -4 | cut -c1-300; done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
  for run in vae_small dit; do   # progress: last logged step
    [ -f "$W/$run/csv/version_0/metrics.csv" ] && echo "$run last row: $(tail -n 1 "$W/$run/csv/version_0/metrics.csv" | cut -c1-160)"
  done
  ;;
esac
