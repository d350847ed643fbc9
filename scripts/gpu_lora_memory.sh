#!/usr/bin/env bash
# The LoRA memory study (issue 12) after issue 13's vocoder ZeRO test, one H200, in the background:
#   bash scripts/gpu_lora_memory.sh start      # returns at once
#   bash scripts/gpu_lora_memory.sh wait 540   # waits <= 540 s, prints progress, packs $OUT
#   carry: [".wheels", ".gpu_assets/lora_mem_cache"]
# The cache is made here, on the CPU, with the shipped base's VAEs and the real packaged MiniLM:
#   ltx-shards cache --synthetic 4 --val 0 --shard-size 4 --width 384 --height 256 --frames 25 --fps 12 \
#     --pretrained assets/pretrained/ltx-mini-synth --out .gpu_assets/lora_mem_cache
# 25 frames at 256x384 through its 4x8x8 VAE and the DiT's 1x2x2 patch are 7 x 16 x 24 = 2,688 video
# tokens, as many as 49 frames of 768x512 through an 8x32x32 VAE with patch 1; 2.08 s of audio are 50
# audio tokens (LTX-2's ~25 a second); 32 registers + 128 caption tokens.
# The base: the shipped base's VAEs and connector with the trunk of dit/$PRESET (ltx2b: 28 x 2048),
# random weights (scripts/shape_alike_base.py): a memory and speed figure, never a quality one.
# The LoRA: experiment=lora_motion (rank 32), video + audio adapters, base held in bf16, activation
# checkpointing, batch 1, $STEPS steps; perf/gpu_mem_gib (the step's peak) logged every 100 steps.
# SMOKE=1: the same on the CPU with dit/mini, 20 steps (a check of the script).
set -uo pipefail
W=${W:-/tmp/ltx_lora_mem}
PY=${PY:-python3}
CACHE=${CACHE:-$PWD/.gpu_assets/lora_mem_cache}
if [ -n "${SMOKE:-}" ]; then
  GPU="trainer=cpu trainer.precision=bf16-mixed"; PRESET=mini; STEPS=4; EVERY=2
else
  GPU="trainer=gpu"; PRESET=${PRESET:-ltx2b}; STEPS=${STEPS:-2000}; EVERY=100
fi
. "$(dirname "$0")/gpu_env.sh"   # stage(), dmon_start, bg_main
RUNS="lora"

run_all() {
  if [ -z "${SMOKE:-}" ] && [ "${TESTS:-1}" = 1 ]; then   # TESTS=0: the LoRA study alone
    stage vocoder_zero timeout -s INT 300 $PY -m pytest -v -m gpu tests/test_gpu_strategies.py \
      -k "vae_stage and vocoder" -p no:cacheprovider --basetemp "$W/pt"
  fi
  stage base $PY scripts/shape_alike_base.py assets/pretrained/ltx-mini-synth "$W/base" --dit $PRESET || return 1
  dmon_start "$W/logs/lora_sm.txt" 5
  stage lora $PY -m ltx_train.train experiment=lora_motion base="$W/base" $GPU callbacks=default \
    '~callbacks.progress' trainer.enable_progress_bar=false callbacks.progress_lines.every_n_steps=$EVERY \
    logger=csv data=latents data.path="$CACHE" data.num_frames=25 data.fps=12 data.height=256 data.width=384 \
    data.val_split=train data.batch_size=1 model.lora.audio=true model.lora.base_dtype=bfloat16 model.activation_checkpointing=true \
    trainer.max_steps=$STEPS trainer.log_every_n_steps=$EVERY trainer.limit_val_batches=0 \
    trainer.val_check_interval=$(( STEPS / 2 )) hydra.run.dir="$W/lora"
  dmon_stop
}

pack() {
  cp "$W/lora/csv/version_0/metrics.csv" "$OUT/lora_metrics.csv" 2>/dev/null
  cp "$W/base/model/config.json" "$OUT/base_model_config.json" 2>/dev/null
  tail -n 60 "$W/logs/vocoder_zero.log" >"$OUT/vocoder_zero_tail.txt" 2>/dev/null
  cp "$W/logs/lora.log" "$W/logs/lora_sm.txt" "$W/timeline.txt" "$OUT/" 2>/dev/null
}
bg_main "$@"
