#!/usr/bin/env bash
# `vae/small` at 128x128 toward 32 dB on one GPU (issue 15), beside the DeepSpeed tests of the pixel stages
# (issue 13), in the background:
#   bash scripts/gpu_vae_small.sh start      # returns at once
#   bash scripts/gpu_vae_small.sh wait 540   # waits <= 540 s, prints progress, packs $OUT
#   bash scripts/gpu_vae_small.sh parts 0 3  # after it: weight parts 0..3 into $OUT (a call returns ~58 MB at most)
# vae_small: experiment=vae_small_gpu on data=synthetic_live (a new clip every sample: no clip is seen
#   twice), batch $BS, lr $LR, cosine over $STEPS steps, stopped at $T. Then its weights are written as a
#   pretrained component (float16, split into 7 parts of ~14 MiB so that they come back from the device):
#   `cat vae_small.safetensors.part* > model.safetensors` beside `vae_small_config.json` (as config.json).
#   They come back over two `parts` calls. When .gpu_assets/real128.pt is carried (scripts/real_footage_clips.py
#   pack), the run is also scored there on real footage at 128x128 (meta.tar: real/summary.json + grids).
# COMPILE=true: the encoder and decoder compiled (model.compile). DEADLINE=<epoch s>: max_time so that the
#   run, export and scoring end by then (for a run chained after another job in the same device session).
# NOTEST=1 skips the tests: tests/test_gpu_strategies.py -k "vae_stage or simultaneous" (ZeRO-2/3 against trainer=gpu).
set -uo pipefail
W=${W:-/tmp/ltx_vae_small}
PY=${PY:-python3}
BS=${BS:-16}; LR=${LR:-1.5e-3}; STEPS=${STEPS:-4000}; T=${T:-00:00:22:00}; WK=${WK:-12}; COMPILE=${COMPILE:-false}
REAL=${REAL:-.gpu_assets/real128.pt}   # the packed real-footage clips (may be carried by a later call, e.g. to /tmp)
QUIET="~callbacks.progress trainer.enable_progress_bar=false trainer.log_every_n_steps=50 callbacks=default logger=csv"
. "$(dirname "$0")/gpu_env.sh"   # stage(), bg_main
RUNS="vae_small"

run_all() {
  local pt=
  if [ -z "${NOTEST:-}" ]; then
    stage tests $PY -m pytest -q -m gpu tests/test_gpu_strategies.py -k "vae_stage or simultaneous" \
      -p no:cacheprovider --basetemp "$W/pt" &
    pt=$!
  fi
  if [ -n "${DEADLINE:-}" ]; then   # an epoch second: train until then, less ~90 s for export and scoring
    local left=$(( DEADLINE - $(date +%s) - 90 ))
    T=$(printf '00:%02d:%02d:%02d' $((left / 3600)) $((left % 3600 / 60)) $((left % 60)))
    echo "[$(date +%T)] vae_small: max_time $T (DEADLINE)" >>"$W/timeline.txt"
  fi
  dmon_start "$W/logs/vae_small_sm.txt" 5
  stage vae_small $PY -m ltx_train.train experiment=vae_small_gpu $QUIET data=synthetic_live \
    data.height=128 data.width=128 data.num_train=null data.epoch_size=8192 data.num_workers=$WK \
    data.persistent_workers=true data.batch_size=$BS model.lr=$LR model.warmup_steps=200 \
    model.total_steps=$STEPS trainer.max_steps=$STEPS trainer.max_time=$T trainer.val_check_interval=500 \
    trainer.limit_val_batches=1.0 model.compile=$COMPILE hydra.run.dir="$W/vae_small"
  dmon_stop
  stage export $PY - "$W" <<'PYEOF'
import sys, torch
from pathlib import Path
from ltx_train.pretrained import component_from_checkpoint, save_component
w = Path(sys.argv[1])
vae = component_from_checkpoint(w / "vae_small/checkpoints/last.ckpt", "vae")
save_component(vae, w / "export/vae", dtype=torch.float16)
print("exported", sum(p.numel() for p in vae.parameters()), "parameters")
PYEOF
  (cd "$W/export/vae" && split -n 7 -d model.safetensors vae_small.safetensors.part)
  if [ -f "$REAL" ]; then
    stage real $PY scripts/real_footage_clips.py score "$REAL" "$W/vae_small/checkpoints/last.ckpt" "$W/real"
  fi
  [ -n "$pt" ] && wait $pt
}

pack() {   # meta.tar: logs, curves, config, real-footage scores (the weight parts: `parts`)
  local m=$W/meta; rm -rf "$m"; mkdir -p "$m"
  cp "$W/vae_small/csv/version_0/metrics.csv" "$m/vae_small.metrics.csv" 2>/dev/null
  cp "$W/vae_small/metrics.json" "$m/vae_small.metrics.json" 2>/dev/null
  tail -n 40 "$W/logs/tests.log" >"$m/tests_tail.txt" 2>/dev/null
  cp "$W/logs/vae_small_sm.txt" "$W/logs/vae_small.log" "$W/timeline.txt" "$m/" 2>/dev/null
  cp "$W/export/vae/config.json" "$m/vae_small_config.json" 2>/dev/null
  [ -d "$W/real" ] && cp -r "$W/real" "$m/real"
  tar -C "$m" -cf "$OUT/meta.tar" .
}
if [ "${1:-}" = parts ]; then
  for i in $(seq -f %02g "$2" "$3"); do cp "$W/export/vae/vae_small.safetensors.part$i" "$OUT/"; done; ls -la "$OUT"; exit 0
fi
bg_main "$@"
