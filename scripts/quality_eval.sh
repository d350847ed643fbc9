#!/usr/bin/env bash
# The CPU half of experiments/quality.md: turn what scripts/gpu_quality.sh brought back into pretrained
# directories, generate from each and score the clips.
#   bash scripts/quality_eval.sh <folder with records.tar.gz and the *.safetensors.part* files> <work dir>
# Each run's model/ (weights + config, model_index.json) joins the shipped base's VAEs and vocoder (the
# ones the latent cache was written with); then, on NG held-out captions / clips (seeds 1e9 + i, never
# trained on): text-to-video -> ltx-eval task=adherence and task=physics; image-to-video (each clip's own
# first frame) -> ltx-eval task=i2v (first-frame PSNR/SSIM, drift, physics). 30 Euler steps, guidance 3.
# Each report also scores the real clips (the ceiling).
# RUNS / I2V_RUNS / NG / STEPS override what is done (SMOKE-sized: NG=4 STEPS=2).
set -euo pipefail
SRC=${1:?folder of the device files}; W=${2:?work dir}
PY=${PY:-.venv/bin/python}
ASSET=${ASSET:-assets/pretrained/ltx-mini-synth}
RUNS=${RUNS:-ltx23 ltx23_s1 baseline baseline_s1 nophys ltx23_img}
I2V_RUNS=${I2V_RUNS:-ltx23 ltx23_s1 nophys ltx23_img}
NG=${NG:-64}; STEPS=${STEPS:-30}
mkdir -p "$W/records" "$W/val"
tar -xzf "$SRC/records.tar.gz" -C "$W/records"
[ -e "$W/val/done" ] || { $PY -m ltx_train.data.cli synth --out "$W/val" --train 1 --val "$NG" --size 64 --frames 25 \
  --workers 2 >/dev/null && touch "$W/val/done"; }
VAL="$W/val/val-*.tar"
PROMPTS=$($PY -c "import json; from ltx_train.eval.lora_effect import default_prompts; print(json.dumps(default_prompts($NG)))")

assemble() {   # assemble RUN: $W/pre_RUN = the shipped base with RUN's model
  local run=$1 d=$W/pre_$1
  [ -f "$d/model/model.safetensors" ] && return 0
  rm -rf "$d"; mkdir -p "$d/model"
  cp -r "$ASSET/vae" "$ASSET/audio_vae" "$ASSET/vocoder" "$d/"
  cat "$SRC/$run".safetensors.part* >"$d/model/model.safetensors"
  cp "$W/records/$run/model_config.json" "$d/model/config.json"
  $PY - "$W/records/$run/model_index.json" "$d/model_index.json" <<'PYEOF'
import json, sys
index = json.load(open(sys.argv[1]))
index["vocoder"] = ["ltx_train", "HiFiGAN"]   # the shipped base's vocoder, not Griffin-Lim
open(sys.argv[2], "w").write(json.dumps(index, indent=2) + "\n")
PYEOF
}

gen() {   # gen RUN TASK ARGS...: ltx-generate into $W/gen/RUN_TASK (skipped when done)
  local run=$1 task=$2; shift 2
  local out=$W/gen/${run}_$task
  [ -e "$out/done" ] && return 0
  echo "[$(date +%T)] generate $run $task"
  $PY -m ltx_train.generate pretrained="$W/pre_$run" steps=$STEPS batch_size=16 seed=0 height=64 width=64 \
    "$@" out_dir="$out" hydra.run.dir="$out" >"$out.log" 2>&1 && touch "$out/done"
}

score() {   # score RUN TASK EVAL: ltx-eval task=EVAL on $W/gen/RUN_TASK -> $W/scores/RUN_TASK_EVAL.json
  local run=$1 task=$2 ev=$3 out=$W/scores/${1}_${2}_$3
  [ -f "$out.json" ] && return 0
  $PY -m ltx_train.evaluate task=$ev generated="$W/gen/${run}_$task" shards="$VAL" limit=$NG \
    out_dir="$out" hydra.run.dir="$out" >"$out.log" 2>&1 && cp "$out/report.json" "$out.json"
}

mkdir -p "$W/gen" "$W/scores"
for run in $RUNS; do
  assemble "$run"
  gen "$run" t2v "prompts=$PROMPTS"
  score "$run" t2v adherence; score "$run" t2v physics
  if [[ " $I2V_RUNS " == *" $run "* ]]; then
    gen "$run" i2v from_shards="$VAL" limit=$NG
    score "$run" i2v i2v
  fi
  if [ "$run" = ltx23_img ]; then   # the same clips with guidance on the image features too
    gen "$run" i2vg from_shards="$VAL" limit=$NG image_guidance_scale=2.0
    score "$run" i2vg i2v
  fi
done
echo "scores in $W/scores"
