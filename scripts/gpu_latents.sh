#!/usr/bin/env bash
# GPU work from latent caches (one H200), in the background, watched by short calls:
#   bash scripts/gpu_latents.sh start        # returns at once
#   bash scripts/gpu_latents.sh wait 540     # waits <= 540 s, prints progress, packs $OUT
# 1. `ltx-shards cache` of 16384 + 64 synthetic-world clips (and 48 + 8 camera-pan clips) with the shipped
#    base's tiny VAEs and the real MiniLM (carried as fp16: .gpu_assets/minilm_fp16);
# 2. throughput probes of cached DiT training at batch 64 (the batch of the decoded reference run) and 256;
# 3. the `mini` base DiT from the cache (experiment=reference_base_latents), step budget from the probe;
# 4. ltx-export (bf16), then motion LoRAs (camera pan left) on that base from the pan cache.
# Generation and evaluation run on the CPU afterwards (the device has no PyAV to write mp4).
# SMOKE=1: the same on CPU, tiny sizes (a check of the script).
set -uo pipefail
W=${W:-/tmp/ltx_latents}
PY=${PY:-python3}
ASSET=${ASSET:-$PWD/assets/pretrained/ltx-mini-synth}
TE=${TE:-$PWD/.gpu_assets/minilm_fp16}
if [ -n "${SMOKE:-}" ]; then
  DEV=cpu; GPU="trainer=cpu"; N=64; NV=8; NP=16; SHARD=32; BS=8; WK=1; COMPILE=false; BUDGET=20; PROBE=6; LSTEPS=6; DW=0
else
  DEV=cuda; GPU="trainer=gpu"; N=16384; NV=64; NP=48; SHARD=128; BS=256; WK=12; COMPILE=true; BUDGET=${BUDGET:-400}
  PROBE=300; LSTEPS=${LSTEPS:-2000}; DW=8
fi
QUIET="trainer.enable_progress_bar=false trainer.log_every_n_steps=50"
. "$(dirname "$0")/gpu_env.sh"   # stage()

probe() {   # probe NAME BATCH: a short cached run; its metrics.json holds perf/step_time_s
  dmon_start "$W/logs/$1_sm.txt" 2
  stage "$1" $PY -m ltx_train.train experiment=reference_base_latents $GPU $QUIET data.path="$W/latents/world" \
    data.batch_size=$2 data.num_workers=$DW trainer.max_steps=$PROBE model.total_steps=$PROBE \
    trainer.limit_val_batches=0 model.compile=$COMPILE hydra.run.dir="$W/$1"
  dmon_stop
}

run_all() {
  stage cache_world $PY -m ltx_train.data.cli cache --synthetic $N --val $NV --shard-size $SHARD \
    --pretrained "$ASSET" --text-encoder "$TE" --out "$W/latents/world" --device $DEV --workers $WK --batch-size 128 || return 1
  stage cache_pan $PY -m ltx_train.data.cli cache --synthetic $NP --val 8 --seed 7000000 --camera pan_left \
    --pretrained "$ASSET" --text-encoder "$TE" --out "$W/latents/pan_left" --device $DEV --workers $WK || return 1
  du -sh "$W"/latents/* >"$W/logs/cache_size.txt"
  probe probe64 64
  probe probe256 $BS
  local st; st=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['perf/step_time_s'])" "$W/probe256/metrics.json")
  local steps; steps=$($PY -c "import sys; print(max(20, min(20000, int($BUDGET / float(sys.argv[1])))))" "$st")
  echo "dit: $steps steps (probe step time $st s, budget $BUDGET s)" >>"$W/timeline.txt"
  dmon_start "$W/logs/dit_sm.txt" 5
  stage dit $PY -m ltx_train.train experiment=reference_base_latents $GPU $QUIET data.path="$W/latents/world" \
    data.batch_size=$BS data.num_workers=$DW trainer.max_steps=$steps model.total_steps=$steps \
    trainer.val_check_interval=$(( steps / 8 > 0 ? steps / 8 : 1 )) trainer.max_time=$(printf 00:00:%02d:%02d $((BUDGET * 3 / 2 / 60)) $((BUDGET * 3 / 2 % 60))) \
    model.compile=$COMPILE hydra.run.dir="$W/dit"
  dmon_stop
  stage export $PY -m ltx_train.export checkpoint="$W/dit/checkpoints/last.ckpt" \
    out="$W/pretrained" dtype=bfloat16 packaged_text_encoder=true hydra.run.dir="$W/export" || return 1
  cp -r "$ASSET/vocoder" "$W/pretrained/" && $PY - "$W/pretrained" <<'PYEOF'
import json, sys; p = sys.argv[1] + "/model_index.json"; i = json.load(open(p)); i["vocoder"] = ["ltx_train", "HiFiGAN"]
open(p, "w").write(json.dumps(i, indent=2) + "\n")
PYEOF
  for v in a b; do   # a: the preset (lr 1e-4); b: lr 5e-4, text-to-video only
    local extra=""; [ $v = b ] && extra="model.lr=5e-4 model.first_frame_prob=0.0"
    stage lora_$v $PY -m ltx_train.train experiment=lora_motion base="$W/pretrained" $GPU $QUIET callbacks=default \
      data=latents data.path="$W/latents/pan_left" data.batch_size=16 trainer.max_steps=$LSTEPS \
      model.total_steps=$LSTEPS trainer.val_check_interval=$((LSTEPS / 4)) $extra hydra.run.dir="$W/lora_$v"
  done
}

pack() {   # what comes back: the base (split into <= 15 MB parts), the adapters and one archive of records
  local P=$W/pack; rm -rf "$P"; mkdir -p "$P"
  cp -r "$W/logs" "$W/timeline.txt" "$P/" 2>/dev/null
  for run in probe64 probe256 dit lora_a lora_b; do
    [ -d "$W/$run" ] || continue; mkdir -p "$P/$run"
    cp "$W/$run/metrics.json" "$P/$run/" 2>/dev/null
    cp "$W/$run/csv/version_0/metrics.csv" "$P/$run/curve.csv" 2>/dev/null
    [ -d "$W/$run/adapter" ] && cp -r "$W/$run/adapter" "$P/$run/"
  done
  cp "$W/latents/world/manifest.json" "$P/cache_manifest.json" 2>/dev/null
  tar -czf "$OUT/records.tar.gz" -C "$P" .
  if [ -d "$W/pretrained" ]; then
    tar -cf "$W/pretrained.tar" -C "$W" pretrained && split -b 15m -d "$W/pretrained.tar" "$OUT/pretrained.tar.part"
  fi
}

RUNS="probe64 probe256 dit lora_a lora_b"
bg_main "$@"
